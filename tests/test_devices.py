"""GPU slot claiming (floodx.devices): concurrent jobs get different slots among the visible devices.

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
    for name in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "FLOODX_NUM_GPUS", "FLOODX_GPU_LOCK_DIR",
                 "FLOODX_JOBS_PER_GPU", "FLOODX_DEVICE", "FLOODX_GPU_WAIT_S"):
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


def test_a_slurm_jobs_own_gpu_stays_its_own(tmp_path, monkeypatch):
    """A SLURM job sees its GPU(s) in CUDA_VISIBLE_DEVICES: it claims among them and keeps them."""
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # what SLURM sets for a --gpus=1 job
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.select_device() == torch.device("cuda")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_the_lock_folder_names_the_host_and_the_slurm_job(monkeypatch):
    import socket

    assert devices._slot_dir().name == socket.gethostname()
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert devices._slot_dir().name == f"{socket.gethostname()}-slurm77"


@pytest.mark.parametrize("visible", ["0,1", "GPU-aaaa-1111,GPU-bbbb-2222", "MIG-cccc-3333,MIG-dddd-4444"])
def test_local_jobs_share_the_visible_devices_of_an_allocation(tmp_path, monkeypatch, holders, visible):
    """snakemake --resources gpu=2 inside salloc --gpus=2, or with CUDA_VISIBLE_DEVICES given: each job
    gets one of the listed devices (indices, GPU or MIG UUIDs), not all of them cuda:0."""
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    other = holders(2, tmp_path)  # a concurrent local job holds slot 0
    assert other.slot == 0
    devices.select_device()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == visible.split(",")[1]


def test_nvidia_smi_lists_gpus_and_mig_instances():
    listing = textwrap.dedent("""\
        GPU 0: NVIDIA H200 (UUID: GPU-11111111-aaaa)
        GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-22222222-bbbb)
          MIG 3g.40gb     Device  0: (UUID: MIG-33333333-cccc)
          MIG 3g.40gb     Device  1: (UUID: MIG-44444444-dddd)
        GPU 2: NVIDIA A100 (UUID: GPU-55555555-eeee)
        """)
    assert devices.parse_nvidia_smi(listing) == ["0", "MIG-33333333-cccc", "MIG-44444444-dddd", "2"]
    assert devices.parse_nvidia_smi("") == []


def test_jobs_per_gpu_packs_slots_and_spreads_them_first(tmp_path, monkeypatch, holders):
    monkeypatch.setenv("FLOODX_NUM_GPUS", "2")
    monkeypatch.setenv("FLOODX_JOBS_PER_GPU", "3")
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.gpu_slots() == 6
    for _ in range(2):
        holders(6, tmp_path)          # slots 0 and 1: GPU 0 and GPU 1
    devices.select_device()           # slot 2: GPU 0 again
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    monkeypatch.setenv("FLOODX_JOBS_PER_GPU", "0")
    with pytest.raises(Exception, match="FLOODX_JOBS_PER_GPU"):
        devices.gpu_slots()


def test_a_job_waits_for_a_busy_slot_and_gives_up_after_the_bound(tmp_path, monkeypatch, holders):
    monkeypatch.setenv("FLOODX_NUM_GPUS", "1")
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    busy = holders(1, tmp_path)
    lines = []
    with pytest.raises(RuntimeError, match="stayed busy"):
        devices.wait_for_slot(1, tmp_path, timeout=0.3, poll=0.05, log=lines.append)
    assert lines and "busy; waiting" in lines[0]
    import threading

    threading.Timer(0.5, busy.release).start()      # the other job ends while this one waits
    assert devices.wait_for_slot(1, tmp_path, timeout=30, poll=0.05, log=lines.append) == 0
    assert "free after" in lines[-1]


def test_visible_gpus_without_cuda_in_torch_stop_with_the_mismatch(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODX_NUM_GPUS", "2")
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(Exception, match=r"2 GPU\(s\) visible .* sees no CUDA .*FLOODX_DEVICE=cpu"):
        devices.select_device()
    monkeypatch.setenv("FLOODX_DEVICE", "cpu")      # asked for: the CPU, with the slot still claimed
    assert devices.select_device() == torch.device("cpu") and os.environ["CUDA_VISIBLE_DEVICES"] == "0"


def test_hidden_gpus_mean_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("FLOODX_NUM_GPUS", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.visible_devices() == [] and devices.select_device() == torch.device("cpu")


def test_cpu_only_host_claims_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOODX_NUM_GPUS", "0")
    monkeypatch.setenv("FLOODX_GPU_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.select_device() == torch.device("cpu")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not devices._held_locks
