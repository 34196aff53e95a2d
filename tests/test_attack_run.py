"""Attack shards: sharding, resume after a crash, text pairs, per-epoch checkpoints, CLI.

Uses the resource-free charswap attack (`recipes.build_charswap_attack`: character deletions +
QWERTY swaps, greedy word-importance search) on the tiny BERT of conftest.py, so nothing here
depends on downloaded resources.
"""

import csv
import json
import os
import random
from pathlib import Path

import pytest
import torch


def _ensure_stopwords(tmp_path_factory):
    """`import textattack` needs NLTK corpora/stopwords/english; make a scratch one if absent."""
    import nltk

    try:
        nltk.data.find("corpora/stopwords/english")
        return
    except LookupError:
        pass
    import stop_words

    root = tmp_path_factory.mktemp("nltk_data")
    target = root / "corpora" / "stopwords"
    target.mkdir(parents=True)
    source = Path(stop_words.__file__).parent / "stop-words" / "english.txt"
    (target / "english").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    os.environ["NLTK_DATA"] = str(root)
    nltk.data.path.insert(0, str(root))


@pytest.fixture(scope="module", autouse=True)
def textattack_ready(tmp_path_factory):
    _ensure_stopwords(tmp_path_factory)
    from floodx.attacks.flair_standin import ensure_flair

    ensure_flair()   # a transformers-5 host: TextAttack imports flair, which cannot be imported there
    import textattack  # noqa: F401


def write_data(folder, pairs, subset_size=12, dev_size=6, with_pairs=False, seed=0):
    """A prepared data directory (design.md format) with a seeded attack subset."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"idx": 100 + i, "text": text,
             "text_pair": (f"{text} indeed" if with_pairs else None), "label": label}
            for i, (text, label) in enumerate(pairs)]
    for split in ("train", "dev", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    order = [r["idx"] for r in rows]
    random.Random(seed).shuffle(order)
    meta = {"dataset": "toy", "num_labels": 2, "label_names": ["neg", "pos"],
            "sizes": {s: len(rows) for s in ("train", "dev", "test")},
            "attack_subset": {"test": order[:subset_size], "dev": order[-dev_size:]}}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def save_trained(model, tokenizer, sentences, folder, steps=20):
    """A few optimiser steps so the tiny model gives a mix of successful/failed/skipped."""
    torch.manual_seed(0)
    encoded = tokenizer([t for t, _ in sentences], padding=True, return_tensors="pt")
    labels = torch.tensor([label for _, label in sentences])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(**encoded, labels=labels).loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def charswap(model, tokenizer):
    from floodx.attacks.recipes import DynamicPaddingWrapper, build_charswap_attack

    return build_charswap_attack(DynamicPaddingWrapper(model, tokenizer, batch_size=16))


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def without_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture
def setup(tmp_path, tiny_model, sentences):
    model, tokenizer = tiny_model
    checkpoint = save_trained(model, tokenizer, sentences, tmp_path / "ckpt")
    data = write_data(tmp_path / "data", sentences)
    return checkpoint, data


def shard(checkpoint, data, out, index=0, num=1, **kw):
    from floodx.attacks.run import attack_shard

    kw.setdefault("build_attack", charswap)
    return attack_shard(checkpoint, data, kw.pop("split", "test"), kw.pop("subset", "test"),
                        "charswap", "offline", index, num, out, "resources", **kw)


# ------------------------------------------------------------------------------------------

def test_interleaved_shards_partition_the_subset():
    from floodx.attacks.examples import shard_of
    from floodx.errors import ConfigError

    indices = list(range(10, 27))
    parts = [shard_of(indices, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == indices
    assert [len(p) for p in parts] == [6, 6, 5]
    assert parts[1][:2] == [11, 14]
    with pytest.raises(ConfigError):
        shard_of(indices, 3, 3)


def test_shards_gathered_equal_unsharded_run(setup, tmp_path):
    from floodx.attacks.metrics import gather
    from floodx.attacks.rows import aggregate, read_rows

    checkpoint, data = setup
    single = shard(checkpoint, data, tmp_path / "single.csv")
    assert single["n"] == 12
    for i in range(3):
        shard(checkpoint, data, tmp_path / f"shard-{i}.csv", i, 3)
    shard_files = [tmp_path / f"shard-{i}.csv" for i in range(3)]
    assert [len(read_rows(p)) for p in shard_files] == [4, 4, 4]

    s1 = gather([tmp_path / "single.csv"], checkpoint, data, tmp_path / "e1.csv",
                tmp_path / "s1.json", recipe="charswap", mode="offline")
    s3 = gather(shard_files, checkpoint, data, tmp_path / "e3.csv", tmp_path / "s3.json",
                recipe="charswap", mode="offline")
    # Same examples, same order (the subset's), same outcomes: the files are identical.
    assert (tmp_path / "e1.csv").read_bytes() == (tmp_path / "e3.csv").read_bytes()
    rows = read_rows(tmp_path / "e1.csv")
    meta = json.loads((data / "meta.json").read_text())
    assert [r["idx"] for r in rows] == meta["attack_subset"]["test"]
    for key in ("aua", "suc", "avg_queries", "n_attacked", "n_successful", "n_failed",
                "n_skipped", "clean_acc"):
        assert s1[key] == s3[key], key
    assert s3["n_shards"] == 3 and len(s3["shard_seconds"]) == 3
    assert aggregate(rows)["aua"] == s1["aua"]
    kinds = {r["result"] for r in rows}
    assert len(kinds) >= 2, kinds  # the trained tiny model is neither always right nor wrong


def test_resume_after_crash_attacks_only_the_rest(setup, tmp_path):
    checkpoint, data = setup
    shard(checkpoint, data, tmp_path / "clean.csv")

    class Crash(Exception):
        pass

    def crash_after(k):
        def hook(n):
            if n == k:
                raise Crash
        return hook

    out = tmp_path / "resumed.csv"
    with pytest.raises(Crash):
        shard(checkpoint, data, out, after_example=crash_after(5))
    partial = tmp_path / "resumed.csv.partial"
    assert not out.exists() and partial.exists()
    assert len(read_csv(partial)) == 5

    attacked = []

    def counting(model, tokenizer):
        attack = charswap(model, tokenizer)
        original = attack.attack

        def attack_one(example, label):
            attacked.append(example)
            return original(example, label)

        attack.attack = attack_one
        return attack

    counting.__qualname__ = charswap.__qualname__  # same attack: the fingerprint must match
    stats = shard(checkpoint, data, out, build_attack=counting)
    assert stats["n_resumed"] == 5 and stats["n_attacked_now"] == 7
    assert len(attacked) == 7
    assert not partial.exists() and not (tmp_path / "resumed.csv.partial.json").exists()
    assert without_seconds(read_csv(out)) == without_seconds(read_csv(tmp_path / "clean.csv"))

    # A finished shard is not redone by the same run...
    before = out.read_bytes()
    attacked.clear()
    assert shard(checkpoint, data, out, build_attack=counting)["already_done"]
    assert attacked == [] and out.read_bytes() == before
    # ...but a retrained checkpoint (new weights, same folder) is attacked again.
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    with torch.no_grad():
        model.classifier.bias.add_(0.5)
    model.save_pretrained(checkpoint)
    stats = shard(checkpoint, data, out, build_attack=counting)
    assert not stats.get("already_done") and len(attacked) == 12 and stats["n_attacked_now"] == 12


def test_torn_last_row_is_redone(setup, tmp_path):
    checkpoint, data = setup
    shard(checkpoint, data, tmp_path / "clean.csv")
    out = tmp_path / "torn.csv"

    def stop_after_three(n):
        if n == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shard(checkpoint, data, out, after_example=stop_after_three)
    partial = tmp_path / "torn.csv.partial"
    with open(partial, "a") as handle:  # a crash in the middle of writing row 4
        handle.write('999,"half a row')
    stats = shard(checkpoint, data, out)
    assert stats["n_resumed"] == 3 and stats["n_attacked_now"] == 9
    assert without_seconds(read_csv(out)) == without_seconds(read_csv(tmp_path / "clean.csv"))


def test_partial_of_another_run_is_not_resumed(setup, tmp_path):
    checkpoint, data = setup
    out = tmp_path / "x.csv"

    def stop(n):
        if n == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shard(checkpoint, data, out, after_example=stop, limit=6)
    # Different limit = different examples: the two finished rows must not be reused blindly.
    stats = shard(checkpoint, data, out, limit=8)
    assert stats["n_resumed"] == 0 and stats["n"] == 8


def test_a_finished_shard_of_the_same_fingerprint_is_copied_not_attacked(setup, tmp_path):
    """Table 2 takes a chosen flood run's grid attack: the same rows, and no query made for them."""
    checkpoint, data = setup
    grid = tmp_path / "grid" / "shard-0.csv"
    grid.parent.mkdir()
    shard(checkpoint, data, grid)

    def no_attack(model, tokenizer):
        raise AssertionError("a copied shard must not build an attack")

    no_attack.__qualname__ = charswap.__qualname__   # the same attack, as the fingerprint names it
    out = tmp_path / "table2" / "shard-0.csv"
    out.parent.mkdir()
    stats = shard(checkpoint, data, out, build_attack=no_attack, reuse=grid)
    assert stats["reused_from"] == str(grid) and stats["n"] == 12 and stats["n_attacked_now"] == 0
    assert out.read_bytes() == grid.read_bytes()
    from floodx.attacks.resume import finished_by
    assert finished_by(out) == finished_by(grid)
    assert shard(checkpoint, data, out, build_attack=no_attack)["already_done"]


def test_a_shard_of_another_fingerprint_is_attacked_not_copied(setup, tmp_path):
    checkpoint, data = setup
    other = tmp_path / "other.csv"
    shard(checkpoint, data, other, limit=6)            # other examples: another fingerprint
    out = tmp_path / "out.csv"
    stats = shard(checkpoint, data, out, reuse=other)
    assert "reused_from" not in stats and stats["n_attacked_now"] == 12
    alone = tmp_path / "alone.csv"
    shard(checkpoint, data, alone)
    assert without_seconds(read_csv(out)) == without_seconds(read_csv(alone))
    missing = tmp_path / "missing.csv"                 # not attacked yet: attack
    assert shard(checkpoint, data, tmp_path / "out2.csv", reuse=missing)["n_attacked_now"] == 12


def test_a_shard_of_older_attack_code_or_without_its_rows_is_attacked_and_the_log_says_why(setup, tmp_path):
    checkpoint, data = setup
    grid = tmp_path / "grid.csv"
    shard(checkpoint, data, grid)
    stamp = grid.with_name("grid.csv.json")
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "code": "an older floodx"}))
    said = []
    stats = shard(checkpoint, data, tmp_path / "out.csv", reuse=grid, log=said.append)
    assert stats["n_attacked_now"] == 12
    assert any("not copied (its fingerprint differs in code)" in line for line in said)
    grid.unlink()                                                               # the stamp without its rows
    said.clear()
    assert shard(checkpoint, data, tmp_path / "out2.csv", reuse=grid, log=said.append)["n_attacked_now"] == 12
    assert any("not copied (it is not a finished shard)" in line for line in said)


def test_a_copy_replaces_an_earlier_tries_partial_rows(setup, tmp_path):
    checkpoint, data = setup
    grid = tmp_path / "grid.csv"
    shard(checkpoint, data, grid)
    out = tmp_path / "out.csv"
    for name in ("out.csv.partial", "out.csv.partial.json"):
        out.with_name(name).write_text("{}")
    assert shard(checkpoint, data, out, reuse=grid)["reused_from"] == str(grid)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out.csv", "out.csv.json"]


def test_a_copied_shard_whose_rows_are_not_its_examples_stops_naming_it(setup, tmp_path):
    from floodx.errors import DataError

    checkpoint, data = setup
    grid = tmp_path / "grid.csv"
    shard(checkpoint, data, grid)
    lines = grid.read_text().splitlines(keepends=True)
    grid.write_text("".join(lines[:-1]))               # a row lost after it finished
    with pytest.raises(DataError, match="grid.csv"):
        shard(checkpoint, data, tmp_path / "out.csv", reuse=grid)
    assert not (tmp_path / "out.csv").exists()


def test_text_pairs_are_attacked_as_two_columns(tmp_path, tiny_model, sentences):
    from collections import OrderedDict

    from floodx.attacks.examples import attack_input

    model, tokenizer = tiny_model
    checkpoint = save_trained(model, tokenizer, sentences, tmp_path / "ckpt")
    data = write_data(tmp_path / "pairs", sentences, subset_size=6, with_pairs=True)
    example = {"idx": 1, "text": "a b", "text_pair": "c d", "label": 0}
    assert attack_input(example) == OrderedDict([("text", "a b"), ("text_pair", "c d")])
    assert attack_input({**example, "text_pair": None}) == "a b"

    shard(checkpoint, data, tmp_path / "pairs.csv")
    rows = read_csv(tmp_path / "pairs.csv")
    assert len(rows) == 6
    for row in rows:
        assert row["original"].startswith("Text: ") and "\nText_pair: " in row["original"]
        assert "\nText_pair: " in row["perturbed"]


def test_dev_subset_and_epoch_checkpoint_with_limit(tmp_path, tiny_model, sentences):
    from floodx.attacks.run import resolve_checkpoint
    from floodx.errors import ResourceError

    model, tokenizer = tiny_model
    run_dir = tmp_path / "run"
    save_trained(model, tokenizer, sentences, run_dir / "checkpoints" / "epoch-2")
    (run_dir / "metrics.json").write_text(json.dumps({"final_checkpoint": "checkpoints/epoch-2"}))
    data = write_data(tmp_path / "data", sentences)
    assert resolve_checkpoint(run_dir, 2) == run_dir / "checkpoints" / "epoch-2"
    assert resolve_checkpoint(run_dir) == run_dir / "checkpoints" / "epoch-2"
    with pytest.raises(ResourceError):
        resolve_checkpoint(run_dir, 7)

    stats = shard(run_dir, data, tmp_path / "dev.csv", subset="dev", split="dev", epoch=2, limit=4)
    assert stats["n"] == 4
    meta = json.loads((data / "meta.json").read_text())
    assert [int(r["idx"]) for r in read_csv(tmp_path / "dev.csv")] == meta["attack_subset"]["dev"][:4]


def test_query_budget_caps_queries(setup, tmp_path):
    checkpoint, data = setup
    shard(checkpoint, data, tmp_path / "b.csv", query_budget=5)
    assert all(int(r["queries"]) <= 5 for r in read_csv(tmp_path / "b.csv"))


def test_cli_runs_a_shard_and_reports_user_errors(setup, tmp_path, monkeypatch, capsys):
    from floodx.attacks import run

    checkpoint, data = setup
    out = tmp_path / "cli" / "shard-1.csv"
    spec = {"recipes": ["charswap"], "mode": "offline", "subset": "test", "resources": "resources",
            "num_shards": 2, "limit": 5}
    stats = run.main(["--spec", json.dumps(spec), "--checkpoint", str(checkpoint), "--data", str(data),
                      "--shard", "1", "--out", str(out), "--threads", "1"])
    assert stats["n"] == 2 and len(read_csv(out)) == 2
    copied = run.main(["--spec", json.dumps({**spec, "reuse": {"charswap": str(out)}}), "--checkpoint",
                       str(checkpoint), "--data", str(data), "--shard", "1", "--out", str(tmp_path / "copy.csv")])
    assert copied["reused_from"] == str(out) and read_csv(tmp_path / "copy.csv") == read_csv(out)
    for reuse, message in (({"nope": "x.csv"}, "--spec: 'reuse' names recipe(s) ['nope']"),
                           ({"charswap": 3}, "--spec: 'reuse' maps a recipe to a shard CSV path")):
        with pytest.raises(SystemExit) as exit_info:
            run.main(["--spec", json.dumps({**spec, "reuse": reuse}), "--checkpoint", str(checkpoint),
                      "--data", str(data), "--out", str(tmp_path / "n.csv")])
        assert exit_info.value.code == 2 and f"floodx: error: {message}" in capsys.readouterr().err
    for bad, message in (({**spec, "recipes": ["nope"]}, "unknown attack recipe 'nope'"),
                         ({**spec, "recipe": "charswap"}, "--spec: unknown key(s) ['recipe']"),
                         ({k: v for k, v in spec.items() if k != "mode"}, "--spec: key 'mode' missing")):
        with pytest.raises(SystemExit) as exit_info:
            run.main(["--spec", json.dumps(bad), "--checkpoint", str(checkpoint), "--data", str(data),
                      "--out", str(tmp_path / "n.csv")])
        assert exit_info.value.code == 2 and f"floodx: error: {message}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--spec", json.dumps(spec), "--checkpoint", str(tmp_path), "--data", str(data),
                  "--out", str(tmp_path / "n.csv")])
    assert exit_info.value.code == 2


def test_cli_attacks_several_epochs_in_one_process_and_gathers_each(tmp_path, tiny_model, sentences):
    """Figure 4's job: every epoch's checkpoint, Clean% taken from the training job's records."""
    from floodx.attacks import run

    model, tokenizer = tiny_model
    run_dir = tmp_path / "run"
    save_trained(model, tokenizer, sentences, run_dir / "checkpoints" / "epoch-1", steps=2)
    save_trained(model, tokenizer, sentences, run_dir / "checkpoints" / "epoch-2", steps=20)
    records = [{"epoch": 1, "test_acc": 0.25, "dev_acc": 0.5}, {"epoch": 2, "test_acc": 0.75, "dev_acc": 0.5}]
    (run_dir / "metrics.json").write_text(json.dumps({"final_checkpoint": "checkpoints/epoch-2", "epochs": records}))
    data = write_data(tmp_path / "data", sentences)
    folder = tmp_path / "out" / "epoch-{epoch}"
    spec = json.dumps({"recipes": ["charswap"], "mode": "offline", "subset": "test", "resources": "resources",
                       "limit": 3, "epochs": [1, 2]})
    common = ["--spec", spec, "--checkpoint", str(run_dir), "--data", str(data)]
    run.main(common + ["--out", f"{folder}/shard-0.csv",
                       "--summary", f"{folder}/summary.json", "--clean-from", str(run_dir / "metrics.json")])
    for epoch, clean in ((1, 25.0), (2, 75.0)):
        summary = json.loads((tmp_path / "out" / f"epoch-{epoch}" / "summary.json").read_text())
        assert summary["clean_acc"] == clean and summary["n_attacked"] == 3
        assert summary["checkpoint"].endswith(f"epoch-{epoch}") and f"epoch {epoch}" in summary["clean_source"]
        assert len(read_csv(tmp_path / "out" / f"epoch-{epoch}" / "examples.csv")) == 3
    # Two epochs into one file would overwrite each other: refused before any work.
    with pytest.raises(SystemExit):
        run.main(common + ["--out", str(tmp_path / "one.csv")])
    assert not (tmp_path / "one.csv").exists()
