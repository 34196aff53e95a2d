"""The Snakemake workflow itself: dry runs, lint, config errors, and one real end-to-end run."""

import json
import os
import re

import pandas as pd
import pytest
import yaml

from workflow_copy import copy_workflow, snakemake


def job_counts(output):
    """{rule: count} from snakemake's 'Job stats' table."""
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_default_dry_run_lists_every_stage(tmp_path):
    copy_workflow(tmp_path)
    result = snakemake(tmp_path, "-n")
    assert result.returncode == 0, result.stderr + result.stdout
    counts = job_counts(result.stdout)
    for rule in ("prepare_data", "train", "probe", "flood_window", "dev_attack", "select_flood_level",
                 "attack_shard", "gather_attack", "profile_time", "table2", "table3", "figure1", "figure4"):
        assert counts.get(rule, 0) >= 1, (rule, counts)


def test_the_workflow_profile_is_in_effect(tmp_path):
    """profiles/default is where Snakemake looks for a top-level Snakefile's workflow profile:
    its settings (here printshellcmds) reach a plain `snakemake` run."""
    copy_workflow(tmp_path)
    result = snakemake(tmp_path, "-n")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Using workflow specific profile profiles/default" in result.stdout + result.stderr
    assert "python -m floodx.data" in result.stdout + result.stderr   # printshellcmds: the commands


def test_paper_config_dry_run_lists_the_whole_dag(tmp_path):
    copy_workflow(tmp_path)
    result = snakemake(tmp_path, "-n", "--configfile", "config/paper.yaml")
    assert result.returncode == 0, result.stderr + result.stdout
    counts = job_counts(result.stdout)
    assert counts["prepare_data"] == 5                   # the paper's data sets replace the default's
    # 5 data sets x 3 seeds x (4 baselines + finetune + 50 grid levels) before the checkpoints
    assert counts["train"] == 5 * 3 * (5 + 50)
    assert counts["probe"] == 5 * 3
    assert counts["fetch_hf_model"] == 1                  # bert-base-uncased, fetched on the login node
    assert "rt" not in result.stdout.split("Job stats:")[0].replace("report", "")


def test_lint_is_clean(tmp_path):
    copy_workflow(tmp_path)
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_config_stops_before_any_job_and_names_the_key(tmp_path):
    copy_workflow(tmp_path)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"training": {"epochs": 2, "lr": 0.1}}))
    result = snakemake(tmp_path, "--cores", "1", "--configfile", "bad.yaml")
    assert result.returncode != 0
    assert "unknown config key(s) ['lr'] under training" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_end_to_end_on_the_tiny_config(tmp_path):
    """Every stage for real: probe, window, narrow and wide search, training, TextAttack, tables, figures."""
    copy_workflow(tmp_path)
    result = snakemake(tmp_path, "--cores", "2", "--configfile", "config/tiny.yaml", timeout=2400)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    results = tmp_path / "results"

    window = json.loads((results / "probe/tiny/seed1/window.json").read_text())
    assert window["levels"] and all(re.fullmatch(r"\d+\.\d\d", level) for level in window["levels"])
    for method in ("flooding", "flooding_x"):
        choice = json.loads((results / f"search/tiny/{method}/seed1/choice.json").read_text())
        assert choice["chosen"] in choice["levels"]
        assert (results / "train/tiny" / choice["run"] / "seed1/metrics.json").exists()

    metrics = json.loads((results / "train/tiny/finetune/seed1/metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and metrics["provenance"]["spec"]["seed"] == 1
    summary = json.loads((results / "attack/tiny/pgd/seed1/textfooler/summary.json").read_text())
    assert summary["n_attacked"] == 4 and summary["mode"] == "offline" and summary["substitutions"]

    table = pd.read_csv(results / "tables/table2.csv")
    assert set(table["method"]) == {"finetune", "flooding", "flooding_x", "pgd"}
    for n in (1, 2, 3, 4):
        assert (results / f"figures/figure{n}_tiny.png").stat().st_size > 10_000
    assert (results / "tables/table3.md").read_text().count("|") > 10

    report = snakemake(tmp_path, "--configfile", "config/tiny.yaml", "--report", "report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "figure3_tiny.png" in html and "table2.md" in html

    # Nothing is redone on a second call: the DAG is complete.
    again = snakemake(tmp_path, "--cores", "2", "--configfile", "config/tiny.yaml", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr

    # A mistake in the input stops the next run before any job, and no result is lost.
    before = snapshot(results)
    data = tmp_path / "config/tiny/reviews.csv"
    good, stamp = data.read_bytes(), data.stat()
    lines = good.decode().splitlines()
    bad_files = {
        "no label column": ("\n".join([lines[0].replace("sentiment", "mood")] + lines[1:]) + "\n",
                            "no column 'sentiment'"),
        "unknown label": ("\n".join(lines[:3] + [lines[3].rsplit(",", 1)[0] + ",neutral"] + lines[4:]) + "\n",
                          "line 4"),
        "empty text": ("\n".join(lines[:2] + ['"",positive'] + lines[3:]) + "\n", "line 3"),
    }
    for name, (text, message) in bad_files.items():
        data.write_text(text)
        result = snakemake(tmp_path, "--cores", "2", "--configfile", "config/tiny.yaml")
        assert result.returncode != 0 and message in result.stdout + result.stderr, (name, result.stderr[-3000:])
        assert snapshot(results) == before, name
    data.write_bytes(good[:40] + b"\xff\xfe" + good[40:])
    result = snakemake(tmp_path, "--cores", "2", "--configfile", "config/tiny.yaml")
    assert result.returncode != 0 and "not UTF-8" in result.stdout + result.stderr
    assert snapshot(results) == before
    data.write_bytes(good)
    os.utime(data, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # as before (an edited file reruns by mtime)
    for overlay, message in (({"datasets": {"tiny": {"source": "huggingface", "name": "sst3"}}}, "sst3"),
                             ({"model": {"source": "huggingface", "name_or_path": "./missing/model"}},
                              "model.name_or_path './missing/model' is no local folder")):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(overlay))
        result = snakemake(tmp_path, "--cores", "2", "--configfile", "config/tiny.yaml", "bad.yaml")
        assert result.returncode != 0 and message in result.stdout + result.stderr, result.stderr[-3000:]
        assert snapshot(results) == before
    again = snakemake(tmp_path, "--cores", "2", "--configfile", "config/tiny.yaml", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def snapshot(folder):
    """{relative path: sha256} of every file under `folder`."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
