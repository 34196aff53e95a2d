"""Release the lock a killed Snakemake left behind, so that the same command resumes.

Snakemake locks the working directory (`.snakemake/locks/`) while it runs and removes the lock
when it ends; a `kill -9` (or a lost terminal, an out-of-memory kill) leaves it, and the next run
stops with a LockException until `snakemake --unlock`.  `make run` calls this first: when no
Snakemake process works in this directory, a lock left there is stale and is removed (what
`--unlock` does); while one runs, nothing is touched.

    python -m floodx.locks [--dir .]
"""

import argparse
import os
import sys
from pathlib import Path


def snakemake_processes(directory):
    """PIDs of the Snakemake processes (other than this one) whose working directory is `directory`."""
    directory = os.path.realpath(directory)
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        if int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue   # gone, or not ours to inspect
        if cwd == directory and any(Path(part.decode(errors="replace")).name == "snakemake"
                                    or part.decode(errors="replace").endswith("snakemake/__main__.py")
                                    for part in cmdline[:3]):
            found.append(int(entry.name))
    return found


def release_stale_lock(directory=".", running=snakemake_processes):
    """Remove `.snakemake/locks/*` if no Snakemake runs in `directory`; returns the files removed."""
    locks = Path(directory) / ".snakemake" / "locks"
    stale = sorted(locks.glob("*.lock")) if locks.is_dir() else []
    if not stale or running(directory):
        return []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m floodx.locks", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".", help="the workflow's working directory")
    args = parser.parse_args(argv)
    removed = release_stale_lock(args.dir)
    if removed:
        print(f"floodx: released the lock a stopped Snakemake left in {Path(args.dir) / '.snakemake/locks'} "
              f"(no Snakemake runs here); the run resumes", file=sys.stderr)


if __name__ == "__main__":
    main()
