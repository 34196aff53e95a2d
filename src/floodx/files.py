"""The one way results are written (atomically) and read back.

A temp file beside the target, then a rename: an interrupted job never leaves a half-written file
in place of a finished one.
"""

import json
import os
import tempfile
from pathlib import Path


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
