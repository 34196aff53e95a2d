"""What is left of a run: Snakemake's listed jobs, costed from the folder's measurements less what a resume skips."""

import json
import re

import pytest

from floodx import plan, progress
from workflow_copy import copy_workflow

TINY = plan.ROOT / "config" / "tiny.yaml"


def test_every_job_of_a_real_dry_run_is_read(tmp_path):
    """The parser against Snakemake's own output: as many jobs per rule as its Job stats table counts."""
    copy_workflow(tmp_path, share_resources=False)
    output = progress.dry_run(tmp_path, [TINY])
    stats = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.M)}
    jobs = progress.listed_jobs(output)
    counted = {}
    for rule, _ in jobs:
        counted[rule] = counted.get(rule, 0) + 1
    assert counted == {rule: n for rule, n in stats.items() if rule not in ("total", "all")}
    assert all(w["dataset"] == "tiny" for rule, w in jobs if rule == "train") and counted["train"] > 1
    by_rule, total = progress.estimate(plan.load([TINY]), tmp_path, jobs)
    assert by_rule["train"]["basis"] == "model" and by_rule["train"]["hours"] > 0 and total >= by_rule["train"]["hours"]


def _measured_folder(run_dir, config, per_epoch, per_example):
    """A folder whose profile and one finished attack give these rates (seconds per epoch, per example)."""
    results = run_dir / "results"
    train = plan.split_sizes("tiny", config["datasets"]["tiny"], config["seeds"][0])[0]
    (results / "profile/tiny").mkdir(parents=True)
    (results / "profile/tiny/times.json").write_text(json.dumps(
        {"num_train_examples": train, "device": "test",
         "methods": {m: {"seconds_per_epoch": s} for m, s in per_epoch.items()}}))
    attack = results / "attack/tiny/finetune/seed1/textfooler"
    attack.mkdir(parents=True)
    (attack / "summary.json").write_text(json.dumps({"recipe": "textfooler", "seconds": 10 * per_example,
                                                     "n_attacked": 10}))
    return results


def test_a_stopped_job_costs_what_its_resume_has_left(tmp_path):
    config = plan.load([TINY])
    epochs, attacked = config["training"]["epochs"], plan.split_sizes("tiny", config["datasets"]["tiny"], 1)[2]
    results = _measured_folder(tmp_path, config, {"finetune": 10.0, "flooding": 12.0, "pgd": 60.0}, 2.0)
    run = results / "train/tiny/flooding-b0.10/seed1"
    run.mkdir(parents=True)
    (run / "progress.json").write_text(json.dumps({"epochs": [{"epoch": e} for e in range(1, 3)]}))   # 2 done
    grid = results / "grid_attack/tiny/flooding-b0.10/seed1"
    grid.mkdir(parents=True)
    (grid / "shard-0.csv.partial").write_text("idx,original,result\n" + "".join(
        f'{i},"a, quoted\ntext",successful\n' for i in range(3)))                             # 3 rows done
    jobs = [("train", {"dataset": "tiny", "run": "flooding-b0.10", "seed": "1"}),
            ("train", {"dataset": "tiny", "run": "pgd", "seed": "1"}),
            ("grid_attack", {"dataset": "tiny", "run": "flooding-b0.10", "seed": "1"}),
            ("attack_shard", {"dataset": "tiny", "method": "pgd", "seed": "1", "shard": "0"}),
            ("table2", {})]
    by_rule, total = progress.estimate(config, tmp_path, jobs)
    shards, recipes = config["attacks"]["shards"], config["attacks"]["recipes"]
    expected_train = ((epochs - 2) * 12.0 + epochs * 60.0) / 3600
    expected_grid = (attacked - 3) * 2.0 / 3600
    expected_shard = len(range(0, attacked, shards)) * len(recipes) * 2.0 / 3600
    assert by_rule["train"] == {"jobs": 2, "hours": pytest.approx(expected_train), "basis": "model"}
    assert by_rule["grid_attack"]["hours"] == pytest.approx(expected_grid)
    assert by_rule["attack_shard"]["hours"] == pytest.approx(expected_shard)
    assert by_rule["table2"] == {"jobs": 1, "hours": 0.0, "basis": "unmeasured"}
    (tmp_path / "benchmarks/table2").mkdir(parents=True)
    for name, seconds in (("a", 30), ("b", 90), ("c", 60)):
        (tmp_path / f"benchmarks/table2/{name}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:00\n")
    by_rule, total = progress.estimate(config, tmp_path, jobs)
    assert by_rule["table2"] == {"jobs": 1, "hours": pytest.approx(60 / 3600), "basis": "benchmarks"}
    assert total == pytest.approx(expected_train + expected_grid + expected_shard + 60 / 3600)
    text = progress.report(by_rule, total, 2, [])
    assert f"wall_hours_left: {total / 2:.2f}" in text and "not_listed:" in text
    sources = {}
    progress.estimate(config, tmp_path, jobs, sources)
    text = progress.report(by_rule, total, 2, [], sources)
    assert "rates_tiny: training measured (" in text and "rates_tiny: textfooler attacks measured (" in text
    assert "far below a CPU's" not in text
    (results / "profile/tiny/times.json").unlink()              # nothing measured: the paper's GPU times
    sources = {}
    progress.estimate(config, tmp_path, jobs[:1], sources)
    assert "training assumed (paper Table 3" in progress.report({}, 0.0, 2, [], sources)
    assert "far below a CPU's" in progress.report({}, 0.0, 2, [], sources)
    # With one shard, a chosen flood run's search-recipe attack copies its grid attack: it costs nothing.
    one_shard = {**config, "attacks": {**config["attacks"], "shards": 1, "recipes": ["textfooler", "textbugger"]}}
    flood_job = [("attack_shard", {"dataset": "tiny", "method": "flooding", "seed": "1", "shard": "0"})]
    by_rule, _ = progress.estimate(one_shard, tmp_path, flood_job)
    assert by_rule["attack_shard"]["hours"] == pytest.approx(attacked * 2.0 / 3600)   # TextBugger's only
    # ... unless that grid shard was finished by other attack code: then its fingerprint differs.
    choice = results / "search/tiny/flooding/seed1/choice.json"
    choice.parent.mkdir(parents=True)
    choice.write_text(json.dumps({"run": "flooding-b0.10"}))
    (grid / "shard-0.csv.json").write_text(json.dumps({"code": "an older floodx"}))
    by_rule, _ = progress.estimate(one_shard, tmp_path, flood_job)
    assert by_rule["attack_shard"]["hours"] == pytest.approx(2 * attacked * 2.0 / 3600)
    from floodx.attacks.resume import code_digest
    (grid / "shard-0.csv.json").write_text(json.dumps({"code": code_digest()}))
    by_rule, _ = progress.estimate(one_shard, tmp_path, flood_job)                 # its stamp without its rows
    assert by_rule["attack_shard"]["hours"] == pytest.approx(2 * attacked * 2.0 / 3600)
    (grid / "shard-0.csv").write_text("idx\n")
    by_rule, _ = progress.estimate(one_shard, tmp_path, flood_job)
    assert by_rule["attack_shard"]["hours"] == pytest.approx(attacked * 2.0 / 3600)
