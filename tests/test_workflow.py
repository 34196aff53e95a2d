"""The Snakemake workflow itself: dry runs, lint, config errors, and one real end-to-end run."""

import base64
import csv
import json
import os
import re
import sys
from pathlib import Path

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
    """profiles/default is where Snakemake looks for the workflow profile of workflow/Snakefile run from the root:
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


def test_the_evidence_run_over_three_seeds_pools_its_flood_levels(tmp_path):
    """Each seed's flood-level analysis, then one over the seeds, which Figure 2 (test) and Table 2's reading read."""
    copy_workflow(tmp_path)
    result = snakemake(tmp_path, "-n", "--configfile", "config/evidence.yaml", "config/seeds.yaml")
    assert result.returncode == 0, result.stderr + result.stdout
    counts = job_counts(result.stdout)
    assert counts["probe"] == 3 and counts["flood_levels"] == 3 and counts["pool_flood_levels"] == 1
    assert counts["figure2_test"] == 1 and counts["table2"] == 1


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
    assert summary["training_precision"] == metrics["training_precision"] in ("bf16", "fp32")

    # attacks.calibrated: the same test examples on dev-calibrated scores, beside the plain attack.
    calibrated = json.loads((results / "attack_calibrated/tiny/flooding_x/seed1/textfooler/summary.json").read_text())
    assert calibrated["calibration"]["fit_on"] == "dev" and calibrated["calibration"]["temperature"] > 0
    assert calibrated["identity"]["scores"] == "calibrated" and calibrated["n_attacked"] == 4
    assert (json.loads((results / "attack/tiny/flooding_x/seed1/textfooler/summary.json").read_text())["identity"]
            ["run"] == calibrated["identity"]["run"])
    text = (results / "tables/calibrated.md").read_text()
    assert "Calibrated against plain scores" in text and "Flooding-X, TextFooler: Aua%" in text

    # figures.grid_test_attack: every searched level attacked on the test subset, the verdict, Figure 2 (test).
    levels = json.loads((results / "grid_attack/tiny/seed1/levels.json").read_text())
    searched = set(window["levels"]) | set(json.loads((results / "search/tiny/flooding/seed1/choice.json")
                                                      .read_text())["levels"])
    assert {r["level"] for r in levels["levels"]} == searched and levels["verdict"] in (
        "holds_best", "holds_not_worse", "misses", "untested")
    assert all(r["n_attacked"] == 4 for r in levels["levels"]) and levels["finetune"]["n_attacked"] == 4
    pooled = json.loads((results / "grid_attack/tiny/levels.json").read_text())   # one seed: that seed's curve
    assert pooled["seeds"] == [1] and [r["aua"] for r in pooled["levels"]] == [r["aua"] for r in levels["levels"]]
    assert (results / "figures/figure2_test_tiny.png").stat().st_size > 10_000
    assert "The accordance criterion on the test set" in (results / "tables/reading.md").read_text()
    page = (results / "results.md").read_text()
    assert "## Table 2" in page and "figures/figure2_test_tiny.png" in page and "Verdict: **" in page
    assert "| train |" in page              # job time per stage, from the benchmark files
    assert "## Table 2 on calibrated scores" in page and "models trained in " in page

    report = snakemake(tmp_path, "--configfile", "config/tiny.yaml", "--report", "report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "figure3_tiny.png" in html
    # The report shows tables inline (HTML pages), and opens on what the run was and where Table 2 is.
    shown = report_results(html)
    for table in ("table2", "reading", "table2_vs_paper", "table3", "search", "calibrated"):
        entry = shown[f"results/tables/{table}.html"]
        assert entry["mime_type"] == "text/html", (table, entry["mime_type"])
    page = base64.b64decode(shown["results/tables/table2.html"]["data_uri"].split(",", 1)[1]).decode()
    assert "<table>" in page and "Fine-tune" in page
    landing = json.loads(re.search(r"var workflow_desc = (.*);\n", html).group(1))
    assert "Start here" in landing and "table2.html" in landing and "tiny" in landing

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

    # A second seed, for the flood levels only: each seed's analysis, then both pooled (the evidence run's
    # three seeds, in small), drawn in Figure 2 (test).
    (tmp_path / "two_seeds.yaml").write_text("seeds: [1, 2]\n")
    two = snakemake(tmp_path, "results/grid_attack/tiny/levels.json", "results/figures/figure2_test_tiny.png",
                    "--cores", "2", "--configfile", "config/tiny.yaml", "two_seeds.yaml", timeout=2400)
    assert two.returncode == 0, two.stdout[-6000:] + two.stderr[-6000:]
    pooled = json.loads((results / "grid_attack/tiny/levels.json").read_text())
    assert pooled["seeds"] == [1, 2] and [a["identity"]["seed"] for a in pooled["per_seed"]] == [1, 2]
    assert {w["seed"] for w in pooled["windows"]} == {1, 2} and pooled["text"].startswith("over 2 seeds (1, 2)")
    assert all(r["n_attacked"] == 8 and r["n_seeds"] == 2 for r in pooled["levels"])   # 4 examples x 2 seeds
    assert {r["level"] for r in pooled["levels"]} >= {"0.10", "0.20", "0.30"}          # Flooding's grid, in both
    # Back to one seed, the pooled file would lose seed 2: the run stops before any job and says so.
    narrower = snakemake(tmp_path, "--cores", "2", "--configfile", "config/tiny.yaml")
    assert narrower.returncode != 0 and "levels.json: seeds 2" in narrower.stdout + narrower.stderr

    # With one shard, Table 2's attack of a chosen flood run takes that run's grid attack (the same
    # checkpoint, examples and recipe): its rows are copied, not attacked again.
    (tmp_path / "one_shard.yaml").write_text("attacks: {shards: 1}\n")
    run = json.loads((results / "search/tiny/flooding/seed1/choice.json").read_text())["run"]
    one = snakemake(tmp_path, "results/attack/tiny/flooding/seed1/textfooler/summary.json", "--cores", "2",
                    "--configfile", "config/tiny.yaml", "two_seeds.yaml", "one_shard.yaml", timeout=1200)
    assert one.returncode == 0, one.stdout[-6000:] + one.stderr[-6000:]
    table2_shard = results / "attack/tiny/flooding/seed1/textfooler/shard-0.csv"
    assert table2_shard.read_bytes() == (results / f"grid_attack/tiny/{run}/seed1/shard-0.csv").read_bytes()
    assert "rows copied from" in (tmp_path / "logs/attack/tiny/flooding/seed1/shard-0.log").read_text()
    summary = json.loads((results / "attack/tiny/flooding/seed1/textfooler/summary.json").read_text())
    assert summary["n_attacked"] == 4


PAIRS_AND_CLASSES = {
    "seeds": [3],
    "model": {"source": "tiny"},
    "datasets": {
        # MRPC-shaped: a byte-order mark, quotes in the text, a text pair, 0/1 labels.
        "pairs": {"source": "local", "path": "data/pairs.tsv", "text_column": "#1 String",
                  "text_pair_column": "#2 String", "label_column": "Quality", "max_length": 48,
                  "dev_fraction": 0.2, "test_fraction": 0.25, "attack_examples": 3, "dev_attack_examples": 2},
        # AG News-shaped: four classes with string labels.
        "topics": {"source": "local", "path": "data/topics.csv", "text_column": "text", "label_column": "topic",
                   "label_names": ["World", "Sports", "Business", "Sci/Tech"], "max_length": 32,
                   "dev_fraction": 0.2, "test_fraction": 0.25, "attack_examples": 3, "dev_attack_examples": 2},
    },
    "training": {"epochs": 2, "batch_size": 8, "eval_batch_size": 32, "learning_rate": 1.0e-3},
    "methods": ["finetune", "flooding", "flooding_x"],
    "flooding": {"grid": {"low": 0.2, "high": 0.4, "step": 0.2}},
    "probe": {"sub_epoch_batches": 2, "max_epochs": 3},
    "search": {"max_levels": 1},
    "attacks": {"recipes": ["textfooler", "bertattack"]},
    "figures": {"noise_alphas": [0.0, 0.5], "per_epoch_attack_examples": 1, "per_epoch_methods": ["finetune"]},
    "profiling": {"steps": 1},
}
TOPIC_WORDS = {"World": "the people of the world and their life", "Sports": "one great fun game to watch",
               "Business": "makes more money every time", "Sci/Tech": "a new film of the world made well"}


def write_pairs_and_topics(folder, sentences):
    data = folder / "data"
    data.mkdir()
    rows = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    for i, ((a, label_a), (b, label_b)) in enumerate(zip(sentences, sentences[7:] + sentences[:7])):
        rows.append(f'{int(label_a == label_b)}\t{i}\t{i + 100}\t"{a}," he said\t{b}')
    (data / "pairs.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    topics = ["text,topic"] + [f'"{text} {words}",{topic}' for topic, words in TOPIC_WORDS.items()
                               for text, _ in sentences[:12]]
    (data / "topics.csv").write_text("\n".join(topics) + "\n")


@pytest.mark.slow
def test_text_pairs_and_four_classes_end_to_end(tmp_path, sentences):
    """A text-pair data set and a 4-class one through the whole DAG: probe, window, both searches, training,
    TextFooler and BERT-Attack on pairs and on four classes, tables and figures."""
    copy_workflow(tmp_path)
    write_pairs_and_topics(tmp_path, sentences)
    (tmp_path / "pairs.yaml").write_text(yaml.safe_dump(PAIRS_AND_CLASSES))
    result = snakemake(tmp_path, "--cores", "2", "--configfile", "pairs.yaml", timeout=2400)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    results = tmp_path / "results"
    meta = json.loads((results / "data/topics/meta.json").read_text())
    assert meta["num_labels"] == 4 and meta["label_names"] == ["World", "Sports", "Business", "Sci/Tech"]
    first = json.loads((results / "data/pairs/train.jsonl").read_text().splitlines()[0])
    assert first["text_pair"] and '" he said' in first["text"] and not first["text"].startswith("\ufeff")
    for dataset in ("pairs", "topics"):
        assert json.loads((results / f"probe/{dataset}/seed3/window.json").read_text())["levels"]
        for recipe in ("textfooler", "bertattack"):
            summary = json.loads((results / f"attack/{dataset}/flooding_x/seed3/{recipe}/summary.json").read_text())
            assert summary["n_attacked"] == 3 and summary["identity"]["dataset"] == dataset
    with open(results / "attack/pairs/finetune/seed3/textfooler/examples.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and all("Text_pair: " in row["original"] for row in rows)   # both columns attacked
    table = pd.read_csv(results / "tables/table2.csv")
    assert set(table["dataset"]) == {"pairs", "topics"} and len(table) == 6
    assert (results / "figures/figure3_topics.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_simulated_gpu_host_with_more_gpu_jobs_allowed_than_slots(tmp_path, sentences):
    """Two visible GPUs (UUIDs in CUDA_VISIBLE_DEVICES), --cores 4 and --resources gpu=3: a third GPU job finds
    both slots taken and waits instead of failing; every job finishes on a slot of its own (FLOODX_DEVICE=cpu
    computes on the CPU, as this machine has no GPU)."""
    copy_workflow(tmp_path)
    config = {**PAIRS_AND_CLASSES, "datasets": {"topics": PAIRS_AND_CLASSES["datasets"]["topics"]},
              "attacks": {"recipes": ["textfooler"]}}
    write_pairs_and_topics(tmp_path, sentences)
    (tmp_path / "gpu.yaml").write_text(yaml.safe_dump(config))
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]), "FLOODX_DEVICE": "cpu",
           "CUDA_VISIBLE_DEVICES": "GPU-aaaa-0000,GPU-bbbb-1111", "FLOODX_GPU_LOCK_DIR": str(tmp_path / "slots"),
           "FLOODX_GPU_WAIT_S": "1800"}
    result = snakemake(tmp_path, "--cores", "4", "--resources", "gpu=3", "--configfile", "gpu.yaml", env=env,
                       timeout=2400)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    claims = {}
    for log in (tmp_path / "logs").rglob("*.log"):
        for slot, device in re.findall(r"floodx: GPU slot (\d) of 2: CUDA_VISIBLE_DEVICES=(\S+)", log.read_text()):
            claims[str(log.relative_to(tmp_path))] = (int(slot), device)
    assert len([c for c in claims if c.startswith("logs/train/")]) == 4     # fine-tune + 2 grid + 1 window run
    assert {device for _, device in claims.values()} == {"GPU-aaaa-0000", "GPU-bbbb-1111"}
    assert all(device == ["GPU-aaaa-0000", "GPU-bbbb-1111"][slot] for slot, device in claims.values())
    waited = [log for log in (tmp_path / "logs").rglob("*.log") if "GPU slots busy; waiting" in log.read_text()]
    assert waited, "no job ever found both slots taken: the run did not test waiting"


@pytest.mark.slow
def test_keep_checkpoints_chosen_removes_unchosen_weights_and_retrains_a_run_whose_dev_attack_must_rerun(tmp_path):
    """training.keep_checkpoints: chosen (the paper config): after both flood-level choices only the chosen
    flood runs keep their weights; nothing is redone afterwards; a dev attack that must run again gets its
    run's weights back by training it again, with the same attack rows."""
    copy_workflow(tmp_path)
    (tmp_path / "chosen.yaml").write_text(yaml.safe_dump({"training": {"keep_checkpoints": "chosen"}}))
    command = ("--cores", "2", "--configfile", "config/tiny.yaml", "chosen.yaml")
    result = snakemake(tmp_path, *command, timeout=2400)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    results = tmp_path / "results"
    chosen = {json.loads((results / f"search/tiny/{m}/seed1/choice.json").read_text())["run"]
              for m in ("flooding", "flooding_x")}
    flood_runs = {p.name for p in (results / "train/tiny").glob("flooding-b*")}
    record = json.loads((results / "search/tiny/seed1/pruned.json").read_text())
    assert set(record["chosen"]) == chosen and record["identity"] == {"dataset": "tiny", "seed": 1}
    assert {r["run"] for r in record["removed"]} == flood_runs - chosen and flood_runs - chosen
    assert record["bytes_freed"] > 0
    for run in flood_runs:
        folder = results / "train/tiny" / run / "seed1"
        assert (folder / "metrics.json").exists() and not (folder / "weights.ready").exists()
        assert (folder / "checkpoints/epoch-2/config.json").exists() == (run in chosen), run
    for method in ("finetune", "pgd"):
        assert (results / f"train/tiny/{method}/seed1/checkpoints/epoch-2/config.json").exists()
    assert (results / "tables/table2.csv").exists()
    again = snakemake(tmp_path, *command, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr

    removed = sorted(flood_runs - chosen)[0]
    dev = results / f"dev_attack/tiny/{removed}/seed1"
    rows = (dev / "shard-0.csv").read_text()
    rerun = snakemake(tmp_path, *command, "--forcerun", f"results/dev_attack/tiny/{removed}/seed1/summary.json")
    assert rerun.returncode == 0, rerun.stdout[-6000:] + rerun.stderr[-6000:]
    assert job_counts(rerun.stdout + rerun.stderr)["train"] == 1
    assert (dev / "shard-0.csv").read_text() == rows
    assert not (results / f"train/tiny/{removed}/seed1/checkpoints").exists()   # removed again after the choice
    again = snakemake(tmp_path, *command, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def report_results(html):
    """The `results` object a Snakemake report embeds: {path: {mime_type, data_uri, ...}}."""
    return json.loads(re.search(r"var results = (\{.*?\});\n", html).group(1))


def snapshot(folder):
    """{relative path: sha256} of every file under `folder`."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- kill -9 and the same command again
KILL_TARGET = "results/attack/tiny/finetune/seed1/textfooler/summary.json"
KILL_OVERLAY = {"training": {"epochs": 8}, "attacks": {"shards": 1},
                "datasets": {"tiny": {"path": "big.csv", "attack_examples": 300}}}


def big_reviews(source, dest, copies=60):
    """The tiny reviews, numbered copies: jobs long enough (seconds) to be killed in the middle."""
    frame = pd.read_csv(source)
    rows = [{**row, "sentence": f"{row['sentence']} (take {k})"} for k in range(copies)
            for row in frame.to_dict("records")]
    pd.DataFrame(rows).to_csv(dest, index=False)


def start(workdir):
    """The README's command (release a stale lock, then Snakemake), started in its own session."""
    import subprocess
    import sys

    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": os.pathsep.join([bin_dir, os.environ["PATH"]])}
    subprocess.run([sys.executable, "-m", "floodx.locks"], cwd=workdir, env=env, check=True)
    return subprocess.Popen([os.path.join(bin_dir, "snakemake"), "--cores", "2", "--configfile",
                             "config/tiny.yaml", "overlay.yaml", "--until", "gather_attack", "--", KILL_TARGET],
                            cwd=workdir, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_session_when(process, condition, timeout=600):
    """SIGKILL every process of `process`'s session (Snakemake and its jobs) once `condition()` holds."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before it could be killed:\n" + process.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
    session = os.getsid(process.pid)
    while True:
        members = [int(p.name) for p in Path("/proc").glob("[0-9]*") if _session_of(p) == session]
        if not members:
            break
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.poll()  # reap Snakemake itself
        time.sleep(0.05)
    process.wait()


def _session_of(proc):
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def mtimes(folder, pattern="*"):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.glob(pattern)) if p.is_file()}


@pytest.mark.slow
def test_kill_9_in_training_and_in_an_attack_then_the_same_command_resumes(tmp_path):
    """kill -9 mid-training and mid-attack; the same command finishes without redoing finished work, and
    the checkpoints and attack rows are those of an uninterrupted run."""
    runs = {}
    for name in ("straight", "killed"):
        workdir = tmp_path / name
        workdir.mkdir()
        copy_workflow(workdir)
        big_reviews(workdir / "config/tiny/reviews.csv", workdir / "big.csv")
        (workdir / "overlay.yaml").write_text(yaml.safe_dump(KILL_OVERLAY))
        runs[name] = workdir

    straight = start(runs["straight"])
    assert straight.wait() == 0, straight.stdout.read()[-3000:]

    work = runs["killed"]
    run_dir = work / "results/train/tiny/finetune/seed1"
    # 1. During training: two epochs finished, the run not.
    kill_session_when(start(work), lambda: (run_dir / "checkpoints/epoch-2/model.safetensors").exists())
    assert not (run_dir / "metrics.json").exists()
    data_before = mtimes(work / "results/data/tiny")
    assert data_before

    # 2. During the attack: some examples finished, the shard not.
    partial = work / "results/attack/tiny/finetune/seed1/textfooler/shard-0.csv.partial"
    rows = lambda: partial.read_text().count("\n") - 1 if partial.exists() else 0  # noqa: E731
    kill_session_when(start(work), lambda: rows() >= 5)
    finished_rows = rows()
    assert not (work / "results/attack/tiny/finetune/seed1/textfooler/shard-0.csv").exists()
    train_log = (work / "logs/train/tiny/finetune/seed1.log").read_text()
    resumed_epoch = re.search(r"resuming after epoch ([2-7]) ", train_log)
    assert resumed_epoch, train_log[-2000:]
    trained = mtimes(run_dir, "**/*")
    assert mtimes(work / "results/data/tiny") == data_before           # prepare was not redone

    # 3. The same command finishes the run; nothing finished is redone.
    resumed = start(work)
    output = resumed.communicate()[0]
    assert resumed.returncode == 0, output[-3000:]
    assert mtimes(work / "results/data/tiny") == data_before
    assert mtimes(run_dir, "**/*") == trained                              # training was not redone
    shard_log = (work / "logs/attack/tiny/finetune/seed1/shard-0.log").read_text()
    resumed_after = int(re.search(r"resuming after (\d+) finished example", shard_log).group(1))
    assert resumed_after >= 5 and resumed_after >= finished_rows - 1     # a torn last row is redone
    print(f"kill -9 in training: resumed after epoch {resumed_epoch.group(1)} of 8; in the attack: "
          f"{finished_rows} rows on disk, resumed after {resumed_after} of 300 examples")

    # ... and what it wrote is what an unbroken run wrote.
    straight_dir = runs["straight"] / "results/train/tiny/finetune/seed1"
    for checkpoint in sorted((straight_dir / "checkpoints").iterdir()):
        for file in sorted(checkpoint.iterdir()):
            assert file.read_bytes() == (run_dir / "checkpoints" / checkpoint.name / file.name).read_bytes(), file
    columns = lambda w: pd.read_csv(w / "results/attack/tiny/finetune/seed1/textfooler/examples.csv").drop(  # noqa: E731
        columns=["seconds"], errors="ignore")
    pd.testing.assert_frame_equal(columns(work), columns(runs["straight"]))
