"""Which device a job uses.

Snakemake counts `--resources gpu=N` but does not tell a local job *which* GPU is its own, so
two concurrent local jobs would land on GPU 0. A job therefore claims a free slot with an
exclusive file lock (released by the OS when the process ends, even if it crashes) and narrows
CUDA_VISIBLE_DEVICES to it. Under SLURM, or when the user already chose devices, the scheduler's
choice stands.
"""

import fcntl
import os
from pathlib import Path

_held_locks = []  # keep lock files open for the life of the process


def _slot_dir():
    return Path(os.environ.get("FLOODX_GPU_LOCK_DIR", Path.home() / ".cache" / "floodx" / "gpu-slots"))


def scheduler_assigned():
    return bool(os.environ.get("SLURM_JOB_ID")) or "CUDA_VISIBLE_DEVICES" in os.environ


def claim_gpu_slot(num_gpus, lock_dir=None):
    """Lock the first free slot in 0..num_gpus-1 and return its index (None if all are taken)."""
    lock_dir = Path(lock_dir) if lock_dir else _slot_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(num_gpus):
        handle = open(lock_dir / f"gpu{slot}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.write(str(os.getpid()))
        handle.flush()
        _held_locks.append(handle)
        return slot
    return None


def count_gpus():
    """GPUs on the host, counted without initialising CUDA (so CUDA_VISIBLE_DEVICES can still change)."""
    if os.environ.get("FLOODX_NUM_GPUS"):
        return int(os.environ["FLOODX_NUM_GPUS"])
    import torch

    if not torch.backends.cuda.is_built():
        return 0
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    except (OSError, subprocess.SubprocessError):
        return 0


def select_device(threads=None):
    """The torch device for this job, after claiming a GPU slot where that is our job."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    if not scheduler_assigned():
        n = count_gpus()
        if n:
            slot = claim_gpu_slot(n)
            if slot is None:
                raise RuntimeError(
                    f"all {n} GPU slots are busy: run snakemake with --resources gpu=<= {n}"
                )
            os.environ["CUDA_VISIBLE_DEVICES"] = str(slot)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
