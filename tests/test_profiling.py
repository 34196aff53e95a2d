"""Time profiling (Table 3) on the tiny model: every method, same batches, fine-tune as reference."""

import json

import pytest
import torch

from floodx import profiling
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
    assert "floodx: error:" in capsys.readouterr().err and not (tmp_path / "t.json").exists()
