"""The loss-restriction family since Flooding (iFlood, TTSO, TTSO++, ALS): each loss and its gradient
against a brute-force transcription of its formula (a loop over examples, softmax written out),
the special cases that tie them to their parents, and one real optimisation step on a tiny BERT.
"""

import copy
import math

import pytest
import torch

from floodx.errors import ConfigError
from floodx.methods import build_method
from floodx.methods.als import adversarial_label_smoothing_loss
from floodx.methods.base import FineTune, classification_loss
from floodx.methods.flooding import flooded
from floodx.methods.ttso import prediction_entropy, temperature_scaled_loss

SUCCESSORS = {"iflood": {"flood_level": 0.3}, "ttso": {}, "ttso_pp": {}, "als": {}}


def logits_and_labels(seed=0, n=7, classes=3, scale=2.0):
    generator = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(n, classes, generator=generator, dtype=torch.float64)).requires_grad_()
    labels = torch.randint(0, classes, (n,), generator=generator)
    return logits, labels


def brute_log_softmax(row):
    peak = max(float(v.detach()) for v in row)
    total = sum(torch.exp(v - peak) for v in row)
    return [v - peak - torch.log(total) for v in row]


def brute_cross_entropy(row, label):
    return -brute_log_softmax(row)[int(label)]


def gradient(loss, logits):
    (grad,) = torch.autograd.grad(loss, logits, retain_graph=True)
    return grad


# ------------------------------------------------------------------ iFlood
def brute_iflood(logits, labels, b):
    terms = [abs(brute_cross_entropy(logits[i], labels[i]) - b) + b for i in range(len(labels))]
    return sum(terms) / len(terms)


def test_iflood_is_the_mean_of_per_example_floods():
    logits, labels = logits_and_labels()
    method = build_method("iflood", flood_level=0.8)
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert losses.min() < 0.8 < losses.max()            # straddling b: where iFlood and Flooding part
    ours = method.per_example_objective(losses)
    brute = brute_iflood(logits, labels, 0.8)
    assert float(ours.detach()) == pytest.approx(float(brute.detach()), abs=1e-12)
    assert torch.allclose(gradient(ours, logits), gradient(brute, logits), atol=1e-12)
    batch_flood = flooded(losses.mean(), 0.8)
    assert not torch.allclose(gradient(ours, logits), gradient(batch_flood, logits))   # not the batch flood


@pytest.mark.parametrize("level", [1e-3, 50.0])
def test_iflood_equals_flooding_when_every_example_is_on_one_side(level):
    logits, labels = logits_and_labels(seed=1)
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert bool((losses > level).all()) or bool((losses < level).all())
    per_example = build_method("iflood", flood_level=level).per_example_objective(losses)
    per_batch = flooded(losses.mean(), level)
    assert float(per_example) == pytest.approx(float(per_batch), abs=1e-12)
    assert torch.allclose(gradient(per_example, logits), gradient(per_batch, logits), atol=1e-12)


# ------------------------------------------------------------------ TTSO, TTSO++
def brute_entropy(row):
    log_p = brute_log_softmax(row)
    return -sum(torch.exp(v) * v for v in log_p)


def brute_ttso(logits, labels, temperature, weight):
    total = 0.0
    for i in range(len(labels)):
        t_i = temperature + weight * brute_entropy(logits[i])      # not detached, as in AdvBench4Text
        total = total + brute_cross_entropy([v / t_i for v in logits[i]], labels[i])
    return total / len(labels)


@pytest.mark.parametrize("temperature, weight", [(20.0, 0.0), (20.0, 0.5), (2.0, 3.0)])
def test_ttso_is_cross_entropy_of_per_example_temperature_scaled_logits(temperature, weight):
    logits, labels = logits_and_labels(seed=2)
    ours = temperature_scaled_loss(logits, labels, temperature, weight)
    brute = brute_ttso(logits, labels, temperature, weight)
    assert float(ours) == pytest.approx(float(brute), abs=1e-9)
    assert torch.allclose(gradient(ours, logits), gradient(brute, logits), atol=1e-6)


def test_ttso_pp_with_no_entropy_weight_is_ttso_and_entropy_is_in_nats():
    logits, labels = logits_and_labels(seed=3, classes=4)
    plain = temperature_scaled_loss(logits, labels, 20.0, 0.0)
    assert float(temperature_scaled_loss(logits, labels, 20.0, 0.0)) == float(plain)
    pp = build_method("ttso_pp", temperature=10.0, entropy_weight=0.0)
    assert vars(pp)["params"] == build_method("ttso").params                  # the same method, TTSO's defaults
    uniform = torch.zeros(1, 4)
    assert float(prediction_entropy(uniform)) == pytest.approx(math.log(4))
    assert float(temperature_scaled_loss(logits, labels, 1.0, 0.0)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, labels)), abs=1e-6)      # T = 1: cross-entropy


# ------------------------------------------------------------------ ALS
def brute_als(logits, labels, alpha):
    total = 0.0
    for i in range(len(labels)):
        row = logits[i]
        log_p = brute_log_softmax(row)
        least = min(range(len(row)), key=lambda k: float(row[k].detach()))
        target = [(1 - alpha) * (k == int(labels[i])) + alpha * (k == least) for k in range(len(row))]
        total = total - sum(t * lp for t, lp in zip(target, log_p))
    return total / len(labels)


@pytest.mark.parametrize("alpha", [0.1, 0.4])
def test_als_moves_alpha_of_the_mass_to_the_least_likely_class(alpha):
    logits, labels = logits_and_labels(seed=4, classes=4)
    ours = adversarial_label_smoothing_loss(logits, labels, alpha)
    brute = brute_als(logits, labels, alpha)
    assert float(ours) == pytest.approx(float(brute), abs=1e-9)
    assert torch.allclose(gradient(ours, logits), gradient(brute, logits), atol=1e-6)


def test_als_splits_alpha_among_tied_least_likely_classes():
    from floodx.methods.als import adversarial_targets

    logits = torch.tensor([[2.0, -1.0, -1.0], [0.0, 1.0, 3.0]])
    targets = adversarial_targets(logits, torch.tensor([0, 2]), 0.2)
    assert torch.allclose(targets, torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.0, 0.8]]))


def test_als_with_alpha_zero_is_cross_entropy():
    logits, labels = logits_and_labels(seed=5)
    ours = adversarial_label_smoothing_loss(logits, labels, 0.0)
    reference = torch.nn.functional.cross_entropy(logits, labels)
    assert float(ours) == pytest.approx(float(reference), abs=1e-9)
    assert torch.allclose(gradient(ours, logits), gradient(reference, logits), atol=1e-6)


# ------------------------------------------------------------------ in the training loop
@pytest.mark.parametrize("name", sorted(SUCCESSORS))
def test_each_successor_takes_a_real_step_and_logs_the_plain_loss(name, tiny_model, batch_of, sentences):
    model, tokenizer = tiny_model
    batch = batch_of(sentences[:10])
    model.train()
    method = build_method(name, **SUCCESSORS[name])
    torch.manual_seed(0)
    logged = method.step(model, batch)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    model.zero_grad()
    torch.manual_seed(0)
    plain, _ = classification_loss(model, batch)                    # same dropout mask: the same forward
    assert float(logged) == pytest.approx(float(plain), rel=1e-5)   # metrics.json's loss is the plain CE
    assert method.describe()["passes_per_step"] == 1


def test_the_fine_tune_cases_give_fine_tune_gradients(tiny_model, batch_of, sentences):
    """ALS with alpha 0 and TTSO at T = 1 take fine-tuning's step exactly."""
    model, _ = tiny_model
    batch = batch_of(sentences[:10])
    model.eval()                                                    # no dropout: comparable passes
    reference = copy.deepcopy(model)
    FineTune().step(reference, batch)
    for name, params in (("als", {"alpha": 0.0}), ("ttso", {"temperature": 1.0})):
        model.zero_grad()
        build_method(name, **params).step(model, batch)
        for ours, theirs in zip(model.parameters(), reference.parameters()):
            if theirs.grad is not None:
                assert torch.allclose(ours.grad, theirs.grad, atol=1e-6), name


@pytest.mark.parametrize("name, params, message", [
    ("iflood", {}, r"needs a positive flood_level \(config key method_params.iflood.flood_level\)"),
    ("ttso", {"temperature": 0}, r"temperature must be > 0"),
    ("als", {"alpha": 1.0}, r"alpha must lie in \[0, 1\)"),
    ("ttso_pp", {"tmperature": 5}, r"unknown parameter\(s\) \['tmperature'\] for method 'ttso_pp'"),
])
def test_bad_parameters_name_the_config_key(name, params, message):
    with pytest.raises(ConfigError, match=message):
        build_method(name, **params)


def test_a_successor_in_methods_is_checked_before_any_job():
    from floodx.config import run_config, validate_config

    config = copy.deepcopy(run_config())
    config["methods"], config["figures"]["per_epoch_methods"] = ["finetune", "iflood"], None
    with pytest.raises(ConfigError, match="method_params.iflood.flood_level"):
        validate_config(config)
    config["method_params"] = {"iflood": {"flood_level": 0.2}}
    assert validate_config(config)["methods"] == ["finetune", "iflood"]


# ------------------------------------------------------------------ the whole DAG
SUCCESSORS_OVERLAY = {
    "methods": ["finetune", "flooding_x", "iflood", "ttso", "ttso_pp", "als"],
    "method_params": {"iflood": {"flood_level": 0.3}},
    "figures": {"per_epoch_methods": ["finetune", "iflood"], "grid_test_attack": False},
    "attacks": {"recipes": ["textfooler"], "shards": 1},
}


@pytest.mark.slow
def test_every_successor_through_the_whole_dag(tmp_path):
    """The tiny config with each successor: trained, attacked, in Table 2 (with a paired test against
    fine-tune), in Table 3 (its measured cost ratio) and in Figure 4's per-epoch attacks where asked."""
    import json

    import pandas as pd
    import yaml

    from workflow_copy import copy_workflow, snakemake

    copy_workflow(tmp_path)
    (tmp_path / "successors.yaml").write_text(yaml.safe_dump(SUCCESSORS_OVERLAY))
    result = snakemake(tmp_path, "--cores", "2", "--configfile", "config/tiny.yaml", "successors.yaml",
                       timeout=2400)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    results = tmp_path / "results"
    table = pd.read_csv(results / "tables/table2.csv")
    assert set(table.method) == set(SUCCESSORS_OVERLAY["methods"])
    for method in ("iflood", "ttso", "ttso_pp", "als"):
        row = table[table.method == method].iloc[0]
        assert 0 <= row.textfooler_aua_mean <= 100 and row.textfooler_aua_high >= row.textfooler_aua_low
        assert row.textfooler_aua_vs_finetune_p_value == row.textfooler_aua_vs_finetune_p_value   # tested (not NaN)
        metrics = json.loads((results / f"train/tiny/{method}/seed1/metrics.json").read_text())
        assert metrics["method"] == method and metrics["method_params"] == build_method(
            method, **SUCCESSORS_OVERLAY["method_params"].get(method, {})).params
    assert json.loads((results / "train/tiny/iflood/seed1/metrics.json").read_text())["method_params"] == \
        {"flood_level": 0.3}
    table3 = pd.read_csv(results / "tables/table3.csv")
    assert {"iflood", "ttso", "ttso_pp", "als"} <= set(table3.method)
    assert "TTSO++" in (results / "tables/table2.md").read_text()
