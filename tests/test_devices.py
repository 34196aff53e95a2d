"""GPU slot claiming (floodx.devices): concurrent local jobs get different GPUs; SLURM's choice stands.

No GPU is needed: slots are lock files, and torch.cuda.is_available is mocked.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from floodx import devices

# A job that claims a slot, reports it, and holds it until its stdin closes (or it is killed).
HOLDER = textwrap.dedent("""
    import sys
    from floodx.devices import claim_gpu_slot
    print(claim_gpu_slot(int(sys.argv[1]), sys.argv[2]), flush=True)
    sys.stdin.read()
""")


class Holder:
    def __init__(self, num_gpus, lock_dir):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(num_gpus), str(lock_dir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        self.slot = None if line == "None" else int(line)

    def release(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def holders():
    started = []
    yield lambda n, lock_dir: started.append(Holder(n, lock_dir)) or started[-1]
    for holder in started:
        if holder.proc.poll() is None:
            holder.kill()


@pytest.fixture(autouse=True)
def clean_state(monkeypatch):
    """Restore os.environ (select_device writes CUDA_VISIBLE_DEVICES) and drop locks this process took."""
    saved = dict(os.environ)
    for name in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "FLOODX_NUM_GPUS", "FLOODX_GPU_LOCK_DIR"):
        os.environ.pop(name, None)
    yield
    for handle in devices._held_locks:
        handle.close()
    devices._held_locks.clear()
    os.environ.clear()
    os.environ.update(saved)


def test_concurrent_jobs_get_different_slots(tmp_path, holders):
    first = holders(2, tmp_path)
    second = holders(2, tmp_path)
    assert {first.slot, second.slot} == {0, 1}
    assert devices.claim_gpu_slot(2, tmp_path) is None  # a third job finds every GPU taken

    first.release()
    assert devices.claim_gpu_slot(2, tmp_path) == first.slot  # a finished job frees its GPU


def test_slot_of_a_crashed_job_is_free_again(tmp_path, holders):
    job = holders(1, tmp_path)
    assert job.slot == 0
    assert devices.claim_gpu_slot(1, tmp_path) is None
    job.kill()  # SIGKILL: no clean-up code runs, the OS drops the lock
    assert devices.claim_gpu_slot(1, tmp_path) == 0


def test_select_device_leaves_slurm_allocation_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    monkeypatch.setenv("FLOODX_NUM_GPUS", "2")
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.select_device() == torch.device("cuda")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not devices._held_locks and not list(tmp_path.iterdir())

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # what SLURM sets for a --gpus=1 job
    devices.select_device()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_select_device_respects_a_users_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("FLOODX_NUM_GPUS", "2")
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    devices.select_device()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert not devices._held_locks


def test_select_device_narrows_local_job_to_its_slot(tmp_path, monkeypatch, holders):
    monkeypatch.setenv("FLOODX_NUM_GPUS", "2")
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    other = holders(2, tmp_path)  # a concurrent local job holds GPU 0
    assert other.slot == 0
    assert devices.select_device() == torch.device("cuda")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_select_device_fails_when_every_slot_is_busy(tmp_path, monkeypatch, holders):
    monkeypatch.setenv("FLOODX_NUM_GPUS", "1")
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    holders(1, tmp_path)
    with pytest.raises(RuntimeError, match="--resources gpu"):
        devices.select_device()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_cpu_only_host_claims_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODX_NUM_GPUS", "0")
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.select_device() == torch.device("cpu")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not devices._held_locks
