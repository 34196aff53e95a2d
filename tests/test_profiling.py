"""Time profiling (Table 3) on the tiny model: every method, same batches, fine-tune as reference."""

import json

import pytest
import torch

from floodx import profiling, training
from floodx.methods import REGISTRY

ALL_METHODS = ["finetune", "flooding", "flooding_x", "pgd", "freelb", "tavat", "infobert"]
TRAINING = {"batch_size": 8, "max_length": 32, "learning_rate": 1e-4, "warmup_ratio": 0.1,
            "weight_decay": 0.01, "max_grad_norm": 1.0, "epochs": 2, "bf16": "auto"}


def examples(sentences):
    return [{"idx": i, "text": t, "text_pair": None, "label": y} for i, (t, y) in enumerate(sentences)]


@pytest.fixture
def data_dir(tmp_path, sentences):
    folder = tmp_path / "data" / "tiny"
    folder.mkdir(parents=True)
    rows = examples(sentences)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "meta.json").write_text(json.dumps({"dataset": "tiny", "num_labels": 2, "sizes": {"train": len(rows)}}))
    return folder


def test_timing_plan_puts_finetune_first_and_times_flooding_x_as_flooding():
    plan = profiling.timing_plan(["pgd", "flooding_x", "finetune", "flooding"])
    assert plan == [("finetune", "finetune"), ("pgd", "pgd"), ("flooding_x", "flooding"), ("flooding", "flooding")]
    assert all(registry in REGISTRY for _, registry in plan)


def test_every_method_timed_on_the_same_batches(tiny_model, sentences):
    model, tokenizer = tiny_model
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = profiling.profile_methods(
        model, tokenizer, examples(sentences), ALL_METHODS, TRAINING, torch.device("cpu"), steps=3,
        warmup_steps=1, seed=3, flood_level=0.01)
    methods = result["methods"]
    assert list(methods) == ALL_METHODS  # all present, in the order asked
    assert methods["finetune"]["ratio_to_finetune"] == 1.0  # exactly: the reference
    for name, rec in methods.items():
        assert rec["steps"] == 3 and rec["warmup_steps"] == 1
        assert rec["seconds_per_step"] > 0
        assert rec["ratio_to_finetune"] == pytest.approx(rec["seconds_per_step"] / methods["finetune"]["seconds_per_step"])
        assert rec["seconds_per_epoch"] == pytest.approx(rec["seconds_per_step"] * 5)  # ceil(40 / 8) steps
        assert len(rec["train_losses"]) == 4  # warm-up + timed steps all trained
    assert methods["flooding_x"]["timed_as"] == "flooding"
    assert methods["flooding_x"]["seconds_per_step"] == methods["flooding"]["seconds_per_step"]
    # Fresh copy of the same starting weights, same batches, same RNG stream: Flooding with its
    # level below every loss has fine-tune's gradients, hence fine-tune's exact loss trajectory.
    assert methods["flooding"]["train_losses"] == pytest.approx(methods["finetune"]["train_losses"], abs=1e-6)
    # ... and the starting model itself was never trained.
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in start.items())
    # PGD runs several forward/backward passes per step: it cannot be cheaper than fine-tuning.
    assert methods["pgd"]["passes_per_step"] > 1
    assert methods["pgd"]["ratio_to_finetune"] > 1.0


def test_main_writes_well_formed_times_json(data_dir, tmp_path):
    out = tmp_path / "profile" / "tiny" / "times.json"
    spec = {"dataset": "tiny", "methods": ["finetune", "flooding"], "steps": 2, "seed": 1,
            "flood_level": 0.1, "method_params": {}, "warmup_steps": 1,
            "base": {"model": {"source": "tiny"}, "training": TRAINING, "resources": "resources"}}
    profiling.main(["--spec", json.dumps(spec), "--data", str(data_dir), "--out", str(out), "--threads", "1"])
    times = json.loads(out.read_text())
    assert set(times["methods"]) == {"finetune", "flooding"}
    for rec in times["methods"].values():
        assert {"seconds_per_step", "steps", "seconds_per_epoch", "ratio_to_finetune"} <= set(rec)
    assert times["methods"]["finetune"]["ratio_to_finetune"] == 1.0
    assert times["methods"]["flooding"]["method_params"] == {"flood_level": 0.1}
    assert times["batch_size"] == 8 and times["steps_per_epoch"] == 5 and times["num_train_examples"] == 40
    assert times["device"].startswith("cpu") and times["provenance"]["spec"] == spec


def test_bad_spec_is_a_user_error(data_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        profiling.main(["--spec", json.dumps({"methods": ["finetune"]}), "--data", str(data_dir),
                        "--out", str(tmp_path / "t.json")])
    assert exit_info.value.code == 2
    assert "floodx: error: profiling spec: base.model missing" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


# ---------------------------------------------------------------- round-robin schedule, medians
class FakeSteps:
    """Stands in for `Optimisation.step` and the profiler's clock: records the order of the steps,
    and each step of a method advances the fake clock by that method's next scripted duration."""

    def __init__(self, monkeypatch, durations=None):
        self.now, self.calls, self.durations = 0.0, [], durations or {}
        fake = self

        def step(optimisation, batch):
            name = optimisation.method.name
            index = sum(1 for n, _ in fake.calls if n == name)
            fake.calls.append((name, index))
            script = fake.durations.get(name, [1.0])
            fake.now += script[index % len(script)]
            return torch.tensor(0.5)

        monkeypatch.setattr(profiling, "_clock", lambda: fake.now)
        monkeypatch.setattr(training.Optimisation, "step", step)


def run_fake(tiny_model, sentences, methods, steps, warmup_steps=0):
    model, tokenizer = tiny_model
    return profiling.profile_methods(model, tokenizer, examples(sentences), methods, TRAINING,
                                     torch.device("cpu"), steps=steps, warmup_steps=warmup_steps, seed=0)


def test_round_order_reverses_every_round_and_turns_every_two():
    names = ["a", "b", "c"]
    orders = [profiling.round_order(names, r) for r in range(6)]
    assert orders == [["a", "b", "c"], ["c", "b", "a"], ["b", "c", "a"], ["a", "c", "b"],
                      ["c", "a", "b"], ["b", "a", "c"]]
    for position in (0, -1):  # each method first (and last) equally often
        assert sorted(order[position] for order in orders) == ["a", "a", "b", "b", "c", "c"]


def test_steps_are_interleaved_round_robin(monkeypatch, tiny_model, sentences):
    fake = FakeSteps(monkeypatch)
    methods = ["finetune", "flooding", "flooding_x", "pgd"]
    result = run_fake(tiny_model, sentences, methods, steps=5, warmup_steps=1)
    timed = ["finetune", "flooding", "pgd"]  # Flooding-X is not stepped: it reuses Flooding's timing
    assert result["schedule"] == "round_robin"
    rounds = [fake.calls[i:i + len(timed)] for i in range(0, len(fake.calls), len(timed))]
    assert len(rounds) == 6  # 1 warm-up + 5 timed
    for r, calls in enumerate(rounds):
        assert [index for _, index in calls] == [r] * len(timed)  # step r of every method, then r + 1
        assert [name for name, _ in calls] == profiling.round_order(timed, r)
    order = [[name for name, _ in calls] for calls in rounds]
    assert order[1] == order[0][::-1]  # alternating direction
    assert len({o[0] for o in order}) == len(timed)  # no method is always first
    for name in methods:
        assert len(result["methods"][name]["step_seconds"]) == 5
        assert len(result["methods"][name]["train_losses"]) == 6


def test_seconds_per_step_is_the_median_of_the_step_times(monkeypatch, tiny_model, sentences):
    durations = {"finetune": [9.0, 1.0, 2.0, 3.0, 7.0, 4.0], "pgd": [9.0, 5.0, 1.0, 6.0, 8.0, 6.0]}
    FakeSteps(monkeypatch, durations)
    methods = run_fake(tiny_model, sentences, ["finetune", "pgd"], steps=5, warmup_steps=1)["methods"]
    # The warm-up step (9.0) is not timed.
    assert methods["finetune"]["step_seconds"] == [1.0, 2.0, 3.0, 7.0, 4.0]
    assert methods["finetune"]["seconds_per_step"] == 3.0
    assert methods["finetune"]["seconds_per_step_mean"] == pytest.approx(17.0 / 5)
    assert methods["pgd"]["step_seconds"] == [5.0, 1.0, 6.0, 8.0, 6.0]
    assert methods["pgd"]["seconds_per_step"] == 6.0
    assert methods["pgd"]["seconds_per_epoch"] == 6.0 * 5
    assert methods["pgd"]["ratio_to_finetune"] == 2.0


def test_an_outlier_step_does_not_move_the_ratio(monkeypatch, tiny_model, sentences):
    steady = {"finetune": [1.0], "pgd": [3.0]}
    FakeSteps(monkeypatch, steady)
    quiet = run_fake(tiny_model, sentences, ["finetune", "pgd"], steps=7)["methods"]
    # Another job takes the cores during one of PGD's steps and one of fine-tuning's.
    noisy = {"finetune": [1.0, 1.0, 1.0, 1.0, 1.0, 40.0, 1.0], "pgd": [3.0, 3.0, 90.0, 3.0, 3.0, 3.0, 3.0]}
    FakeSteps(monkeypatch, noisy)
    loud = run_fake(tiny_model, sentences, ["finetune", "pgd"], steps=7)["methods"]
    assert quiet["pgd"]["ratio_to_finetune"] == loud["pgd"]["ratio_to_finetune"] == 3.0
    assert loud["pgd"]["seconds_per_step_mean"] > 2 * loud["pgd"]["seconds_per_step"]  # a mean would move
