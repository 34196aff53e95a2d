"""Robustness metrics agree with TextAttack's own metric classes; gather writes the contract."""

import json
import math
import os
import random
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def textattack_ready(tmp_path_factory):
    """`import textattack` needs NLTK corpora/stopwords/english; make a scratch one if absent."""
    import nltk

    try:
        nltk.data.find("corpora/stopwords/english")
    except LookupError:
        import stop_words

        root = tmp_path_factory.mktemp("nltk_data")
        (root / "corpora" / "stopwords").mkdir(parents=True)
        source = Path(stop_words.__file__).parent / "stop-words" / "english.txt"
        (root / "corpora" / "stopwords" / "english").write_text(source.read_text("utf-8"))
        os.environ["NLTK_DATA"] = str(root)
        nltk.data.path.insert(0, str(root))
    from floodx.attacks.flair_standin import ensure_flair

    ensure_flair()   # a transformers-5 host: TextAttack imports flair, which cannot be imported there
    import textattack  # noqa: F401


def goal_result(text, output, status, queries, truth):
    from textattack.goal_function_results import ClassificationGoalFunctionResult
    from textattack.shared import AttackedText

    raw = torch.tensor([0.8, 0.2]) if output == 0 else torch.tensor([0.2, 0.8])
    return ClassificationGoalFunctionResult(AttackedText(text), raw, output, status,
                                            0.5, queries, truth)


def hand_built(kind, queries, text="a fine film", truth=1):
    """A TextAttack result of `kind` (successful|failed|skipped) with `queries` model queries."""
    from textattack.attack_results import (
        FailedAttackResult,
        SkippedAttackResult,
        SuccessfulAttackResult,
    )
    from textattack.goal_function_results import GoalFunctionResultStatus as S

    if kind == "skipped":
        return SkippedAttackResult(goal_result(text, 1 - truth, S.SKIPPED, queries, truth))
    original = goal_result(text, truth, S.SEARCHING, 1, truth)
    if kind == "failed":
        return FailedAttackResult(original,
                                  goal_result(text + "s", truth, S.SEARCHING, queries, truth))
    return SuccessfulAttackResult(original,
                                  goal_result("a fnie film", 1 - truth, S.SUCCEEDED, queries,
                                              truth))


def textattack_metrics(results):
    from textattack.metrics import AttackQueries, AttackSuccessRate

    rate = AttackSuccessRate().calculate(results)
    with pytest.warns(RuntimeWarning) if all(
            type(r).__name__ == "SkippedAttackResult" for r in results) else _nothing():
        queries = AttackQueries().calculate(results)
    return rate, queries


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def assert_agrees(rows, results):
    from floodx.attacks.rows import aggregate

    ours = aggregate(rows)
    rate, queries = textattack_metrics(results)
    assert ours["n_successful"] == rate["successful_attacks"]
    assert ours["n_failed"] == rate["failed_attacks"]
    assert ours["n_skipped"] == rate["skipped_attacks"]
    assert ours["attacked_acc"] == rate["original_accuracy"]
    assert ours["aua"] == rate["attack_accuracy_perc"]
    assert ours["suc"] == rate["attack_success_rate"]
    if math.isnan(queries["avg_num_queries"]):
        assert ours["avg_queries"] is None
    else:
        assert ours["avg_queries"] == queries["avg_num_queries"]
    return ours


def test_aggregate_on_hand_built_rows():
    from floodx.attacks.rows import aggregate

    rows = ([{"result": "successful", "queries": q} for q in (10, 20, 30)]
            + [{"result": "failed", "queries": 41}]
            + [{"result": "skipped", "queries": 1}] * 2)
    m = aggregate(rows)
    assert m == {"n_attacked": 6, "n_successful": 3, "n_failed": 1, "n_skipped": 2,
                 "attacked_acc": 66.67, "aua": 16.67, "suc": 75.0, "avg_queries": 25.25}
    assert aggregate([])["aua"] is None
    only_skipped = aggregate([{"result": "skipped", "queries": 1}])
    assert only_skipped["suc"] == 0 and only_skipped["aua"] == 0 and only_skipped["avg_queries"] is None


@pytest.mark.parametrize("seed", range(6))
def test_aggregate_agrees_with_textattack_on_result_objects(seed):
    from floodx.attacks.rows import result_row

    rng = random.Random(seed)
    n = rng.randint(1, 30)
    kinds = [rng.choice(["successful", "failed", "skipped"]) for _ in range(n)]
    if seed == 0:
        kinds = ["skipped"] * 3  # TextAttack: suc 0, avg queries nan
    if seed == 1:
        kinds = ["successful", "failed", "failed"]
    results = [hand_built(k, 1 if k == "skipped" else rng.randint(2, 500), truth=rng.randint(0, 1))
               for k in kinds]
    rows = [result_row(i, r) for i, r in enumerate(results)]
    assert [r["result"] for r in rows] == kinds
    ours = assert_agrees(rows, results)
    assert ours["n_attacked"] == len(kinds)


def test_result_rows_of_hand_built_results():
    from floodx.attacks.rows import result_row

    ok = result_row(7, hand_built("successful", 42, truth=1), seconds=0.5)
    assert ok == {"idx": 7, "original": "a fine film", "perturbed": "a fnie film",
                  "result": "successful", "queries": 42, "ground_truth": 1,
                  "original_output": 1, "perturbed_output": 0, "seconds": 0.5}
    skipped = result_row(8, hand_built("skipped", 1, truth=1))
    assert skipped["perturbed"] == skipped["original"] and skipped["original_output"] == 0


def test_aggregate_agrees_with_textattack_on_a_real_attack(tiny_model, sentences):
    """Rows made from real `Attack.attack` results give TextAttack's numbers."""
    from floodx.attacks.recipes import DynamicPaddingWrapper, build_charswap_attack
    from floodx.attacks.rows import result_row

    model, tokenizer = tiny_model
    torch.manual_seed(0)
    encoded = tokenizer([t for t, _ in sentences], padding=True, return_tensors="pt")
    labels = torch.tensor([label for _, label in sentences])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(20):
        optimizer.zero_grad()
        model(**encoded, labels=labels).loss.backward()
        optimizer.step()
    model.eval()
    attack = build_charswap_attack(DynamicPaddingWrapper(model, tokenizer))
    results = [attack.attack(text, label) for text, label in sentences[::2]]
    rows = [result_row(i, r) for i, r in enumerate(results)]
    assert_agrees(rows, results)


# ------------------------------------------------------------------------------------------
# gather + clean accuracy

def _data(folder, sentences, subset):
    folder.mkdir(parents=True)
    rows = [{"idx": i, "text": t, "text_pair": None, "label": y}
            for i, (t, y) in enumerate(sentences)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:10]))
    (folder / "meta.json").write_text(json.dumps({"attack_subset": {"test": subset,
                                                                    "dev": [3, 1]}}))
    return rows


def _shard_csv(path, rows):
    from floodx.attacks.rows import SHARD_COLUMNS, write_rows

    write_rows(path, rows, SHARD_COLUMNS)


def _row(idx, kind, queries, truth, out, seconds=1.0):
    return {"idx": idx, "original": f"text {idx}", "perturbed": f"text {idx}!", "result": kind,
            "queries": queries, "ground_truth": truth, "original_output": out,
            "perturbed_output": out if kind != "successful" else 1 - out, "seconds": seconds}


@pytest.fixture
def checkpoint(tmp_path, tiny_model):
    model, tokenizer = tiny_model
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_clean_accuracy_is_on_the_whole_split(tmp_path, tiny_model, sentences, checkpoint):
    from floodx.attacks.metrics import clean_accuracy

    rows = _data(tmp_path / "data", sentences, [0, 1])
    model, tokenizer = tiny_model
    model.eval()
    encoded = tokenizer([r["text"] for r in rows], padding=True, return_tensors="pt")
    with torch.no_grad():
        predicted = model(**encoded).logits.argmax(-1).tolist()
    expected = 100.0 * sum(p == r["label"] for p, r in zip(predicted, rows)) / len(rows)
    clean = clean_accuracy(checkpoint, tmp_path / "data", "test", batch_size=7)
    assert clean["n_clean"] == 40
    assert clean["clean_acc"] == pytest.approx(expected)
    assert clean["predictions"] == {r["idx"]: p for r, p in zip(rows, predicted)}


def test_gather_writes_the_contract_and_checks_coverage(tmp_path, sentences, checkpoint):
    from floodx.attacks.metrics import gather
    from floodx.attacks.rows import COLUMNS, read_rows
    from floodx.errors import DataError

    _data(tmp_path / "data", sentences, [5, 2, 30, 9, 11, 7])
    # Interleaved shards of the subset, as attack_shard makes them.
    _shard_csv(tmp_path / "s0.csv", [_row(5, "successful", 10, 1, 1, 2.0),
                                     _row(11, "skipped", 1, 0, 1, 0.5)])
    _shard_csv(tmp_path / "s1.csv", [_row(2, "failed", 30, 1, 1, 3.0),
                                     _row(7, "failed", 20, 0, 0, 1.0)])
    _shard_csv(tmp_path / "s2.csv", [_row(30, "successful", 5, 0, 0, 1.0),
                                     _row(9, "failed", 15, 1, 1, 1.5)])
    spec = {"recipe": "textfooler", "mode": "paper", "identity": {"dataset": "rt", "seed": 42, "recipe": "textfooler"}}
    shards = [tmp_path / f"s{i}.csv" for i in range(3)]
    with pytest.raises(DataError, match="is a shard missing"):  # a lost shard is no prefix
        gather([shards[0], shards[2]], checkpoint, tmp_path / "data", tmp_path / "ex.csv",
               tmp_path / "summary.json", **spec)
    assert not (tmp_path / "summary.json").exists()
    summary = gather(shards, checkpoint, tmp_path / "data", tmp_path / "ex.csv",
                     tmp_path / "summary.json", **spec)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    design_keys = {"clean_acc", "aua", "suc", "avg_queries", "n_attacked", "n_successful",
                   "n_failed", "n_skipped", "seconds", "mode", "substitutions", "checkpoint",
                   "provenance", "host_deviations"}
    assert design_keys <= set(on_disk) and isinstance(on_disk["host_deviations"], list)
    assert on_disk["aua"] == 50.0 and on_disk["suc"] == 40.0 and on_disk["n_attacked"] == 6
    assert on_disk["avg_queries"] == 16.0 and on_disk["attacked_acc"] == pytest.approx(83.33)
    assert on_disk["seconds"] == 9.0 and on_disk["seconds_wall"] == 4.0
    assert on_disk["mode"] == "paper" and on_disk["substitutions"] == {}
    assert on_disk["provenance"]["spec"]["identity"] == spec["identity"] and on_disk["provenance"]["seed"] == 42
    assert 0 <= on_disk["clean_acc"] <= 100 and on_disk["n_clean"] == 40
    assert summary["aua"] == on_disk["aua"]
    header = (tmp_path / "ex.csv").read_text().splitlines()[0]
    assert header == ",".join(COLUMNS)  # examples.csv has exactly the design's columns
    assert [r["idx"] for r in read_rows(tmp_path / "ex.csv")] == [5, 2, 30, 9, 11, 7]

    with pytest.raises(DataError, match="also in"):
        gather(shards + [shards[2]], checkpoint, tmp_path / "data",
               tmp_path / "ex.csv", tmp_path / "summary.json", **spec)

    # A run with --limit 4 (first 4 of the subset, 2 interleaved shards).
    _shard_csv(tmp_path / "l0.csv", [_row(5, "failed", 3, 1, 1), _row(30, "failed", 3, 0, 0)])
    _shard_csv(tmp_path / "l1.csv", [_row(2, "failed", 3, 1, 1), _row(9, "skipped", 1, 1, 0)])
    limited = [tmp_path / "l0.csv", tmp_path / "l1.csv"]
    for limit in (None, 4):
        out = gather(limited, checkpoint, tmp_path / "data", tmp_path / "l.csv",
                     tmp_path / "l.json", **spec, limit=limit, clean=False)
        assert out["n_attacked"] == 4 and out["n_subset"] == 6 and out["clean_acc"] is None
    with pytest.raises(DataError, match="first 3"):
        gather(limited, checkpoint, tmp_path / "data", tmp_path / "l.csv", tmp_path / "l.json",
               **spec, limit=3, clean=False)


def test_gather_cli_reads_the_rules_spec_and_records_the_identity(tmp_path, sentences, checkpoint):
    from floodx.attacks import metrics

    _data(tmp_path / "data", sentences, [5, 2])
    _shard_csv(tmp_path / "d.csv", [_row(3, "failed", 4, 1, 1), _row(1, "failed", 4, 1, 1)])
    identity = {"dataset": "rt", "method": "finetune", "run": "finetune", "flood_level": None, "seed": 42,
                "recipe": "textbugger", "epoch": 10}
    spec = {"identity": identity, "attacks": {"mode": "paper", "query_budget": 300, "shards": 2}}
    out = metrics.main(["gather", "--shards", str(tmp_path / "d.csv"), "--checkpoint", str(checkpoint),
                        "--data", str(tmp_path / "data"), "--out-examples", str(tmp_path / "e.csv"),
                        "--out-summary", str(tmp_path / "s.json"), "--spec", json.dumps(spec),
                        "--split", "dev", "--no-clean"])
    assert (out["recipe"], out["mode"], out["query_budget"]) == ("textbugger", "paper", 300)
    assert out["identity"] == identity and out["provenance"]["seed"] == 42  # the file says what it is
    assert out["subset"] == "dev" and out["split"] == "dev"  # --split dev implies the dev subset


def test_gather_cli(tmp_path, sentences, checkpoint, capsys):
    from floodx.attacks import metrics

    _data(tmp_path / "data", sentences, [5, 2])
    _shard_csv(tmp_path / "a.csv", [_row(3, "failed", 4, 1, 1)])
    _shard_csv(tmp_path / "b.csv", [_row(1, "successful", 9, 0, 0)])
    metrics.main(["gather", "--shards", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"),
                  "--checkpoint", str(checkpoint), "--data", str(tmp_path / "data"),
                  "--subset", "dev", "--out-examples", str(tmp_path / "out" / "examples.csv"),
                  "--out-summary", str(tmp_path / "out" / "summary.json"),
                  "--spec", json.dumps({"identity": {"recipe": "textfooler"}, "attacks": {"mode": "offline"}})])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_attacked"] == 2 and summary["aua"] == 50.0 and summary["suc"] == 50.0
    assert summary["split"] == "dev" and summary["n_clean"] == 10
    with pytest.raises(SystemExit) as exit_info:
        metrics.main(["gather", "--shards", str(tmp_path / "missing.csv"), "--checkpoint",
                      str(checkpoint), "--data", str(tmp_path / "data"), "--out-examples",
                      str(tmp_path / "e.csv"), "--out-summary", str(tmp_path / "s.json"),
                      "--spec", json.dumps({"identity": {"recipe": "textfooler"}, "attacks": {"mode": "offline"}})])
    assert exit_info.value.code == 2
    assert "missing.csv: no such attack result file" in capsys.readouterr().err


def test_recorded_clean_accuracy_reads_the_training_jobs_evaluation(tmp_path, sentences, checkpoint):
    from floodx.attacks.metrics import gather, recorded_clean_accuracy
    from floodx.errors import DataError

    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"final_checkpoint": "checkpoints/epoch-3", "epochs": [
        {"epoch": e, "test_acc": acc, "dev_acc": 0.5} for e, acc in ((1, 0.5), (2, 0.6), (3, 0.7149999737739563))]}))
    assert recorded_clean_accuracy(metrics, "test")["clean_acc"] == pytest.approx(71.5)  # the final epoch
    assert recorded_clean_accuracy(metrics, "test", 2)["clean_acc"] == pytest.approx(60.0)
    with pytest.raises(DataError, match=r"metrics\.json: no test_acc recorded for epoch 4"):
        recorded_clean_accuracy(metrics, "test", 4)

    _data(tmp_path / "data", sentences, [5, 2])
    _shard_csv(tmp_path / "a.csv", [_row(5, "failed", 4, 1, 1), _row(2, "successful", 9, 0, 0)])
    summary = gather([tmp_path / "a.csv"], checkpoint, tmp_path / "data", tmp_path / "e.csv",
                     tmp_path / "s.json", recipe="textfooler", mode="offline", clean_from=metrics)
    assert summary["clean_acc"] == 71.5 and summary["n_clean"] == 40
    assert "epoch 3" in summary["clean_source"] and summary["aua"] == 50.0
    assert summary["training_precision"] is None        # a metrics.json from before the record

    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "training_precision": "bf16+fp32"}))
    summary = gather([tmp_path / "a.csv"], checkpoint, tmp_path / "data", tmp_path / "e.csv",
                     tmp_path / "s.json", recipe="textfooler", mode="offline", clean_from=(metrics, 3))
    assert summary["training_precision"] == "bf16+fp32"
