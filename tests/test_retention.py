"""floodx.retention: only the weights of flood runs no choice picked are removed, and nothing else."""

import json

import pytest

from floodx.errors import DataError
from floodx.retention import prune


def make_run(root, run, seed=42, dataset="sst2"):
    folder = root / "train" / dataset / run / f"seed{seed}"
    (folder / "checkpoints/epoch-3").mkdir(parents=True)
    (folder / "checkpoints/epoch-3/model.safetensors").write_bytes(b"w" * 1000)
    (folder / "metrics.json").write_text(json.dumps({"dataset": dataset, "run": run, "seed": seed}))  # the run's identity
    return folder


def make_choice(root, method, run, seed=42, dataset="sst2"):
    path = root / f"{method}.json"
    path.write_text(json.dumps({"run": run, "identity": {"dataset": dataset, "method": method, "seed": seed}}))
    return path


def test_only_the_runs_no_choice_picked_lose_their_weights(tmp_path):
    runs = {r: make_run(tmp_path, r) for r in ("flooding-b0.01", "flooding-b0.02", "flooding-b0.03", "flooding-b0.04")}
    choices = [make_choice(tmp_path, "flooding", "flooding-b0.02"), make_choice(tmp_path, "flooding_x", "flooding-b0.04")]
    record = prune(list(runs.values()), choices, tmp_path / "pruned.json")
    assert sorted(r["run"] for r in record["removed"]) == ["flooding-b0.01", "flooding-b0.03"]
    assert record["bytes_freed"] == 2000 and record["chosen"] == ["flooding-b0.02", "flooding-b0.04"]
    for run, folder in runs.items():
        assert (folder / "metrics.json").exists()
        assert (folder / "checkpoints").exists() == (run in record["chosen"])
    assert json.loads((tmp_path / "pruned.json").read_text())["removed"] == record["removed"]
    # Again (e.g. after a rerun of the choices): nothing left to remove, nothing chosen touched.
    again = prune(list(runs.values()), choices, tmp_path / "pruned.json")
    assert again["bytes_freed"] == 0 and (runs["flooding-b0.02"] / "checkpoints/epoch-3").exists()


def test_one_choice_for_both_methods_keeps_that_run(tmp_path):
    runs = [make_run(tmp_path, r) for r in ("flooding-b0.01", "flooding-b0.02")]
    choices = [make_choice(tmp_path, "flooding", "flooding-b0.02"), make_choice(tmp_path, "flooding_x", "flooding-b0.02")]
    record = prune(runs, choices, tmp_path / "pruned.json")
    assert [r["run"] for r in record["removed"]] == ["flooding-b0.01"]


@pytest.mark.parametrize("case", ["other seed", "other data set", "unfinished", "choices disagree"])
def test_a_candidate_or_choice_of_something_else_stops_before_removing_anything(tmp_path, case):
    runs = [make_run(tmp_path, "flooding-b0.01"), make_run(tmp_path, "flooding-b0.02")]
    choices = [make_choice(tmp_path, "flooding", "flooding-b0.02")]
    if case == "other seed":
        runs.append(make_run(tmp_path, "flooding-b0.03", seed=7))
    elif case == "other data set":
        runs.append(make_run(tmp_path, "flooding-b0.03", dataset="mrpc"))
    elif case == "unfinished":
        (runs[1] / "metrics.json").unlink()
    else:
        choices.append(make_choice(tmp_path, "flooding_x", "flooding-b0.01", seed=7))
    with pytest.raises(DataError):
        prune(runs, choices, tmp_path / "pruned.json")
    assert (runs[0] / "checkpoints/epoch-3").exists() and not (tmp_path / "pruned.json").exists()
