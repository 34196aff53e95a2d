"""The GPU check runs end to end here, in its reduced mode, so it is known to work before a GPU is lent."""

import json
import re

from floodx.bench import gpu_check


def test_the_gpu_check_runs_in_reduced_mode_and_prints_every_figure(capsys, tmp_path):
    profile = tmp_path / "profiles" / "h200.json"          # a chosen folder, made if missing
    assert gpu_check.main(["--reduced", "--out", str(profile)]) == 0
    out = capsys.readouterr().out
    figures = dict(re.findall(r"^(\w+): (.+)$", out, flags=re.M))
    for name in ("train_examples_per_s", "sst2_epoch_seconds", "probe_over_finetune_epoch_time",
                 "bf16_fp32_label_agreement", "attack_model_queries_per_s", *(f"ratio_{m}" for m in gpu_check.METHODS)):
        assert float(figures[name]) > 0, name
    assert figures["mode"] == "reduced" and float(figures["ratio_finetune"]) == 1.0
    assert 0.0 <= float(figures["bf16_fp32_label_agreement"]) <= 1.0
    # Seeded as a pipeline job: the same seed and deterministic kernels (strict on a GPU).
    assert figures["seed"] == "42" and figures["deterministic_algorithms"] == "True"
    written = json.loads(profile.read_text())
    assert written["seed"] == 42 and written["mode"] == "reduced" and written["train_examples_per_s"] > 0


def test_the_full_check_is_bert_base_sized(tmp_path):
    model, tokenizer = gpu_check.build(False, tmp_path)
    assert 105e6 < sum(p.numel() for p in model.parameters()) < 115e6      # BERT-base: 109.5M
    lengths = [len(ex["text"].split()) for ex in gpu_check.sentences(2000)]
    assert 8 <= sum(lengths) / len(lengths) <= 11 and max(lengths) <= gpu_check.MAX_WORDS
