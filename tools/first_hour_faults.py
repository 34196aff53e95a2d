"""A user's first-hour mistakes, tried against a finished run: the message, whether results survived.

    snakemake --cores 2 --configfile config/tiny.yaml          # a finished tiny run in this folder
    python tools/first_hour_faults.py .                         # prints a Markdown table

For each bad input (a broken data file, a bad config key, an unknown data set, a missing model
folder) it runs the same Snakemake command, records the first line of the message, checks that
every file under results/ is byte for byte what it was, restores the input and checks that the
same command then has nothing to do. kill -9 during training and during an attack is tested by
tests/test_workflow.py::test_kill_9_in_training_and_in_an_attack_then_the_same_command_resumes.
"""

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import yaml

CONFIG = "config/tiny.yaml"
DATA = "config/tiny/reviews.csv"


def snapshot(folder):
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def snakemake(workdir, *extra):
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": os.pathsep.join([str(bin_dir), os.environ["PATH"]])}
    return subprocess.run([str(bin_dir / "snakemake"), "--cores", "2", "--configfile", CONFIG, *extra],
                          cwd=workdir, env=env, capture_output=True, text=True)


def message(output):
    """The line after Snakemake's 'XxxError in file ...' header: floodx's own message."""
    lines = output.splitlines()
    for i, line in enumerate(lines[:-1]):
        if "Error in file" in line:
            following = lines[i + 1].strip()
            return lines[i + 2].strip() if following.endswith("config is invalid:") else following
    return lines[-1].strip() if lines else ""


def faults(lines):
    header = lines[0]
    return {
        "label column renamed": ("file", "\n".join([header.replace("sentiment", "mood")] + lines[1:]) + "\n"),
        "text column renamed": ("file", "\n".join([header.replace("sentence", "text")] + lines[1:]) + "\n"),
        "label outside label_names": ("file", "\n".join(lines[:3] + [lines[3].rsplit(",", 1)[0] + ",neutral"]
                                                        + lines[4:]) + "\n"),
        "empty text": ("file", "\n".join(lines[:2] + ['"",positive'] + lines[3:]) + "\n"),
        "bytes that are not UTF-8": ("bytes", None),
        "unknown config key training.lr": ("config", {"training": {"lr": 0.1}}),
        "wrong type training.epochs: ten": ("config", {"training": {"epochs": "ten"}}),
        "unknown Hugging Face data set sst3": ("config", {"datasets": {"tiny": {"source": "huggingface",
                                                                                  "name": "sst3"}}}),
        "unknown embedded data set": ("config", {"datasets": {"tiny": {"source": "embedded", "name": "imdb"}}}),
        "local data file missing": ("config", {"datasets": {"tiny": {"path": "config/tiny/nothere.csv"}}}),
        "model folder missing": ("config", {"model": {"source": "huggingface", "name_or_path": "./missing/model"}}),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", help="a folder holding a finished run of config/tiny.yaml")
    workdir = Path(parser.parse_args(argv).workdir).resolve()
    results, data = workdir / "results", workdir / DATA
    if "Nothing to be done" not in (check := snakemake(workdir, "-n")).stdout + check.stderr:
        raise SystemExit(f"{workdir}: finish the tiny run first (snakemake --cores 2 --configfile {CONFIG})")
    good, stamp = data.read_bytes(), data.stat()
    before = snapshot(results)
    print("| fault | exit | message | earlier results unchanged | same command then has nothing to do |")
    print("|---|---|---|---|---|")
    for name, (kind, payload) in faults(good.decode().splitlines()).items():
        extra = ()
        if kind == "file":
            data.write_text(payload)
        elif kind == "bytes":
            data.write_bytes(good[:40] + b"\xff\xfe" + good[40:])
        else:
            (workdir / "bad.yaml").write_text(yaml.safe_dump(payload))
            extra = ("--configfile", CONFIG, "bad.yaml")
        run = snakemake(workdir, *extra)
        survived = snapshot(results) == before
        data.write_bytes(good)
        os.utime(data, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))   # as it was (a rerun is by mtime)
        again = snakemake(workdir, "-n")
        resumed = "Nothing to be done" in again.stdout + again.stderr
        text = message(run.stdout + run.stderr).replace("|", "\\|")
        print(f"| {name} | {run.returncode} | {text} | {'yes' if survived else 'NO'} | {'yes' if resumed else 'NO'} |")
    (workdir / "bad.yaml").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
