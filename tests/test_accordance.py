"""Gradient accordance (eq. 11-13): the running-sum computation against a brute-force reference,
the in-training probe against the fixed-parameter function, and the probe's update against
plain fine-tuning."""

import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import make_batch, write_prepared
from floodx.accordance import CSV_COLUMNS, AccordanceSums, gradient_accordance, run_probe, split_by_class
from floodx.errors import ConfigError, DataError
from floodx.methods.probe import AccordanceProbe
from floodx.methods import build_method
from floodx.models import tiny_bert


# ---------------------------------------------------------------- brute-force reference
def flat_grad(model):
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters() if p.requires_grad]).double()


def reference_accordance(model, batches, k):
    """Eq. 11-13 literally: store every sub-batch gradient, loop over all s < t and i != j."""
    grads = []
    for batch in batches:
        per_class = {}
        for c in range(k):
            mask = batch["labels"] == c
            if not mask.any():
                continue
            model.zero_grad(set_to_none=True)
            inputs = {key: value[mask] for key, value in batch.items() if key != "labels"}
            F.cross_entropy(model(**inputs).logits, batch["labels"][mask]).backward()
            per_class[c] = flat_grad(model)
        grads.append(per_class)
    model.zero_grad(set_to_none=True)
    n = len(batches)
    total, dropped = 0.0, 0
    for t in range(n):
        for s in range(t):
            batch_sum = 0.0
            for j in range(k):
                for i in range(k):
                    if i == j:
                        continue
                    if i in grads[s] and j in grads[t]:
                        batch_sum += F.cosine_similarity(grads[s][i], grads[t][j], dim=0).item()
                    else:
                        dropped += 1
            total += batch_sum / (k * (k - 1))          # eq. 12
    return total / (n * (n - 1)), dropped             # eq. 13


def labelled(sentences, k):
    """The fixture sentences relabelled into k classes (k=2 keeps the sentiment labels)."""
    if k == 2:
        return list(sentences)
    return [(text, i % k) for i, (text, _) in enumerate(sentences)]


def batches_for(tokenizer, pairs, sizes, drop=None):
    """Consecutive batches of `sizes`; `drop` maps a batch index to classes removed from it."""
    out, start = [], 0
    order = pairs[::2] + pairs[1::2]
    order = [order[i] for i in torch.randperm(len(order), generator=torch.Generator().manual_seed(1)).tolist()]
    for index, size in enumerate(sizes):
        chunk = order[start:start + size]
        start += size
        if drop and index in drop:
            chunk = [p for p in chunk if p[1] not in drop[index]]
        out.append(make_batch(tokenizer, chunk))
    return out


@pytest.fixture
def model_k(tmp_path):
    def build(k):
        torch.manual_seed(k)
        model, tokenizer = tiny_bert(k, tmp_path / f"tiny{k}")
        model.eval()   # no dropout: the fixed-parameter quantity is deterministic
        return model, tokenizer
    return build


# ---------------------------------------------------------------- the function vs the reference
@pytest.mark.parametrize("k, sizes, drop", [
    (2, [6, 6, 5, 6], None),
    (2, [6, 5, 6, 6, 4], {1: {1}, 3: {0}}),            # two batches with a class missing
    (4, [8, 8, 7, 8], None),
    (4, [8, 8, 8, 8, 8], {0: {3}, 2: {1, 2}, 4: {0, 1, 2}}),
])
def test_running_sums_equal_the_brute_force_reference(model_k, sentences, k, sizes, drop):
    model, tokenizer = model_k(k)
    batches = batches_for(tokenizer, labelled(sentences, k), sizes, drop)
    expected, expected_dropped = reference_accordance(model, batches, k)
    before = [p.detach().clone() for p in model.parameters()]
    result = gradient_accordance(model, batches, k)
    assert result.accordance == pytest.approx(expected, abs=1e-5)
    assert result.dropped_terms == expected_dropped
    if drop:
        assert expected_dropped > 0
    assert result.n_batches == len(sizes)
    assert result.total_terms == len(sizes) * (len(sizes) - 1) // 2 * k * (k - 1)
    for p, q in zip(model.parameters(), before):   # parameters held fixed
        assert torch.equal(p, q)
        assert p.grad is None                      # .grad restored


def test_normalisation_is_half_the_mean_over_ordered_pairs(model_k, sentences):
    """N copies of one batch: every S(B_s, B_t) is the same c, so eq. 13 gives c/2 (see docstring)."""
    model, tokenizer = model_k(2)
    batch = make_batch(tokenizer, sentences[::3])
    c = reference_accordance(model, [batch, batch], 2)[0] * 2   # S(B, B), N = 2
    for n in (2, 3, 5):
        assert gradient_accordance(model, [batch] * n, 2).accordance == pytest.approx(c / 2, abs=1e-5)


def test_fewer_than_two_batches_or_classes(model_k, sentences):
    model, tokenizer = model_k(2)
    batch = make_batch(tokenizer, sentences[:6])
    assert math.isnan(gradient_accordance(model, [batch], 2).accordance)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        gradient_accordance(model, [batch], 1)
    bad = dict(batch, labels=torch.full_like(batch["labels"], 5))
    with pytest.raises(DataError, match="labels outside"):
        gradient_accordance(model, [batch, bad], 2)


def test_a_zero_gradient_contributes_zero_and_is_counted():
    sums = AccordanceSums(2, 3, torch.device("cpu"))
    vectors = [[(0, [1.0, 0, 0]), (1, [0, 0, 0])], [(0, [0, 2.0, 0]), (1, [1.0, 1.0, 0])]]
    for batch in vectors:
        sums.begin_batch(len(batch))
        for label, v in batch:
            sums.add_class(label, torch.tensor(v, dtype=torch.float32))
        sums.end_batch()
    result = sums.result()
    # terms (s=0,t=1): u_0^0 . u_1^1 = 1/sqrt2 ; u_0^1 (zero) . u_1^0 = 0
    assert result.accordance == pytest.approx((1 / math.sqrt(2)) / (2 * 1 * 2 * 1))
    assert result.zero_gradients == 1 and result.dropped_terms == 0


@pytest.mark.parametrize("seed", range(6))
def test_running_sums_on_random_vectors(seed):
    """Any k, any pattern of missing classes, gradients of any scale: eq. 13 term by term."""
    gen = torch.Generator().manual_seed(seed)
    k = 2 + seed % 3
    n = 2 + seed
    sums = AccordanceSums(k, 50, torch.device("cpu"))
    grads = []
    for _ in range(n):
        present = [c for c in range(k) if torch.rand((), generator=gen) < 0.7] or [seed % k]
        order = [present[i] for i in torch.randperm(len(present), generator=gen).tolist()]
        batch = {c: torch.randn(50, generator=gen) * (0.1 + torch.rand((), generator=gen) * 10) for c in order}
        sums.begin_batch(len(order))
        for c in order:
            sums.add_class(c, batch[c].clone())
        sums.end_batch()
        grads.append(batch)
    expected, dropped = 0.0, 0
    for t in range(n):
        for s in range(t):
            for j in range(k):
                for i in range(k):
                    if i != j:
                        if i in grads[s] and j in grads[t]:
                            expected += F.cosine_similarity(grads[s][i].double(), grads[t][j].double(), dim=0).item()
                        else:
                            dropped += 1
    result = sums.result()
    assert result.accordance == pytest.approx(expected / (k * (k - 1) * n * (n - 1)), abs=1e-6)
    assert result.dropped_terms == dropped


def test_dot64_is_accurate_on_long_vectors():
    from floodx.accordance import dot64

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3_000_000, generator=gen)
    b = a + 0.1 * torch.randn(3_000_000, generator=gen)
    exact = torch.dot(a.double(), b.double()).item()
    assert dot64(a, b).item() == pytest.approx(exact, rel=1e-7)


def test_split_by_class_keeps_rows_and_padding(tiny_model, batch_of, sentences):
    batch = batch_of(sentences[15:25])
    parts = split_by_class(batch, 2)
    assert [(c, n) for c, n, _ in parts] == [(0, 5), (1, 5)]
    for c, _, sub in parts:
        assert (sub["labels"] == c).all()
        assert sub["input_ids"].shape[1] == batch["input_ids"].shape[1]
    single = batch_of(sentences[:4])
    assert split_by_class(single, 2) == [(1, 4, single)]


# ---------------------------------------------------------------- the probe method
def finetune_grads(model, batch):
    model.zero_grad(set_to_none=True)
    build_method("finetune").step(model, batch)
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("k", [2, 4])
def test_probe_update_equals_the_full_batch_finetune_update(model_k, sentences, k):
    model, tokenizer = model_k(k)
    pairs = labelled(sentences, k)
    probe = build_method("accordance_probe")
    assert isinstance(probe, AccordanceProbe) and probe.passes_per_step == 1
    for chunk in (pairs[3:16], pairs[:5] if k == 2 else [p for p in pairs[:12] if p[1] == 1]):
        batch = make_batch(tokenizer, chunk)
        expected_loss = F.cross_entropy(model(**{key: v for key, v in batch.items() if key != "labels"}).logits,
                                        batch["labels"])
        expected = finetune_grads(model, batch)
        model.zero_grad(set_to_none=True)
        loss = probe.step(model, batch)
        assert loss.shape == () and not loss.requires_grad
        assert loss.item() == pytest.approx(expected_loss.item(), abs=1e-6)
        for p, g in zip(model.parameters(), expected):
            torch.testing.assert_close(p.grad, g, rtol=0, atol=1e-6)
    assert probe.extra_floats() == (k + (1 if k == 2 else 2)) * probe.parameter_count()


def test_probe_without_updates_equals_the_fixed_parameter_function(model_k, sentences):
    model, tokenizer = model_k(2)
    batches = batches_for(tokenizer, sentences, [6, 5, 6, 6, 4], {1: {1}})
    probe = build_method("accordance_probe")
    for batch in batches:
        model.zero_grad(set_to_none=True)
        probe.step(model, batch)
    got = probe.pop_sub_epoch()
    expected = gradient_accordance(model, batches, 2)
    assert got.accordance == pytest.approx(expected.accordance, abs=1e-6)
    assert got.dropped_terms == expected.dropped_terms > 0
    assert len(got.train_losses) == 5
    # the sums restart after a pop
    for batch in batches[:2]:
        probe.step(model, batch)
    assert probe.pop_sub_epoch().accordance == pytest.approx(
        gradient_accordance(model, batches[:2], 2).accordance, abs=1e-6)


def test_probe_in_the_training_loop_with_lr_zero(model_k, sentences):
    """Through the loop's own step (zero_grad(set_to_none), clipping, AdamW): lr 0 -> same value."""
    Optimisation = pytest.importorskip("floodx.training").__dict__.get("Optimisation")
    if Optimisation is None:
        pytest.skip("floodx.training.Optimisation not available")
    model, tokenizer = model_k(4)
    batches = batches_for(tokenizer, labelled(sentences, 4), [8, 8, 7, 8], {2: {0}})
    expected = gradient_accordance(model, batches, 4)
    for bf16, tolerance in ((False, 1e-5), (True, 1e-3)):   # under CPU bf16 autocast: close, not equal
        probe = build_method("accordance_probe", sub_epoch_batches=4)
        training = {"learning_rate": 0.0, "warmup_ratio": 0.0, "weight_decay": 0.01, "max_grad_norm": 1.0,
                    "bf16": bf16}
        runner = Optimisation(model, probe, training, 10, torch.device("cpu"))
        for batch in batches:
            runner.step(batch)
        assert probe.sub_epoch_complete
        got = probe.pop_sub_epoch()
        assert got.accordance == pytest.approx(expected.accordance, abs=tolerance)
        assert got.dropped_terms == expected.dropped_terms


def test_probe_closes_sub_epochs_at_size_and_at_epoch_end(tiny_model, batch_of, sentences):
    model, _ = tiny_model
    probe = build_method("accordance_probe", sub_epoch_batches=2)
    batches = [batch_of(sentences[i::5][:6]) for i in range(5)]
    probe.setup(model, None, batches)      # 5 batches per epoch
    closed = []
    for step in range(1, 11):
        probe.step(model, batches[(step - 1) % 5])
        if probe.sub_epoch_complete:
            closed.append((step, probe.pop_sub_epoch().n_batches))
    assert closed == [(2, 2), (4, 2), (5, 1), (7, 2), (9, 2), (10, 1)]
    with pytest.raises(ConfigError, match="sub_epoch_batches"):
        build_method("accordance_probe", sub_epoch_batches=1)


# ---------------------------------------------------------------- the probe run
@pytest.fixture
def data_module(monkeypatch):
    """floodx.data if it is there, else a reader of the design.md format."""
    training = pytest.importorskip("floodx.training")
    if not hasattr(training.data_module, "load_meta"):
        from types import SimpleNamespace

        def load_split(folder, split):
            return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]

        monkeypatch.setattr(training, "data_module", SimpleNamespace(
            load_meta=lambda folder: json.loads((folder / "meta.json").read_text()), load_split=load_split))
    return training


def probe_spec(epochs=2):
    return {
        "dataset": "toy", "run": "accordance_probe", "method": "accordance_probe", "method_params": {},
        "seed": 3, "model": {"source": "tiny"}, "sub_epoch_batches": 3,
        "training": {"epochs": epochs, "batch_size": 4, "eval_batch_size": 16, "learning_rate": 1e-3,
                     "warmup_ratio": 0.1, "weight_decay": 0.01, "max_grad_norm": 1.0, "max_length": 32},
    }


def read_rows(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        return list(reader)


def test_probe_run_writes_one_row_per_sub_epoch(tmp_path, sentences, data_module):
    data = write_prepared(tmp_path / "data", sentences)    # 30 training examples: 8 batches of 4
    out = tmp_path / "probe"
    rows = run_probe(probe_spec(), data, out, device=torch.device("cpu"))
    saved = read_rows(out / "accordance.csv")
    assert len(saved) == len(rows) == 6                       # per epoch: 3 + 3 + 2 batches
    assert [(int(r["first_step"]), int(r["last_step"])) for r in saved] == [
        (1, 3), (4, 6), (7, 8), (9, 11), (12, 14), (15, 16)]
    assert [int(r["epoch"]) for r in saved] == [1, 1, 1, 2, 2, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    per_batch = [x for e in metrics["epochs"] for x in e["train_loss_per_batch"]]
    assert [x for r in saved for x in json.loads(r["train_losses"])] == pytest.approx(per_batch, abs=1e-6)
    for r in saved:
        losses = json.loads(r["train_losses"])
        assert float(r["train_loss_mean"]) == pytest.approx(sum(losses) / len(losses))
        assert float(r["train_loss_min"]) == min(losses) and float(r["train_loss_max"]) == max(losses)
        assert -0.5 <= float(r["accordance"]) <= 0.5
        assert float(r["dev_loss"]) > 0 and float(r["test_loss"]) > 0 and int(r["dropped_terms"]) >= 0
    # A finished run asked again (a re-run after a crash before the CSV): rows from the checkpoint.
    (out / "accordance.csv").unlink()
    again = run_probe(probe_spec(), data, out, device=torch.device("cpu"))
    assert again == rows and len(read_rows(out / "accordance.csv")) == 6


class Interrupt(Exception):
    pass


def test_interrupted_probe_run_resumes_with_the_same_rows(tmp_path, sentences, data_module):
    """Pre-empted in epoch 2: the resumed run keeps epoch 1's rows (they travel in the checkpoint)."""
    from floodx.accordance import ProbeRecorder

    data = write_prepared(tmp_path / "data", sentences)
    whole = run_probe(probe_spec(epochs=2), data, tmp_path / "whole", device=torch.device("cpu"))

    class StopAt(ProbeRecorder):
        def on_step_end(self, state):
            super().on_step_end(state)
            if state.global_step == 12:
                raise Interrupt

    spec = dict(probe_spec(epochs=2), method_params={"sub_epoch_batches": 3})
    with pytest.raises(Interrupt):
        data_module.train(spec, data, tmp_path / "resumed", callbacks=[StopAt()], device=torch.device("cpu"))
    resumed = run_probe(probe_spec(epochs=2), data, tmp_path / "resumed", device=torch.device("cpu"))
    assert len(resumed) == len(whole) == 6
    for a, b in zip(whole, resumed):
        assert a["first_step"] == b["first_step"] and a["sub_epoch"] == b["sub_epoch"]
        assert a["accordance"] == pytest.approx(b["accordance"], abs=1e-6)
        assert a["train_losses"] == pytest.approx(b["train_losses"], abs=1e-6)


def test_cli_reports_a_bad_spec(capsys):
    from floodx.accordance import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--spec", "{not json", "--data", "x", "--out", "y"])
    assert exit_info.value.code == 2
    assert "floodx: error: --spec is not valid JSON" in capsys.readouterr().err


def test_bench_probe_reports_time_ratio_and_memory(model_k, sentences):
    from floodx.bench.probe import bench_probe

    model, tokenizer = model_k(4)
    batches = batches_for(tokenizer, labelled(sentences, 4), [8, 8, 8, 8])
    figures = bench_probe(model, tokenizer, batches, rounds=1, sub_epoch_batches=2, measure_memory=False)
    assert figures["probe_over_finetune_epoch_time"] > 0
    assert figures["probe_extra_memory_in_P"] == 6.0            # k + 2 for k = 4
    assert figures["probe_num_labels"] == 4


def test_probe_stops_a_few_sub_epochs_after_a_confirmed_crossing(tmp_path, sentences, data_module, monkeypatch):
    """The probe ends mid-epoch `stop_after_sub_epochs` rows after the confirming row, and a
    finished-early probe asked again trains nothing and rewrites the same rows."""
    import floodx.window

    data = write_prepared(tmp_path / "data", sentences)
    seen = []

    def confirmed_at(rows, confirm, direction):      # pretend row 0 confirmed a crossing
        seen.append((len(rows), confirm, direction))
        return 0

    monkeypatch.setattr(floodx.window, "crossing_confirmed_at", confirmed_at)
    spec = dict(probe_spec(epochs=2), stop={"confirm_sub_epochs": 3, "direction": "neg_to_pos",
                                             "stop_after_sub_epochs": 1})
    rows = run_probe(spec, data, tmp_path / "probe", device=torch.device("cpu"))
    assert len(rows) == 2 and rows[-1]["last_step"] == 6            # mid-epoch 1 (8 batches)
    assert seen == [(1, 3, "neg_to_pos"), (2, 3, "neg_to_pos")]
    saved = read_rows(tmp_path / "probe" / "accordance.csv")
    assert [float(r["epoch_fraction"]) for r in saved] == [3 / 8, 6 / 8]
    assert all(0 <= float(r["dev_acc"]) <= 1 for r in saved)
    metrics = json.loads((tmp_path / "probe" / "metrics.json").read_text())
    assert metrics["stopped_early"] and metrics["epochs"][-1]["steps"] == 6
    (tmp_path / "probe" / "accordance.csv").unlink()
    assert run_probe(spec, data, tmp_path / "probe", device=torch.device("cpu")) == rows


def test_probe_without_a_stop_rule_trains_every_epoch(tmp_path, sentences, data_module):
    from floodx.accordance import ProbeRecorder

    rows = [{"accordance": a, "sub_epoch": i + 1, "first_step": i, "last_step": i, "train_loss_mean": 0.1}
            for i, a in enumerate([-0.2, -0.2, -0.2, 0.1, 0.2, 0.3, 0.4])]
    assert not ProbeRecorder(stop={"confirm_sub_epochs": 3, "stop_after_sub_epochs": None}).should_stop(rows)
    assert ProbeRecorder(stop={"confirm_sub_epochs": 3, "stop_after_sub_epochs": 1}).should_stop(rows)
    assert not ProbeRecorder(stop={"confirm_sub_epochs": 3, "stop_after_sub_epochs": 2}).should_stop(rows)
    assert not ProbeRecorder(stop={"confirm_sub_epochs": 3, "stop_after_sub_epochs": 0,
                                   "direction": "pos_to_neg"}).should_stop(rows)
