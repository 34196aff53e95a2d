"""What produced a result: versions, code revision, device, command, config and seed.

Also the one way results are written (atomically), so an interrupted job never leaves a
half-written file in place of a finished one.
"""

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from . import __version__

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
    return f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()} (torch threads {torch.get_num_threads()})"


def provenance(spec=None, seed=None, resources=None):
    return {
        "floodx": __version__,
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "packages": {name: _version(name) for name in _PACKAGES},
        "device": device_description(),
        "host": platform.node(),
        "command": sys.argv,
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "spec": spec,
        "resources": resources,
    }


def write_text(path, text):
    """Atomic write: a temp file beside the target, then a rename (readable as the umask allows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _umask():
    current = os.umask(0)
    os.umask(current)
    return current


def read_json(path):
    with open(path) as handle:
        return json.load(handle)


def read_result(path):
    """Another stage's JSON output, or a DataError that names the file (tables, figures)."""
    from .errors import DataError

    try:
        return read_json(path)
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read result file {path}: {err}") from None
