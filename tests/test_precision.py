"""Precision settings reach what they govern: `training.bf16` the training steps and evaluations,
`attacks.precision` the attack's model queries; with bf16 off, the fp32 path is the plain one."""

import json
from contextlib import nullcontext

import pytest
import torch

from floodx import precision
from test_attack_run import charswap, save_trained, textattack_ready, write_data  # noqa: F401
from test_training import tiny_spec, write_prepared

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_means_native_bf16_and_true_false_force(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.uses_bf16(CPU, "auto") is native
    assert precision.uses_bf16(CPU, True) and not precision.uses_bf16(CPU, False)
    assert precision.autocast_for(CPU, False) is nullcontext
    assert (precision.autocast_for(CPU, "auto") is nullcontext) is not native


def autocast_seen(model):
    """Records, per forward pass, whether CPU autocast was on."""
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(torch.is_autocast_enabled("cpu")))
    return seen


@pytest.mark.parametrize("setting, expected", [(False, "fp32"), (True, "bf16")])
def test_training_bf16_reaches_the_steps_and_evaluation_stays_fp32(tmp_path, sentences, monkeypatch, setting, expected):
    from floodx import training

    spec = tiny_spec(epochs=1)
    spec["training"]["bf16"] = setting
    seen = []
    original = training.build_model

    def build_and_watch(*args, **kwargs):
        model, tokenizer = original(*args, **kwargs)
        model.register_forward_pre_hook(lambda module, args: seen.append(torch.is_autocast_enabled("cpu")))
        return model, tokenizer

    monkeypatch.setattr(training, "build_model", build_and_watch)
    result = training.train(spec, write_prepared(tmp_path / "data", sentences), tmp_path / "run", device=CPU)
    assert result["training_precision"] == expected and result["evaluation_precision"] == "fp32"
    last = result["epochs"][-1]
    assert "test_acc_fp32" not in last
    if setting:
        # The steps under autocast, the evaluation in fp32 (the precision the attacks query in).
        assert True in seen and False in seen
    else:
        assert seen and not any(seen)


def test_attack_queries_follow_attacks_precision(tiny_model):
    from floodx.attacks.recipes import DynamicPaddingWrapper
    from floodx.inference import predict_logits

    model, tokenizer = tiny_model
    model.eval()
    texts = ["a great film", "boring and bad", "i loved this movie very much"]
    seen = autocast_seen(model)
    fp32 = DynamicPaddingWrapper(model, tokenizer, max_length=32)(texts)
    assert seen == [False]
    bf16 = DynamicPaddingWrapper(model, tokenizer, max_length=32, precision="bf16")(texts)
    assert seen == [False, True] and not torch.equal(fp32, bf16)
    # fp32 is the plain forward pass, byte for byte.
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(fp32, model(**encoded).logits.float())
    with pytest.raises(Exception, match="attacks.precision 'fp16'"):
        predict_logits(model, tokenizer, texts, precision="fp16")


def test_the_config_setting_reaches_the_attack_job_its_fingerprint_and_summary(tmp_path, tiny_model, sentences):
    from floodx.attacks import run
    from floodx.attacks.resume import finished_by
    from floodx.config import attack_spec, load_config

    config = load_config("config/tiny.yaml")
    assert attack_spec(config, "tiny", ["textfooler"])["precision"] == "fp32"   # the schema's default
    config["attacks"]["precision"] = "bf16"
    assert attack_spec(config, "tiny", ["textfooler"])["precision"] == "bf16"

    model, tokenizer = tiny_model
    checkpoint = save_trained(model, tokenizer, sentences, tmp_path / "ckpt")
    data = write_data(tmp_path / "data", sentences)
    for setting in ("fp32", "bf16"):
        out = tmp_path / setting / "shard-0.csv"
        spec = {"recipes": ["charswap"], "mode": "offline", "subset": "test", "resources": "resources",
                "limit": 4, "precision": setting}
        run.main(["--spec", json.dumps(spec), "--checkpoint", str(checkpoint), "--data", str(data),
                  "--out", str(out), "--summary", str(out.with_name("summary.json"))])
        stamp = finished_by(out)
        assert ("precision" in stamp) is (setting == "bf16")
        assert json.loads(out.with_name("summary.json").read_text())["attack_precision"] == setting


def test_a_run_resumed_on_a_machine_without_native_bf16_records_both_precisions(tmp_path, sentences, monkeypatch,
                                                                                 capsys):
    """`auto` resolves on each job's machine: a run stopped on a bf16 CPU and finished on another says so."""
    from floodx import training
    from test_training import Interrupt, StopAt

    data = write_prepared(tmp_path / "data", sentences)
    spec = tiny_spec(epochs=3)                   # training.bf16: auto; 4 steps an epoch
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    with pytest.raises(Interrupt):               # dies in epoch 2, after epoch 1 trained in bf16
        training.train(spec, data, tmp_path / "run", callbacks=[StopAt(6)], device=CPU)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    result = training.train(spec, data, tmp_path / "run", device=CPU)
    assert [e["training_precision"] for e in result["epochs"]] == ["bf16", "fp32", "fp32"]
    assert result["training_precision"] == "bf16+fp32"
    assert "epochs up to 1 trained in bf16, the rest train in fp32" in capsys.readouterr().out
    unbroken = training.train(spec, data, tmp_path / "unbroken", device=CPU)
    assert unbroken["training_precision"] == "fp32"
    # Epochs recorded before the field say so, rather than taking the finishing machine's precision.
    assert training.training_precision([{"epoch": 1}, {"epoch": 2, "training_precision": "fp32"}], "fp32") == (
        "fp32+unrecorded")
    assert training.training_precision([], "bf16") == "bf16"
