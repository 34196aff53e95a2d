"""Running the real workflow in a temporary copy (shared by the workflow and SLURM tests)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_workflow(dest, share_resources=True):
    """workflow/ (with its Snakefile), config/ and profiles/ copied into `dest`.

    With `share_resources`, dest/resources links to the repository's resources/ so that what
    the fetch rules download (from PyPI) is downloaded once for every test and run.
    """
    dest = Path(dest)
    ignore = shutil.ignore_patterns("__pycache__", ".snakemake")
    for folder in ("workflow", "config", "profiles"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    if share_resources:
        (ROOT / "resources").mkdir(exist_ok=True)
        (dest / "resources").symlink_to(ROOT / "resources")
    return dest


def snakemake(workdir, *args, env=None, timeout=1800):
    """Run snakemake (from this interpreter's environment) in `workdir`; returns CompletedProcess."""
    bin_dir = str(Path(sys.executable).parent)
    command = [str(Path(bin_dir) / "snakemake"), *args]
    # Rules call `python -m floodx...`: this environment's interpreter must be the one found.
    env = env or {**os.environ, "PYTHONUNBUFFERED": "1",
                  "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
