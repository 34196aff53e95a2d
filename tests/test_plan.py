"""The cost planner: its job counts are the workflow's (against `snakemake -n`), its sources labelled."""

import json
import re

import pytest

from floodx import plan
from workflow_copy import copy_workflow, snakemake


def dry_run_counts(tmp_path, *configfiles):
    copy_workflow(tmp_path, share_resources=False)
    args = ["-n"] + (["--configfile", *configfiles] if configfiles else [])
    result = snakemake(tmp_path, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    return {rule: int(n) for rule, n in counts.items()}


@pytest.mark.parametrize("configfiles", [(), ("config/tiny.yaml",), ("config/paper.yaml",),
                                         ("config/evidence.yaml", "config/successors.yaml")])
def test_the_planned_jobs_are_the_dry_runs(tmp_path, configfiles):
    counts = dry_run_counts(tmp_path, *configfiles)
    result = plan.plan(plan.load([plan.ROOT / c for c in configfiles]), results=tmp_path / "no-results")
    figures = plan.summary(result)
    assert figures["jobs_before_checkpoints"] + 1 == counts["total"]       # + Snakemake's `all`
    trained = sum(r["jobs"] for r in result["rows"] if r["stage"].startswith("train"))
    assert trained == counts["train"]
    assert figures["jobs"] > figures["jobs_before_checkpoints"]          # the window runs, Figure 4's attacks


def test_the_successors_and_adaflood_folds_are_planned_as_the_dry_run_lists_them(tmp_path):
    import yaml

    overlay = {"methods": ["finetune", "flooding", "flooding_x", "iflood", "adaflood", "ttso", "ttso_pp", "als"],
               "method_params": {"iflood": {"flood_level": 0.1}, "adaflood": {"folds": 3}}}
    (tmp_path / "successors.yaml").write_text(yaml.safe_dump(overlay))
    counts = dry_run_counts(tmp_path, "successors.yaml")
    result = plan.plan(plan.load([tmp_path / "successors.yaml"]), results=tmp_path / "no-results")
    assert plan.summary(result)["jobs_before_checkpoints"] + 1 == counts["total"]
    assert counts["adaflood_fold"] == 3 and counts["adaflood_losses"] == 1
    aux = [r for r in result["rows"] if r["stage"] == "AdaFlood auxiliary folds"]
    assert aux[0]["jobs"] == 4 and aux[0]["epochs"] == 3 * 10


def test_every_time_says_whether_it_was_measured_or_assumed(tmp_path, capsys):
    plan.main(["--configfile", str(plan.ROOT / "config/paper.yaml"), "--results", str(tmp_path)])
    out = capsys.readouterr().out
    for name in ("jobs", "gpu_hours", "attack_hours", "disk_peak_gb", "disk_end_gb"):
        assert re.search(rf"^{name}: [\d.e+]+$", out, flags=re.M), name
    assert out.count("training times assumed (paper Table 3") == 5 and "measured" not in out
    profile = tmp_path / "profile" / "rt" / "times.json"
    profile.parent.mkdir(parents=True)
    profile.write_text('{"methods": {"finetune": {"seconds_per_epoch": 4.0}}, "num_train_examples": 256, '
                       '"device": "cpu:test"}')
    result = plan.plan(plan.load([]), results=tmp_path)
    assert result["sources"]["rt"]["training"].startswith("measured")
    assert next(r for r in result["rows"] if r["stage"] == "train finetune")["gpu_hours"] == pytest.approx(
        10 * 4.0 / 3600)


def test_a_device_profile_from_the_gpu_check_rescales_the_paper_times(tmp_path):
    config = plan.load([str(plan.ROOT / "config/paper.yaml")])
    profile = {"mode": "full", "device": "NVIDIA Test", "date": "2026-11-28", "sst2_epoch_seconds": 26.0,
               "ratio_finetune": 1.0, "ratio_pgd": 2.0}
    path = tmp_path / "device_profile.json"
    path.write_text(json.dumps(profile))
    paper = plan.plan(config, results=tmp_path)
    device = plan.plan(config, results=tmp_path, device_profile=plan.read_device_profile(path))
    assert device["sources"]["sst2"]["training"].startswith("device profile (NVIDIA Test")

    def hours(result, stage, dataset="sst2"):
        return next(r["gpu_hours"] for r in result["rows"] if r["stage"] == stage and r["dataset"] == dataset)

    # 10x the 2080Ti's fine-tuning speed on every data set; PGD at the device's own ratio, FreeLB at the paper's.
    for dataset in ("sst2", "qnli"):
        assert hours(device, "train finetune", dataset) == pytest.approx(hours(paper, "train finetune", dataset) / 10)
    assert hours(device, "train pgd") == pytest.approx(2 * hours(device, "train finetune"))
    assert hours(device, "train freelb") == pytest.approx(hours(paper, "train freelb") / 10)


def test_a_reduced_gpu_check_is_no_device_profile(tmp_path):
    from floodx.bench import gpu_check
    from floodx.errors import ConfigError

    path = tmp_path / "reduced.json"
    assert gpu_check.main(["--reduced", "--out", str(path)]) == 0
    assert json.loads(path.read_text())["mode"] == "reduced"
    with pytest.raises(ConfigError, match="not a full GPU check"):
        plan.read_device_profile(path)


def test_before_fine_tune_finishes_the_median_flooding_job_sets_the_training_times(tmp_path):
    """The evidence run trains the flood grid first: its finished jobs (a resumed one counted by its epochs'
    own seconds, not its benchmark's last segment) set the level, and the paper's ratios the rest."""
    results = tmp_path / "results"
    config = plan.load([str(plan.ROOT / "config/evidence.yaml")])
    assumed = plan.epoch_seconds("rt", config["datasets"]["rt"], 2000, results)[0]
    for run, bench, epoch_seconds in (("flooding-b0.10", 500.0, 40.0), ("flooding-b0.20", 800.0, 70.0),
                                      ("flooding-b0.30", 100.0, 90.0), ("pgd", 9000.0, 0.0)):
        folder = results / "train" / "rt" / run / "seed42"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"num_train_examples": 1000, "epochs": [
            {"epoch": e, "seconds": epoch_seconds} for e in range(1, 11)]}))
        bench_dir = tmp_path / "benchmarks" / "train" / "rt" / run
        bench_dir.mkdir(parents=True)
        (bench_dir / "seed42.tsv").write_text(f"s\th:m:s\n{bench}\t0:00:00\n")
    measured, source = plan.epoch_seconds("rt", config["datasets"]["rt"], 2000, results)
    # per epoch of 1000: 50 (benchmark), 80 (benchmark), 90 (its epochs: resumed); median 80, at 2000: 160
    assert measured["flooding"] == pytest.approx(160.0)
    assert measured["pgd"] / measured["flooding"] == pytest.approx(assumed["pgd"] / assumed["flooding"])
    assert source.startswith("measured (the median of 3 Flooding training jobs under ")
    finetune = results / "train" / "rt" / "finetune" / "seed42"        # a fine-tune job, once there, comes first
    finetune.mkdir(parents=True)
    (finetune / "metrics.json").write_text(json.dumps({"num_train_examples": 1000, "epochs": [{"epoch": 1}]}))
    (tmp_path / "benchmarks/train/rt/finetune").mkdir(parents=True)
    (tmp_path / "benchmarks/train/rt/finetune/seed42.tsv").write_text("s\th:m:s\n30.0\t0:00:30\n")
    measured, source = plan.epoch_seconds("rt", config["datasets"]["rt"], 2000, results)
    assert measured["finetune"] == pytest.approx(60.0) and source.startswith("measured (fine-tune's training job")


def test_grid_attacks_measure_the_attack_time_before_table_2s_attacks_run(tmp_path):
    results = tmp_path / "results"
    assert plan.attack_seconds("rt", results, "textfooler")[1].startswith("assumed")
    grid = results / "grid_attack" / "rt" / "flooding-b0.10" / "seed42"
    grid.mkdir(parents=True)
    (grid / "summary.json").write_text(json.dumps({"recipe": "textfooler", "seconds": 450.0, "n_attacked": 300}))
    seconds, source = plan.attack_seconds("rt", results, "textfooler")
    assert seconds == pytest.approx(1.5) and source.startswith("measured (300 textfooler test examples")
    assert plan.attack_seconds("rt", results, "bertattack")[0] == pytest.approx(1.5)   # pooled: nothing else
    identity = {"run": "flooding-b0.10", "seed": 42}
    (grid / "summary.json").write_text(json.dumps({"recipe": "textfooler", "seconds": 450.0, "n_attacked": 300,
                                                   "identity": {**identity, "recipe": "textfooler"}}))
    for recipe, seconds in (("textfooler", 450.0), ("textbugger", 900.0)):   # Table 2: the copy, and its own
        folder = results / "attack" / "rt" / "flooding" / "seed42" / recipe
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"recipe": recipe, "seconds": seconds, "n_attacked": 300,
                                                         "identity": {**identity, "recipe": recipe}}))
    assert plan.attack_seconds("rt", results, "textfooler")[1].startswith("measured (300 textfooler")
    config = plan.load([str(plan.ROOT / "config/evidence.yaml")])
    table2 = next(r for r in plan.plan(config, results=results)["rows"] if r["stage"] == "test attacks")
    # every recipe at its own rate: TextFooler 1.5 s (fine-tune only: the two flood models' are copied),
    # TextBugger 3.0 s, BERT-Attack unmeasured (the pooled 2.25 s)
    assert table2["attack_hours"] == pytest.approx((1 * 300 * 1.5 + 3 * 300 * 3.0 + 3 * 300 * 2.25) / 3600)


def test_a_finished_finetune_job_sets_the_training_times_and_grid_attacks_are_planned(tmp_path):
    """The fine-tune job's own time (Snakemake's benchmark file beside results/) scales every method; the
    evidence config's grid test attacks and a local wall-clock estimate appear."""
    results = tmp_path / "results"
    run = results / "train" / "rt" / "finetune" / "seed42"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"epochs": [{"epoch": e} for e in range(1, 11)],
                                                  "num_train_examples": 1000}))
    bench = tmp_path / "benchmarks" / "train" / "rt" / "finetune"
    bench.mkdir(parents=True)
    (bench / "seed42.tsv").write_text("s\th:m:s\n400.0\t0:06:40\n")
    config = plan.load([str(plan.ROOT / "config/evidence.yaml")])
    result = plan.plan(config, results=results)
    assert result["sources"]["rt"]["training"].startswith("measured (fine-tune's training job")
    finetune = next(r for r in result["rows"] if r["stage"] == "train finetune")
    assert finetune["gpu_hours"] == pytest.approx(10 * 40.0 * 2 / 3600)    # 40 s an epoch of 1000, 2000 here
    grid = next(r for r in result["rows"] if r["stage"] == "test attacks (every searched level)")
    assert grid["examples"] == (10 + 4) * 300 and (grid["jobs"], grid["jobs_after_checkpoints"]) == (1 + 2, 14)
    # Table 2's TextFooler attacks of the two chosen flood runs copy their grid attacks: not counted twice.
    table2 = next(r for r in result["rows"] if r["stage"] == "test attacks")
    assert table2["examples"] == 3 * 3 * 300 - 2 * 300
    one_shard_less = plan.plan({**config, "attacks": {**config["attacks"], "shards": 2}}, results=results)
    assert next(r for r in one_shard_less["rows"] if r["stage"] == "test attacks")["examples"] == 3 * 3 * 300
    figures = plan.summary(result, cores=2)
    assert figures["local_wall_hours"] == pytest.approx(
        sum(r["gpu_hours"] + r["attack_hours"] for r in result["rows"]) / 2)
