"""The shared training loop and the Flooding objective."""

import json
import re

import pytest
import torch

from floodx.errors import DataError
from floodx.methods import build_method
from floodx.methods.flooding import flooded
from floodx.training import STATE_FILE, Trainer, batch_order, make_optimizer, train

from conftest import write_prepared


# ---------------------------------------------------------------- Flooding, eq. 1
@pytest.mark.parametrize("loss, level, expected_value, expected_grad", [
    (0.9, 0.5, 0.9, 1.0),     # above the flood level: plain descent
    (0.2, 0.5, 0.8, -1.0),    # below: |0.2-0.5|+0.5 = 0.8, gradient reversed (ascent)
    (0.5, 0.5, 0.5, 0.0),     # at the level: abs has subgradient 0 in torch
])
def test_flooded_value_and_gradient_sign(loss, level, expected_value, expected_grad):
    j = torch.tensor(loss, requires_grad=True)
    value = flooded(j, level)
    value.backward()
    assert value.item() == pytest.approx(expected_value)
    assert j.grad.item() == pytest.approx(expected_grad)


def test_flooding_step_reverses_the_finetune_gradient_below_the_level(tiny_model, batch_of, sentences):
    model, _ = tiny_model
    model.eval()   # no dropout: the two passes must see the same network
    batch = batch_of(sentences[:8])
    loss = build_method("finetune").step(model, batch)
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    below = build_method("flooding", flood_level=loss.item() + 1.0).step(model, batch)
    assert below.item() == pytest.approx(loss.item())
    for g_plain, p in zip(plain, model.parameters()):
        torch.testing.assert_close(p.grad, -g_plain)
    model.zero_grad()
    build_method("flooding", flood_level=max(loss.item() - 0.3, 0.01)).step(model, batch)
    for g_plain, p in zip(plain, model.parameters()):
        torch.testing.assert_close(p.grad, g_plain)


def test_flooding_needs_a_positive_level():
    from floodx.errors import ConfigError

    with pytest.raises(ConfigError, match="flood_level"):
        build_method("flooding")
    with pytest.raises(ConfigError, match="method_params.pgd|unknown"):
        build_method("finetune", epsilon=1.0)


# ---------------------------------------------------------------- loop pieces
def test_batch_order_is_a_function_of_seed_and_epoch():
    a = batch_order(50, 8, seed=3, epoch=2)
    assert a == batch_order(50, 8, seed=3, epoch=2)
    assert a != batch_order(50, 8, seed=3, epoch=3)
    assert sorted(i for b in a for i in b) == list(range(50))
    grouped = batch_order(50, 8, seed=3, epoch=2, lengths=list(range(50)), group=50)
    assert sorted(i for b in grouped for i in b) == list(range(50))
    assert all(b == sorted(b) for b in grouped)   # sorted by length inside the pool


def test_fp32_cpu_parameters_get_the_fused_adamw_and_its_updates_match_the_per_tensor_loop(tiny_model):
    """The fused kernel is a speed choice only: five steps on the same gradients land within 1e-6
    of torch's per-tensor AdamW (same groups, decay and schedule); a bf16 parameter keeps the loop."""
    import copy

    model, _ = tiny_model
    training = {"learning_rate": 1e-2, "warmup_ratio": 0.0, "weight_decay": 0.01}
    fused_model, loop_model = copy.deepcopy(model), copy.deepcopy(model)
    fused, _ = make_optimizer(fused_model, training, total_steps=5)
    assert fused.defaults["fused"] is True
    loop, _ = make_optimizer(loop_model, training, total_steps=5)
    loop.defaults["fused"] = None
    for group in loop.param_groups:
        group["fused"], group["foreach"] = None, False
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        for a, b in zip(fused_model.parameters(), loop_model.parameters()):
            a.grad = torch.randn(a.shape, generator=generator)
            b.grad = a.grad.clone()
        fused.step()
        loop.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    half = torch.nn.Linear(2, 2).to(torch.bfloat16)
    assert not make_optimizer(half, training, total_steps=5)[0].defaults["fused"]


def test_schedule_warms_up_then_decays_linearly(tiny_model):
    model, _ = tiny_model
    optimizer, scheduler = make_optimizer(model, {"learning_rate": 1.0, "warmup_ratio": 0.2}, total_steps=10)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.5) and rates[1] == pytest.approx(1.0)
    assert rates[2:] == pytest.approx([1.0 - i / 8 for i in range(8)])
    no_decay = optimizer.param_groups[1]["params"]
    assert all(p.ndim < 2 for p in no_decay) and optimizer.param_groups[1]["weight_decay"] == 0.0


# ---------------------------------------------------------------- whole runs
def tiny_spec(method="finetune", epochs=3, **params):
    return {
        "dataset": "toy", "run": method, "method": method, "method_params": params, "seed": 7,
        "model": {"source": "tiny"},
        "training": {"epochs": epochs, "batch_size": 8, "eval_batch_size": 16, "learning_rate": 1e-3,
                     "warmup_ratio": 0.1, "weight_decay": 0.01, "max_grad_norm": 1.0, "max_length": 32},
    }


def state_of(folder):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_training_writes_checkpoints_and_metrics(tmp_path, sentences):
    data = write_prepared(tmp_path / "data", sentences)
    result = train(tiny_spec(epochs=2), data, tmp_path / "run", device=torch.device("cpu"))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["epochs"] == result["epochs"] and len(saved["epochs"]) == 2
    epoch = saved["epochs"][-1]
    assert len(epoch["train_loss_per_batch"]) == epoch["steps"] == 4
    assert epoch["train_loss_mean"] == pytest.approx(sum(epoch["train_loss_per_batch"]) / 4)
    for key in ("dev_loss", "dev_acc", "test_loss", "test_acc", "seconds"):
        assert epoch[key] >= 0
    assert saved["provenance"]["seed"] == 7 and saved["provenance"]["packages"]["torch"]
    final = tmp_path / "run" / saved["final_checkpoint"]
    assert (final / "config.json").exists() and (final / "tokenizer_config.json").exists()
    assert not (tmp_path / "run" / "checkpoints" / "epoch-1").exists()   # only the newest is kept


def test_under_bf16_training_every_evaluation_is_fp32_and_test_only_where_read(tmp_path, sentences, monkeypatch):
    """bf16 autocast speeds the steps only: each epoch is evaluated once, in fp32 (the precision the
    attacks query in and take Clean% from), and the test split only for the checkpoints the attacks
    read (CPU bf16 autocast stands in for a GPU's here)."""
    from contextlib import nullcontext

    from floodx import training
    from floodx.attacks.metrics import recorded_clean_accuracy

    monkeypatch.setattr(training, "autocast_for",
                        lambda device, setting="auto": lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    data = write_prepared(tmp_path / "data", sentences)
    trainer = training.Trainer(tiny_spec(epochs=2), data, tmp_path / "run", device=torch.device("cpu"))
    result = trainer.run()
    first, last = result["epochs"]
    assert result["training_precision"] == "bf16" and result["evaluation_precision"] == "fp32"
    assert "dev_acc" in first and "test_acc" not in first        # epoch 1 is not kept: nothing reads its test figures
    for split in ("dev", "test"):
        fp32 = trainer.evaluate_split(split, autocast=nullcontext)
        bf16 = trainer.evaluate_split(split)
        assert last[f"{split}_acc"] == fp32["acc"] and last[f"{split}_loss"] == fp32["loss"]
        assert last[f"{split}_loss"] != bf16["loss"]               # the bf16 evaluation is really another one
        assert f"{split}_acc_fp32" not in last
    clean = recorded_clean_accuracy(tmp_path / "run" / "metrics.json", "test")
    assert clean["clean_acc"] == pytest.approx(100 * last["test_acc"]) and "fp32" in clean["source"]
    with pytest.raises(DataError, match="no test_acc recorded for epoch 1"):
        recorded_clean_accuracy(tmp_path / "run" / "metrics.json", "test", epoch=1)


def test_a_bf16_run_recorded_before_single_fp32_evaluation_still_gives_its_fp32_clean_accuracy(tmp_path):
    """Runs made before evaluation became fp32-only (the evidence run's seed 42) recorded a bf16
    `test_acc` and an fp32 `test_acc_fp32`: Clean% is still the fp32 one."""
    from floodx.attacks.metrics import recorded_clean_accuracy
    from floodx.files import write_json

    write_json(tmp_path / "metrics.json", {"evaluation_precision": "bf16", "epochs": [
        {"epoch": 1, "test_acc": 0.70, "test_acc_fp32": 0.71, "test_bf16_fp32_disagreements": 2}]})
    clean = recorded_clean_accuracy(tmp_path / "metrics.json", "test")
    assert clean["clean_acc"] == pytest.approx(71.0) and clean["bf16_fp32_disagreements"] == 2


def test_same_seed_same_metrics(tmp_path, sentences):
    data = write_prepared(tmp_path / "data", sentences)
    first = train(tiny_spec(epochs=2), data, tmp_path / "a", device=torch.device("cpu"))
    second = train(tiny_spec(epochs=2), data, tmp_path / "b", device=torch.device("cpu"))
    for a, b in zip(first["epochs"], second["epochs"]):
        assert a["train_loss_per_batch"] == b["train_loss_per_batch"]
        assert (a["dev_loss"], a["dev_acc"], a.get("test_acc")) == (b["dev_loss"], b["dev_acc"], b.get("test_acc"))
    assert first["epochs"][-1]["test_acc"] == second["epochs"][-1]["test_acc"]


class Interrupt(Exception):
    pass


class StopAt:
    """Kills training in the middle of an epoch, like a pre-empted job."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, state):
        if state.global_step == self.step:
            raise Interrupt


@pytest.mark.parametrize("method, params", [("finetune", {}), ("flooding", {"flood_level": 0.6})])
def test_resume_after_interruption_gives_the_uninterrupted_model(tmp_path, sentences, method, params):
    data = write_prepared(tmp_path / "data", sentences)
    spec = tiny_spec(method, epochs=3, **params)
    whole = train(spec, data, tmp_path / "whole", device=torch.device("cpu"))
    with pytest.raises(Interrupt):   # 4 steps per epoch: dies in the middle of epoch 2
        train(spec, data, tmp_path / "resumed", callbacks=[StopAt(6)], device=torch.device("cpu"))
    assert (tmp_path / "resumed" / "checkpoints" / "epoch-1").exists()
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    trainer = Trainer(spec, data, tmp_path / "resumed", device=torch.device("cpu"))
    assert trainer.last_finished_epoch()[0] == 1
    resumed = trainer.run()
    assert [e["train_loss_per_batch"] for e in resumed["epochs"]] == [e["train_loss_per_batch"] for e in whole["epochs"]]
    a = state_of(tmp_path / "whole" / whole["final_checkpoint"])
    b = state_of(tmp_path / "resumed" / resumed["final_checkpoint"])
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    # Byte for byte: weights, config and tokenizer files (what the attacks fingerprint).
    files = sorted(p.name for p in (tmp_path / "whole" / whole["final_checkpoint"]).iterdir() if p.name != STATE_FILE)
    for name in files:
        assert ((tmp_path / "whole" / whole["final_checkpoint"] / name).read_bytes()
                == (tmp_path / "resumed" / resumed["final_checkpoint"] / name).read_bytes()), name


# ---------------------------------------------------------------- retention and finished runs
def kept(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


@pytest.mark.parametrize("keep, expected", [
    ([], ["epoch-3"]), ([1], ["epoch-1", "epoch-3"]), (None, ["epoch-1", "epoch-2", "epoch-3"])])
def test_only_the_checkpoints_that_are_read_survive(tmp_path, sentences, keep, expected):
    data = write_prepared(tmp_path / "data", sentences)
    spec = dict(tiny_spec(epochs=3), keep_epochs=keep)
    result = train(spec, data, tmp_path / "run", device=torch.device("cpu"))
    assert kept(tmp_path / "run") == expected and result["checkpoints_kept"] == [int(e[6:]) for e in expected]
    states = sorted(p.parent.name for p in (tmp_path / "run" / "checkpoints").glob("*/trainer_state.pt"))
    assert states == ["epoch-3"]                    # no optimiser state in older checkpoints
    final = torch.load(tmp_path / "run" / "checkpoints" / "epoch-3" / "trainer_state.pt", weights_only=False)
    assert "optimizer" not in final and "rng_cpu" not in final and final["finished"]


class Counter:
    def __init__(self):
        self.steps = 0

    def on_step_end(self, state):
        self.steps += 1


def test_a_finished_run_asked_again_trains_nothing(tmp_path, sentences):
    """metrics.json lost after the optimiser state was released: rebuilt from progress.json."""
    data = write_prepared(tmp_path / "data", sentences)
    first = train(tiny_spec(epochs=2), data, tmp_path / "run", device=torch.device("cpu"))
    (tmp_path / "run" / "metrics.json").unlink()
    counter = Counter()
    again = train(tiny_spec(epochs=2), data, tmp_path / "run", callbacks=[counter], device=torch.device("cpu"))
    assert counter.steps == 0 and again["epochs"] == first["epochs"]
    assert again["final_checkpoint"] == first["final_checkpoint"] == "checkpoints/epoch-2"


def test_a_changed_spec_trains_afresh(tmp_path, sentences):
    data = write_prepared(tmp_path / "data", sentences)
    train(tiny_spec(epochs=2), data, tmp_path / "run", device=torch.device("cpu"))
    changed = tiny_spec(epochs=2)
    changed["training"]["learning_rate"] = 5e-4
    counter = Counter()
    result = train(changed, data, tmp_path / "run", callbacks=[counter], device=torch.device("cpu"))
    fresh = train(changed, data, tmp_path / "fresh", device=torch.device("cpu"))
    assert counter.steps == 8 and result["epochs"][-1]["train_loss_per_batch"] == fresh["epochs"][-1]["train_loss_per_batch"]


def test_resume_keeps_the_listed_checkpoints(tmp_path, sentences):
    data = write_prepared(tmp_path / "data", sentences)
    spec = dict(tiny_spec(epochs=3), keep_epochs=[1])
    whole = train(spec, data, tmp_path / "whole", device=torch.device("cpu"))
    with pytest.raises(Interrupt):
        train(spec, data, tmp_path / "resumed", callbacks=[StopAt(10)], device=torch.device("cpu"))
    resumed = train(spec, data, tmp_path / "resumed", device=torch.device("cpu"))
    assert kept(tmp_path / "resumed") == ["epoch-1", "epoch-3"]
    assert resumed["epochs"][-1]["train_loss_per_batch"] == whole["epochs"][-1]["train_loss_per_batch"]


class StopEarly:
    """Asks the loop to stop after `step` (what the accordance probe does after a crossing)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, state):
        state.stop = state.global_step >= self.step


def test_a_callback_stops_training_mid_epoch_and_the_run_counts_as_finished(tmp_path, sentences):
    data = write_prepared(tmp_path / "data", sentences)
    result = train(tiny_spec(epochs=3), data, tmp_path / "run", callbacks=[StopEarly(6)], device=torch.device("cpu"))
    assert [e["steps"] for e in result["epochs"]] == [4, 2] and result["stopped_early"]
    assert result["epochs_planned"] == 3 and result["final_checkpoint"] == "checkpoints/epoch-2"
    (tmp_path / "run" / "metrics.json").unlink()
    counter = Counter()
    again = train(tiny_spec(epochs=3), data, tmp_path / "run", callbacks=[counter], device=torch.device("cpu"))
    assert counter.steps == 0 and again["epochs"] == result["epochs"]


def test_progress_lines_carry_loss_rate_and_eta(capsys):
    from floodx.training import Progress

    progress = Progress("pgd", total_steps=20, done_steps=10, every=0.0)
    for step in range(1, 3):
        progress.step(6, 10, step, 2, torch.tensor(0.25), 32)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pgd: epoch 6/10, step 1/2: loss 0.2500, ")
    assert all(re.search(r"[\d.]+ examples/s, ETA \d+:\d\d:\d\d$", line) for line in lines), lines
    assert re.fullmatch(r"[\d.]+ examples/s, ETA \d+:\d\d:\d\d", progress.summary())


def test_checkpoints_are_portable_every_state_load_maps_to_the_cpu_and_weights_load_in_fp32(tmp_path):
    """A run trained on a GPU resumes or finishes on a CPU-only host; a hub model saved in bf16 trains in fp32."""
    import re
    from pathlib import Path

    from floodx.models import load_classifier, tiny_bert

    source = Path(__file__).resolve().parents[1] / "src" / "floodx"
    loads = [(path.name, call) for path in source.rglob("*.py")
             for call in re.findall(r"torch\.load\(.*", path.read_text())]
    assert loads and all('map_location="cpu"' in call for _, call in loads), loads
    model, tokenizer = tiny_bert(2, tmp_path / "vocab")
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    tokenizer.save_pretrained(tmp_path / "bf16")
    loaded, _ = load_classifier(str(tmp_path / "bf16"), 2)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
