"""Which device a job uses, and which GPU slot.

Snakemake counts `--resources gpu=N` but does not tell a local job *which* GPU is its own, so two
concurrent local jobs would land on GPU 0. A job therefore claims a slot with an exclusive file lock
(released by the OS when the process ends, even if it crashes) and narrows CUDA_VISIBLE_DEVICES to the
slot's device. The devices are the visible ones: CUDA_VISIBLE_DEVICES as the user or the scheduler set it
(indices, GPU- or MIG- UUIDs; a SLURM job's own GPUs), else every GPU or MIG instance `nvidia-smi -L`
lists. `FLOODX_JOBS_PER_GPU` (default 1) packs several jobs onto one GPU: slot k uses device k mod n, so
jobs spread over the GPUs before they share one. A job that finds every slot taken waits for one
(`FLOODX_GPU_WAIT_S`, default 6 hours, a log line a minute) instead of failing. `make run` passes
`--resources gpu=<slots>` (`python -m floodx.devices --slots`), so Snakemake never starts more.

The lock folder names the host (and the SLURM job), so hosts that share a home directory do not share
slots. A host whose GPUs are visible but whose torch has no CUDA stops with a message naming the
mismatch, unless `FLOODX_DEVICE=cpu` asks for the CPU (slots are still claimed then, which is how the
tests simulate a GPU host).
"""

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

_held_locks = []  # keep lock files open for the life of the process
DEFAULT_WAIT_S = 6 * 3600


def _slot_dir():
    if os.environ.get("FLOODX_GPU_LOCK_DIR"):
        return Path(os.environ["FLOODX_GPU_LOCK_DIR"])
    scope = socket.gethostname() + (f"-slurm{os.environ['SLURM_JOB_ID']}" if os.environ.get("SLURM_JOB_ID") else "")
    return Path.home() / ".cache" / "floodx" / "gpu-slots" / scope


def parse_nvidia_smi(text):
    """CUDA_VISIBLE_DEVICES entries from `nvidia-smi -L`: a GPU's index, or its MIG instances' UUIDs."""
    devices, gpu, migs = [], None, []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("GPU "):
            if gpu is not None:
                devices += migs or [gpu]
            gpu, migs = stripped.split()[1].rstrip(":"), []
        elif stripped.startswith("MIG ") and "UUID:" in stripped:
            migs.append(stripped.split("UUID:", 1)[1].strip(" )"))
    if gpu is not None:
        devices += migs or [gpu]
    return devices


def visible_devices():
    """The GPUs a job may use, as CUDA_VISIBLE_DEVICES entries ([] on a host without GPUs)."""
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:
        entries = [e.strip() for e in chosen.split(",") if e.strip()]
        return [] if not entries or entries[0].startswith("-") else entries
    if os.environ.get("FLOODX_NUM_GPUS"):
        return [str(i) for i in range(int(os.environ["FLOODX_NUM_GPUS"]))]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(out.stdout) if out.returncode == 0 else []


def count_gpus():
    return len(visible_devices())


def jobs_per_gpu():
    value = os.environ.get("FLOODX_JOBS_PER_GPU", "1")
    if not value.isdigit() or int(value) < 1:
        from .errors import ConfigError

        raise ConfigError(f"FLOODX_JOBS_PER_GPU={value!r}: a whole number of jobs per GPU, at least 1")
    return int(value)


def gpu_slots():
    """How many GPU jobs may run at once here: visible devices x FLOODX_JOBS_PER_GPU."""
    return count_gpus() * jobs_per_gpu()


def claim_gpu_slot(num_slots, lock_dir=None):
    """Lock the first free slot in 0..num_slots-1 and return its index (None if all are taken)."""
    lock_dir = Path(lock_dir) if lock_dir else _slot_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(num_slots):
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


def wait_for_slot(num_slots, lock_dir=None, timeout=None, poll=2.0, log=None):
    """claim_gpu_slot, waiting while every slot is taken (a line to `log` a minute), for at most `timeout` s."""
    timeout = float(os.environ.get("FLOODX_GPU_WAIT_S", DEFAULT_WAIT_S)) if timeout is None else timeout
    log = log or (lambda message: print(f"floodx: {message}", file=sys.stderr, flush=True))
    started = last = time.monotonic()
    while True:
        slot = claim_gpu_slot(num_slots, lock_dir)
        if slot is not None:
            if time.monotonic() - started > poll:
                log(f"GPU slot {slot} free after {time.monotonic() - started:.0f} s")
            return slot
        waited = time.monotonic() - started
        if waited >= timeout:
            raise RuntimeError(
                f"all {num_slots} GPU slots ({lock_dir or _slot_dir()}) stayed busy for {waited:.0f} s "
                f"(FLOODX_GPU_WAIT_S); run snakemake with --resources gpu=<= {num_slots}")
        if time.monotonic() - last >= 60 or last == started:
            log(f"all {num_slots} GPU slots busy; waiting (up to {timeout:.0f} s)")
            last = time.monotonic()
        time.sleep(poll)


def select_device(threads=None):
    """The torch device for this job, after claiming a GPU slot among the visible devices."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    forced_cpu = os.environ.get("FLOODX_DEVICE", "").lower() == "cpu"
    devices = visible_devices()
    if devices:
        if not forced_cpu and not torch.cuda.is_available():
            from .errors import ResourceError

            raise ResourceError(
                f"{len(devices)} GPU(s) visible ({', '.join(devices)}) but torch {torch.__version__} sees no CUDA "
                f"(built for CUDA {torch.version.cuda or 'none: a CPU build'}): install a CUDA build of torch "
                "(make setup TORCH_SPEC='torch==<version>' from the CUDA index) or set FLOODX_DEVICE=cpu to "
                "compute on the CPU")
        slots = len(devices) * jobs_per_gpu()
        slot = wait_for_slot(slots)
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[slot % len(devices)]
        print(f"floodx: GPU slot {slot} of {slots}: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}",
              file=sys.stderr, flush=True)
    return torch.device("cuda" if torch.cuda.is_available() and not forced_cpu else "cpu")


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m floodx.devices", description=__doc__.splitlines()[0])
    parser.add_argument("--slots", action="store_true", help="print how many GPU jobs may run at once here")
    args = parser.parse_args(argv)
    if args.slots:
        print(gpu_slots())
    else:
        print(" ".join(visible_devices()) or "no GPU")


if __name__ == "__main__":
    main()
