"""Flood-level selection: by the dev split only."""

import json

import pytest

from floodx.errors import ConfigError, DataError
from floodx.search import main, select_level


def candidate(folder, level, dev_acc, test_acc, aua=None, dev_aua=None):
    """A metrics.json (and dev attack summary) for one grid run."""
    run = folder / f"flooding-b{level}"
    run.mkdir(parents=True)
    metrics = {"epochs": [
        {"epoch": 1, "dev_acc": 0.5, "test_acc": 0.5, "dev_loss": 0.7, "test_loss": 0.7},
        {"epoch": 2, "dev_acc": dev_acc, "test_acc": test_acc, "dev_loss": 0.4, "test_loss": 0.1},
    ]}
    (run / "metrics.json").write_text(json.dumps(metrics))
    dev = None
    if dev_aua is not None:
        dev = run / "dev_summary.json"
        dev.write_text(json.dumps({"aua": dev_aua, "clean_acc": dev_acc * 100}))
    if aua is not None:   # a test-split attack summary lying next to it: must never matter
        (run / "summary.json").write_text(json.dumps({"aua": aua}))
    return str(run / "metrics.json"), (str(dev) if dev else None)


def test_dev_attack_picks_best_dev_robustness_not_test(tmp_path):
    candidates = {
        "0.10": candidate(tmp_path, "0.10", dev_acc=0.80, test_acc=0.99, aua=90.0, dev_aua=20.0),   # best test
        "0.11": candidate(tmp_path, "0.11", dev_acc=0.78, test_acc=0.70, aua=10.0, dev_aua=35.0),   # best dev
        "0.12": candidate(tmp_path, "0.12", dev_acc=0.85, test_acc=0.80, aua=30.0, dev_aua=30.0),
    }
    choice = select_level(candidates, "dev_attack")
    assert choice["chosen"] == "0.11" and choice["run"] == "flooding-b0.11"
    assert choice["scores"] == {"0.10": 20.0, "0.11": 35.0, "0.12": 30.0}
    assert choice["n_training_runs"] == 3


def test_dev_acc_picks_best_dev_accuracy_not_test(tmp_path):
    candidates = {
        "0.20": candidate(tmp_path, "0.20", dev_acc=0.70, test_acc=0.95),
        "0.30": candidate(tmp_path, "0.30", dev_acc=0.75, test_acc=0.60),
    }
    choice = select_level(candidates, "dev_acc", extra_runs=1)
    assert choice["chosen"] == "0.30" and choice["n_training_runs"] == 3


def test_ties_go_to_dev_accuracy_then_the_lower_level(tmp_path):
    candidates = {
        "0.15": candidate(tmp_path, "0.15", dev_acc=0.80, test_acc=0.9, dev_aua=30.0),
        "0.13": candidate(tmp_path, "0.13", dev_acc=0.80, test_acc=0.9, dev_aua=30.0),
        "0.14": candidate(tmp_path, "0.14", dev_acc=0.82, test_acc=0.1, dev_aua=25.0),
    }
    assert select_level(candidates, "dev_attack")["chosen"] == "0.13"
    candidates["0.16"] = candidate(tmp_path, "0.16", dev_acc=0.81, test_acc=0.1, dev_aua=30.0)
    assert select_level(candidates, "dev_attack")["chosen"] == "0.16"


def test_missing_or_broken_inputs_are_user_errors(tmp_path):
    metrics, _ = candidate(tmp_path, "0.10", dev_acc=0.8, test_acc=0.8)
    with pytest.raises(ConfigError, match="needs a dev attack summary for level 0.10"):
        select_level({"0.10": (metrics, None)}, "dev_attack")
    with pytest.raises(DataError, match="does not exist"):
        select_level({"0.10": (metrics, str(tmp_path / "nope.json"))}, "dev_attack")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"aua": None}))
    with pytest.raises(DataError, match="'aua' is missing"):
        select_level({"0.10": (metrics, str(broken))}, "dev_attack")
    with pytest.raises(ConfigError, match="criterion"):
        select_level({"0.10": (metrics, None)}, "test_acc")
    with pytest.raises(ConfigError, match="given twice"):
        select_level({"0.1": (metrics, None), "0.10": (metrics, None)}, "dev_acc")


def test_cli_writes_choice_json(tmp_path, capsys):
    a = candidate(tmp_path, "0.12", dev_acc=0.8, test_acc=0.99, dev_aua=10.0)
    b = candidate(tmp_path, "0.13", dev_acc=0.7, test_acc=0.50, dev_aua=12.5)
    out = tmp_path / "search" / "choice.json"
    identity = {"dataset": "rt", "method": "flooding_x", "seed": 42}
    spec = json.dumps({"identity": identity, "criterion": "dev_attack", "extra_runs": 1})
    main(["--candidate", "0.12", *a, "--candidate", "0.13", *b, "--spec", spec, "--out", str(out)])
    choice = json.loads(out.read_text())
    for key in ("levels", "scores", "criterion", "chosen", "run", "n_training_runs", "provenance"):
        assert key in choice
    assert choice["chosen"] == "0.13" and choice["run"] == "flooding-b0.13"
    assert choice["levels"] == ["0.12", "0.13"] and choice["n_training_runs"] == 3
    assert choice["method"] == "flooding_x" and choice["identity"] == identity
    with pytest.raises(SystemExit) as exit_info:
        main(["--candidate", "0.12", "--spec", spec, "--out", str(out)])
    assert exit_info.value.code == 2
    assert "floodx: error: --candidate takes LEVEL METRICS [DEVATTACK]" in capsys.readouterr().err


class NoTestKeys(dict):
    """A metrics record that fails the test if anything reads a test-split value."""

    def _check(self, key):
        assert not str(key).startswith("test"), f"search read '{key}'"

    def __getitem__(self, key):
        self._check(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._check(key)
        return super().get(key, default)


def test_test_split_values_are_never_read(tmp_path, monkeypatch):
    import floodx.search as search

    real = search.read_json

    def guarded(path):
        data = real(path)
        if "epochs" in data:
            data["epochs"] = [NoTestKeys(e) for e in data["epochs"]]
        return NoTestKeys(data)

    monkeypatch.setattr(search, "read_json", guarded)
    candidates = {"0.10": candidate(tmp_path, "0.10", dev_acc=0.8, test_acc=0.9, dev_aua=20.0),
                  "0.11": candidate(tmp_path, "0.11", dev_acc=0.7, test_acc=0.1, dev_aua=21.0)}
    assert select_level(candidates, "dev_attack")["chosen"] == "0.11"
    assert select_level(candidates, "dev_acc")["chosen"] == "0.10"
