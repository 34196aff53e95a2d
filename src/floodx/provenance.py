"""What produced a result: versions, code revision, device, command, config and seed."""

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from . import __version__
from .precision import cpu_has_native_bf16

_PACKAGES = ("torch", "transformers", "datasets", "textattack", "snakemake", "pandas", "numpy")


def _version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit():
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def device_description():
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    # The instruction set torch dispatches to (AVX2, AVX512, ...): fp32 kernels round differently across
    # them, and without AVX512-BF16 or AMX `training.bf16: auto` trains in fp32 (floodx.precision).
    capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: None)()
    return (f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()} "
            f"(torch threads {torch.get_num_threads()}{f', {capability}' if capability else ''}"
            f"{', native bf16' if cpu_has_native_bf16() else ''})")


def provenance(spec=None, seed=None, resources=None):
    return {
        "floodx": __version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in _PACKAGES},
        # Set where flair could not be imported and floodx.attacks.flair_standin stood in for it.
        "flair_standin": getattr(sys.modules.get("flair"), "__floodx_standin__", None),
        "device": device_description(),
        "host": platform.node(),
        "command": sys.argv,
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "spec": spec,
        "resources": resources,
    }
