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

SUCCESSORS = {"iflood": {"flood_level": 0.3}, "ttso": {}, "ttso_pp": {}, "als": {}}   # (AdaFlood: below)


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
    assert float(per_example.detach()) == pytest.approx(float(per_batch.detach()), abs=1e-12)
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
    assert float(ours.detach()) == pytest.approx(float(brute.detach()), abs=1e-9)
    assert torch.allclose(gradient(ours, logits), gradient(brute, logits), atol=1e-6)


def test_ttso_pp_with_no_entropy_weight_is_ttso_and_entropy_is_in_nats():
    logits, labels = logits_and_labels(seed=3, classes=4)
    plain = temperature_scaled_loss(logits, labels, 20.0, 0.0).detach()
    assert float(plain) == pytest.approx(float(brute_ttso(logits, labels, 20.0, 0.0).detach()), abs=1e-9)
    pp = build_method("ttso_pp", temperature=10.0, entropy_weight=0.0)
    assert vars(pp)["params"] == build_method("ttso").params                  # the same method, TTSO's defaults
    uniform = torch.zeros(1, 4)
    assert float(prediction_entropy(uniform)) == pytest.approx(math.log(4))
    assert float(temperature_scaled_loss(logits, labels, 1.0, 0.0).detach()) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, labels).detach()), abs=1e-9)      # T = 1: cross-entropy


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
    assert float(ours.detach()) == pytest.approx(float(brute.detach()), abs=1e-9)
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
    assert float(ours.detach()) == pytest.approx(float(reference.detach()), abs=1e-9)
    assert torch.allclose(gradient(ours, logits), gradient(reference, logits), atol=1e-6)


# ------------------------------------------------------------------ AdaFlood
def brute_adaflood(logits, labels, aux, gamma):
    total = 0.0
    for i in range(len(labels)):
        theta = -math.log((1 - gamma) * math.exp(-aux[i]) + gamma)
        total = total + abs(brute_cross_entropy(logits[i], labels[i]) - theta) + theta
    return total / len(labels)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9])
def test_adaflood_floods_each_example_at_its_corrected_auxiliary_loss(gamma):
    from floodx.methods.adaflood import adaflood_levels

    logits, labels = logits_and_labels(seed=6)
    aux = [0.05, 0.2, 0.7, 1.5, 3.0, 0.01, 0.9]
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    levels = adaflood_levels(torch.tensor(aux, dtype=torch.float64), gamma)
    ours = build_method("adaflood", gamma=gamma).per_example_objective(losses, levels)
    brute = brute_adaflood(logits, labels, aux, gamma)
    assert float(ours.detach()) == pytest.approx(float(brute.detach()), abs=1e-12)
    assert torch.allclose(gradient(ours, logits), gradient(brute, logits), atol=1e-12)
    if gamma == 0.0:
        assert torch.allclose(levels, torch.tensor(aux, dtype=torch.float64))   # gamma 0: the auxiliary loss itself


def test_adaflood_with_gamma_one_is_cross_entropy():
    from floodx.methods.adaflood import adaflood_levels

    logits, labels = logits_and_labels(seed=7)
    levels = adaflood_levels(torch.tensor([0.3] * 7, dtype=torch.float64), 1.0)
    assert torch.equal(levels, torch.zeros(7, dtype=torch.float64))
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    ours = build_method("adaflood", gamma=1.0).per_example_objective(losses, levels)
    assert float(ours.detach()) == pytest.approx(float(losses.mean().detach()), abs=1e-12)


def write_aux_losses(path, losses):
    import json

    path.write_text(json.dumps({"losses": {str(i): v for i, v in losses.items()}}))
    return path


def test_adaflood_looks_each_example_up_by_idx_and_refuses_a_missing_one(tmp_path, tiny_model, batch_of, sentences):
    from floodx.training import make_loader

    model, tokenizer = tiny_model
    examples = [{"idx": 10 + i, "text": t, "label": y} for i, (t, y) in enumerate(sentences[:8])]
    loader = make_loader(examples, tokenizer, 4, 32, with_ids=True)
    assert sorted(int(i) for b in loader for i in b["idx"]) == list(range(10, 18))
    aux = {10 + i: 0.1 * (i + 1) for i in range(8)}
    method = build_method("adaflood", gamma=0.5, aux_losses=str(write_aux_losses(tmp_path / "aux.json", aux)))
    method.setup(model, tokenizer, loader)
    batch = loader[0]
    expected = [-math.log(0.5 * math.exp(-aux[int(i)]) + 0.5) for i in batch["idx"]]
    assert method.example_levels(batch, torch.zeros(1)).tolist() == pytest.approx(expected)
    assert method.step(model, batch) > 0
    del aux[13]
    short = build_method("adaflood", aux_losses=str(write_aux_losses(tmp_path / "short.json", aux)))
    with pytest.raises(Exception, match=r"no auxiliary loss for training example\(s\) idx \[13\]"):
        short.setup(model, tokenizer, loader)
    with pytest.raises(ConfigError, match="needs the auxiliary losses"):
        build_method("adaflood").setup(model, tokenizer, loader)


def test_folds_partition_the_training_split_and_gather_checks_coverage(tmp_path, sentences):
    import json

    from conftest import write_prepared
    from floodx.auxiliary import gather, split_folds
    from floodx.data import load_split
    from floodx.errors import DataError

    examples = [{"idx": i} for i in range(11)]
    parts = [split_folds(examples, k, 3) for k in range(3)]
    held = [ex["idx"] for _, out in parts for ex in out]
    assert sorted(held) == list(range(11)) and all(len(kept) + len(out) == 11 for kept, out in parts)
    data = tmp_path / "data"
    write_prepared(data, sentences)
    train = [ex["idx"] for ex in load_split(data, "train")]
    paths = []
    for fold in range(2):
        record = {"identity": {"dataset": "toy", "seed": 1, "fold": fold, "folds": 2}, "dev_acc": 0.5,
                  "losses": {str(i): 0.1 * fold for n, i in enumerate(train) if n % 2 == fold}}
        paths.append(tmp_path / f"fold{fold}.json")
        paths[-1].write_text(json.dumps(record))
    joined = gather(paths, data, tmp_path / "losses.json")
    assert sorted(map(int, joined["losses"])) == sorted(train) and joined["identity"] == {"dataset": "toy", "seed": 1,
                                                                                         "folds": 2}
    with pytest.raises(DataError, match="not folds 0..K-1"):
        gather(paths[:1], data, tmp_path / "bad.json")
    record = json.loads(paths[1].read_text())
    record["losses"].pop(next(iter(record["losses"])))
    paths[1].write_text(json.dumps(record))
    with pytest.raises(DataError, match="do not cover the training split"):
        gather(paths, data, tmp_path / "bad.json")


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
    assert float(logged) == pytest.approx(float(plain.detach()), rel=1e-5)   # metrics.json's loss is the plain CE
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
    ("iflood", {}, r"needs a positive flood_level or \"flooding\""),
    ("ttso", {"temperature": 0}, r"temperature must be > 0"),
    ("als", {"alpha": 1.0}, r"alpha must lie in \[0, 1\)"),
    ("adaflood", {"gamma": 2}, r"gamma must lie in \[0, 1\]"),
    ("adaflood", {"folds": 1}, r"folds must be an integer >= 2"),
    ("ttso_pp", {"tmperature": 5}, r"unknown parameter\(s\) \['tmperature'\] for method 'ttso_pp'"),
])
def test_bad_parameters_name_the_config_key(name, params, message):
    with pytest.raises(ConfigError, match=message):
        build_method(name, **params)


def test_iflood_at_floodings_dev_choice_is_resolved_by_the_workflow(tiny_model):
    from floodx.config import run_config, run_spec, validate_config

    config = copy.deepcopy(run_config())
    config["methods"] = ["finetune", "flooding", "iflood"]
    config["figures"]["per_epoch_methods"] = None
    config["method_params"] = {"iflood": {"flood_level": "flooding"}}
    config = validate_config(config)
    assert run_spec(config, "rt", "iflood", 42, flooding_choice="0.20")["method_params"] == {"flood_level": 0.2}
    assert run_spec(config, "rt", "finetune", 42)["method_params"] == {}
    with pytest.raises(ConfigError, match="Flooding's dev choice is needed"):
        run_spec(config, "rt", "iflood", 42)
    with pytest.raises(ConfigError, match="resolved by the workflow"):
        build_method("iflood", flood_level="flooding").setup(*tiny_model, [])
    config["methods"] = ["finetune", "iflood"]
    with pytest.raises(ConfigError, match="flooding is not in methods"):
        validate_config(config)


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
    "methods": ["finetune", "flooding", "iflood", "adaflood", "ttso", "ttso_pp", "als"],
    "method_params": {"iflood": {"flood_level": "flooding"}},         # at Flooding's dev-chosen level
    "figures": {"per_epoch_methods": ["finetune", "iflood"], "grid_test_attack": False},
    # (tiny.yaml's calibrated list names Flooding-X, which this overlay drops): TTSO on calibrated scores
    "attacks": {"recipes": ["textfooler"], "shards": 1, "calibrated": ["finetune", "ttso"]},
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
    for method in ("iflood", "adaflood", "ttso", "ttso_pp", "als"):
        row = table[table.method == method].iloc[0]
        assert 0 <= row.textfooler_aua_mean <= 100 and row.textfooler_aua_high >= row.textfooler_aua_low
        assert row.textfooler_aua_vs_finetune_p_value == row.textfooler_aua_vs_finetune_p_value   # tested (not NaN)
        metrics = json.loads((results / f"train/tiny/{method}/seed1/metrics.json").read_text())
        expected = dict(SUCCESSORS_OVERLAY["method_params"].get(method, {}))
        if method == "adaflood":       # its auxiliary losses, the workflow's own input
            expected["aux_losses"] = "results/aux/tiny/seed1/losses.json"
        if method == "iflood":
            continue
        assert metrics["method"] == method and metrics["method_params"] == build_method(method, **expected).params
    chosen = json.loads((results / "search/tiny/flooding/seed1/choice.json").read_text())["chosen"]
    assert json.loads((results / "train/tiny/iflood/seed1/metrics.json").read_text())["method_params"] == \
        {"flood_level": float(chosen)}
    # AdaFlood: two auxiliary fold runs, each scoring the half it did not train on, joined once.
    aux = json.loads((results / "aux/tiny/seed1/losses.json").read_text())
    train = [json.loads(line)["idx"] for line in (results / "data/tiny/train.jsonl").read_text().splitlines()]
    assert sorted(map(int, aux["losses"])) == sorted(train) and len(aux["folds"]) == 2
    fold0 = json.loads((results / "aux/tiny/seed1/fold0/losses.json").read_text())
    assert fold0["n_trained"] + fold0["n_held_out"] == len(train)
    table3 = pd.read_csv(results / "tables/table3.csv")
    assert {"iflood", "adaflood", "ttso", "ttso_pp", "als"} <= set(table3.method)
    assert "AdaFlood: its epochs are timed as iFlood's" in (results / "tables/table3.md").read_text()
    assert "TTSO++" in (results / "tables/table2.md").read_text()
    assert "- tiny, TTSO, TextFooler: Aua%" in (results / "tables/calibrated.md").read_text()
