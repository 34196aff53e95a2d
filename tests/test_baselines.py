"""The adversarial-training baselines (PGD, FreeLB, TAVAT, InfoBERT) on a tiny BERT.

Per method: every delta the model sees lies in its norm ball; with perturbation size 0 the step
is fine-tuning (same loss, same .grad); the forward/backward passes counted with hooks equal
`passes_per_step`; the training loss falls on a tiny problem. Plus unit checks of the shared
machinery and of InfoBERT's estimators against direct transcriptions of the reference code.
"""

import copy
import math

import pytest
import torch

from floodx.errors import ConfigError
from floodx.methods import build_method
from floodx.methods.adversarial import example_norm, init_delta, token_mask
from floodx.methods.base import FineTune, classification_loss
from floodx.methods.infobert import InfoNCE, anchored_features, information_bottleneck

METHODS = ["pgd", "freelb", "tavat", "infobert"]
ZERO = {"adv_init_mag": 0.0, "adv_lr": 0.0}
ZERO_INFOBERT = {**ZERO, "alpha": 0.0, "beta": 0.0}


@pytest.fixture
def model(tiny_model):
    return tiny_model[0]


@pytest.fixture
def tokenizer(tiny_model):
    return tiny_model[1]


@pytest.fixture
def batch(batch_of, sentences):
    # 12 sentences of different lengths: padding is present in every check
    return batch_of(sentences[::4] + sentences[1::9])


def make(name, model, tokenizer, batch, **params):
    method = build_method(name, **params)
    method.setup(model, tokenizer, [batch])
    return method


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------------------------- norm ball

BALLS = [
    ("pgd", "l2", {}),
    ("pgd", "linf", {}),
    ("freelb", "l2", {}),
    ("freelb", "linf", {}),
    ("tavat", "l2", {}),
    ("infobert", "l2", {}),
]


@pytest.mark.parametrize("name,norm_type,extra", BALLS, ids=[f"{b[0]}-{b[1]}" for b in BALLS])
def test_every_delta_lies_in_its_ball(name, norm_type, extra, model, tokenizer, batch):
    eps = 0.02 if norm_type == "l2" else 0.004
    method = make(name, model, tokenizer, batch, adv_max_norm=eps, adv_lr=0.05,
                  adv_init_mag=0.5 * eps, norm_type=norm_type, **extra)
    method.norm_trace = []
    model.train()
    for _ in range(2):                       # TAVAT's second step starts from its vocabulary
        model.zero_grad()
        method.step(model, batch)
    assert len(method.norm_trace) == 2 * method.passes_per_step
    pad = batch["attention_mask"] == 0
    assert pad.any()
    largest = 0.0
    for record in method.norm_trace:
        assert torch.all(record["example"] <= eps * (1 + 1e-5)), record["example"]
        assert torch.all(record["token"][pad] == 0)          # padding is never perturbed
        # per token: inside the sentence's l2 ball, or sqrt(d) * eps for an l-inf ball (d = 32)
        token_bound = eps if norm_type == "l2" else eps * math.sqrt(32)
        assert torch.all(record["token"] <= token_bound * (1 + 1e-5))
        largest = max(largest, float(record["example"].max()))
    assert largest == pytest.approx(eps, rel=1e-4)          # the projection did bind


def test_unbounded_l2_radius_is_init_plus_k_steps(model, tokenizer, batch):
    """epsilon = 0 means "no bound" (the reference codes' convention): ||delta|| <= init + K alpha."""
    method = make("pgd", model, tokenizer, batch)            # defaults: eps 0, init .05, alpha .03
    method.norm_trace = []
    method.step(model, batch)
    norms = torch.stack([r["example"] for r in method.norm_trace])
    bound = method.adv_init_mag + torch.arange(len(norms)).unsqueeze(1) * method.adv_lr
    assert torch.all(norms <= bound + 1e-6)
    assert norms[-1].min() > 0.5 * bound[-1].item()          # ascent really moved delta


def test_tavat_token_normalisation(model, tokenizer, batch):
    """After an ascent step each token's norm is ||d_i||^2 / max_j ||d_j|| (TAVAT's code)."""
    from floodx.methods.tavat import TokenAwarePerturbation

    torch.manual_seed(1)
    method = make("tavat", model, tokenizer, batch, adv_max_norm=0.0)
    embeds = model.get_input_embeddings()(batch["input_ids"]).detach()
    mask = token_mask(batch, embeds)
    pert = TokenAwarePerturbation(method.vocab, batch["input_ids"], embeds, mask, 0.2, 0.05, 0.0)
    grad = torch.randn_like(embeds)
    raw = pert.tok + 0.05 * grad * mask / (grad * mask).norm(dim=-1, keepdim=True).clamp(min=1e-8)
    pert.ascend(grad)
    n = raw.norm(dim=-1)
    expected = n * n / n.amax(dim=1, keepdim=True)
    torch.testing.assert_close(pert.tok.norm(dim=-1), expected, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------ zero size == fine-tuning

def finetune_reference(model, batch, seed):
    ref = copy.deepcopy(model)
    ref.zero_grad()
    torch.manual_seed(seed)
    loss = FineTune().step(ref, batch)
    return loss, grads(ref)


ZERO_CASES = [(name, mode) for name in METHODS for mode in ("eval", "train")]


@pytest.mark.parametrize("name,mode", ZERO_CASES, ids=[f"{n}-{m}" for n, m in ZERO_CASES])
def test_zero_perturbation_is_finetuning(name, mode, model, tokenizer, batch):
    """eval: no dropout. train: dropout on, masks shared by the passes -> the same masks as a
    fine-tuning step drawn from the same seed, so even the dropout noise agrees."""
    params = dict(ZERO_INFOBERT if name == "infobert" else ZERO)
    if mode == "train":
        params["share_dropout_mask"] = True
    model.train(mode == "train")
    expected_loss, expected = finetune_reference(model, batch, seed=7)
    method = make(name, model, tokenizer, batch, **params)
    model.zero_grad()
    torch.manual_seed(7)
    loss = method.step(model, batch)
    assert loss.dim() == 0 and not loss.requires_grad
    torch.testing.assert_close(loss, expected_loss, atol=1e-6, rtol=0)
    got = grads(model)
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=0, msg=key)


def test_nonzero_perturbation_changes_the_gradient(model, tokenizer, batch):
    model.eval()
    _, expected = finetune_reference(model, batch, seed=0)
    for name in METHODS:
        model.zero_grad()
        make(name, model, tokenizer, batch).step(model, batch)
        got = grads(model)
        diff = max((got[k] - expected[k]).abs().max().item() for k in expected)
        assert diff > 1e-5, name


# ------------------------------------------------------------------------- pass counting

class PassCounter:
    """Forward calls of the whole model; backward sweeps that reach the embedding layer's output
    (a tensor hook registered on it in every forward)."""

    def __init__(self, model):
        self.forward = self.backward = 0
        self.handles = [
            model.register_forward_hook(self._on_forward),
            model.base_model.embeddings.register_forward_hook(self._on_embeddings),
        ]

    def _on_forward(self, *_):
        self.forward += 1

    def _on_embeddings(self, module, args, output):
        if output.requires_grad:
            output.register_hook(self._on_backward)

    def _on_backward(self, grad):
        self.backward += 1

    def close(self):
        for handle in self.handles:
            handle.remove()


@pytest.mark.parametrize("name,forward,backward",
                         [("pgd", 6, 6), ("freelb", 5, 5), ("tavat", 5, 5), ("infobert", 5, 10)])
def test_passes_per_step_counted_with_hooks(name, forward, backward, model, tokenizer, batch):
    method = make(name, model, tokenizer, batch)
    assert method.adv_steps == 5                               # Flooding-X section 4.3
    counter = PassCounter(model)
    try:
        method.step(model, batch)
    finally:
        counter.close()
    assert counter.forward == method.passes_per_step == forward
    assert counter.backward == (method.backward_passes_per_step or method.passes_per_step) == backward


def test_pass_count_follows_adv_steps(model, tokenizer, batch):
    for name, expected in (("pgd", 4), ("freelb", 3), ("tavat", 3), ("infobert", 3)):
        method = make(name, model, tokenizer, batch, adv_steps=3)
        counter = PassCounter(model)
        method.step(model, batch)
        counter.close()
        assert counter.forward == method.passes_per_step == expected, name


# ------------------------------------------------------------------------ the loss falls

def clean_loss(model, batch):
    model.eval()
    with torch.no_grad():
        return classification_loss(model, batch)[0].item()


def tiny_params(name):
    """The paper defaults rescaled to the tiny model. Its word vectors are ~30x shorter than
    BERT-base's (a sentence's are ~0.27 long in total, BERT-base's ~8), so the perturbation sizes
    are scaled by 0.03; InfoBERT's bottleneck term grows with the spread of the embedding-layer
    outputs and, on a randomly initialised model whose CE gradient is nearly zero, its gradient
    would dominate Adam's steps, so beta is scaled down too. K = 3 keeps the test quick."""
    defaults = build_method(name).params
    params = {key: 0.03 * defaults[key] for key in ("adv_lr", "adv_init_mag", "adv_max_norm")}
    params["adv_steps"] = 3
    if name == "infobert":
        params.update(beta=2e-5, estimator_hidden=32)
    return params


@pytest.mark.parametrize("name", METHODS)
def test_training_loss_falls(name, model, tokenizer, batch_of, sentences):
    data = batch_of(sentences)                                 # all 40 sentences, one batch
    method = make(name, model, tokenizer, data, **tiny_params(name))
    params = list(model.parameters()) + method.extra_parameters()
    optimizer = torch.optim.Adam(params, lr=2e-3)
    before = clean_loss(model, data)
    estimator = [p.detach().clone() for p in method.extra_parameters()]
    losses = []
    for _ in range(30):
        model.train()
        optimizer.zero_grad()
        losses.append(method.step(model, data).item())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    after = clean_loss(model, data)
    assert after < 0.5 * before, (before, after)
    assert sum(losses[-3:]) < 0.6 * sum(losses[:3]), losses
    for old, new in zip(estimator, method.extra_parameters()):   # InfoBERT's critic is trained
        assert not torch.equal(old, new.detach())


# --------------------------------------------------------------------- method-specific units

def test_tavat_vocabulary_accumulates_final_token_delta(model, tokenizer, batch):
    method = make("tavat", model, tokenizer, batch)
    before = method.vocab.clone()
    method.norm_trace = []
    method.step(model, batch)
    ids = batch["input_ids"][batch["attention_mask"].bool()].unique()
    unseen = torch.ones(before.shape[0], dtype=torch.bool)
    unseen[ids] = False
    assert torch.equal(method.vocab[unseen], before[unseen])
    assert not torch.allclose(method.vocab[ids], before[ids])
    state = method.state_dict()
    fresh = build_method("tavat")
    fresh.load_state_dict(state)
    assert torch.equal(fresh.vocab, method.vocab)


def feature_ranking_reference(grad, cl, ch):
    """InfoBERT's `feature_ranking` for one sentence (grad: (n, d))."""
    n = len(grad)
    order = torch.sort(torch.norm(grad, dim=1), stable=True)[1]
    return sorted(order[i].item() for i in range(math.ceil(n * cl), math.ceil(n * ch)))


def test_anchored_features_match_the_reference_ranking():
    torch.manual_seed(3)
    lengths = [10, 7, 3, 1]
    grad = torch.randn(4, 12, 6)
    mask = torch.zeros(4, 12, 1)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    selected = anchored_features(grad, mask, 0.5, 0.9)
    for i, n in enumerate(lengths):
        assert selected[i].nonzero().flatten().tolist() == feature_ranking_reference(grad[i, :n], 0.5, 0.9)


def infonce_reference(estimator, x, y):
    """InfoBERT's InfoNCE.forward on one chunk, with the explicit tiling of the code."""
    s = y.shape[0]
    x_tile = x.unsqueeze(0).repeat((s, 1, 1))
    y_tile = y.unsqueeze(1).repeat((1, s, 1))
    critic = lambda z: torch.nn.functional.softplus(estimator.second(torch.relu(estimator.first(z))))
    t0 = critic(torch.cat([x, y], dim=-1))
    t1 = critic(torch.cat([x_tile, y_tile], dim=-1))
    return t0.mean() - (t1.logsumexp(dim=1).mean() - math.log(s))


def test_infonce_matches_the_reference_code():
    torch.manual_seed(4)
    estimator = InfoNCE(8, 8, hidden=16)
    x, y = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    valid = torch.tensor([[True] * 5, [True, True, True, False, False]])
    got = estimator(x, y, valid)
    want = (infonce_reference(estimator, x[0], y[0]) + infonce_reference(estimator, x[1, :3], y[1, :3])) / 2
    torch.testing.assert_close(got, want)
    # an empty chunk is ignored and keeps gradients finite
    empty = torch.zeros(1, 5, dtype=torch.bool)
    both = estimator(torch.cat([x[:1], x[1:]]), torch.cat([y[:1], y[1:]]), torch.cat([valid[:1], empty]))
    both.backward()
    torch.testing.assert_close(both, infonce_reference(estimator, x[0], y[0]))
    assert all(torch.isfinite(p.grad).all() for p in estimator.parameters())


def test_information_bottleneck_ignores_padding():
    torch.manual_seed(5)
    hidden = torch.randn(3, 6, 4)
    mask = torch.ones(3, 6, 1)
    mask[:, 4:] = 0
    hidden_same = hidden.clone()
    hidden_same[:, :4] = 1.0                                   # identical real tokens ...
    assert information_bottleneck(hidden_same, mask).item() == 0.0   # ... whatever the padding
    value = information_bottleneck(hidden, mask)
    real = hidden[:, :4].reshape(-1, 4)
    pairwise = 0.5 * (real.unsqueeze(0) - real.unsqueeze(1)).pow(2).sum(-1).mean()
    assert 0.3 * pairwise < value < 3 * pairwise               # a sample of the pairwise mean


def test_infobert_estimator_state_round_trip(model, tokenizer, batch):
    method = make("infobert", model, tokenizer, batch)
    state = method.state_dict()
    fresh = build_method("infobert")
    fresh.load_state_dict(state)                               # before setup: kept until built
    fresh.setup(model, tokenizer, [batch])
    for a, b in zip(method.extra_parameters(), fresh.extra_parameters()):
        assert torch.equal(a, b)


def test_init_delta_is_masked_and_scaled():
    torch.manual_seed(6)
    embeds = torch.zeros(2, 5, 4)
    mask = torch.ones(2, 5, 1)
    mask[1, 2:] = 0
    delta = init_delta(embeds, mask, 0.3, "l2")
    assert torch.all(delta[1, 2:] == 0)
    assert torch.all(example_norm(delta) <= 0.3)
    assert torch.equal(init_delta(embeds, mask, 0.0), torch.zeros_like(embeds))


# ---------------------------------------------------------------------------- configuration

@pytest.mark.parametrize("name,params", [
    ("pgd", {"adv_lr": -1}),
    ("pgd", {"adv_steps": 0}),
    ("freelb", {"adv_steps": 2.5}),
    ("freelb", {"norm_type": "l1"}),
    ("tavat", {"norm_type": "linf"}),
    ("infobert", {"cl": 0.9, "ch": 0.5}),
    ("infobert", {"share_dropout_mask": "yes"}),
    ("pgd", {"epsilon": 0.1}),
])
def test_bad_parameters_name_the_config_key(name, params):
    with pytest.raises(ConfigError, match=f"method_params.{name}"):
        build_method(name, **params)


def test_defaults_and_overrides():
    assert build_method("freelb").describe()["params"]["adv_steps"] == 5
    method = build_method("pgd", adv_steps=3, adv_max_norm=0.1, norm_type="linf")
    assert method.passes_per_step == 4 and method.adv_max_norm == 0.1
    assert build_method("infobert", alpha=0).backward_passes_per_step == 5


@pytest.mark.parametrize("name, passes", [("pgd", 3), ("freelb", 2), ("tavat", 2), ("infobert", 2)])
def test_epoch_log_gives_the_mean_loss_of_every_pass(name, passes, model, tokenizer, batch):
    """metrics.json shows the attack's strength: one mean cross-entropy per pass (PGD: K ascent
    passes + the update pass), equal to the losses the passes saw, and reset after reading."""
    method = make(name, model, tokenizer, batch, adv_steps=2)
    seen = []
    original = method.log_pass

    def spy(index, loss):
        seen.append((index, float(loss.detach())))
        original(index, loss)

    method.log_pass = spy
    for _ in range(2):
        method.step(model, batch)
        model.zero_grad(set_to_none=True)
    log = method.epoch_log()
    assert len(log["adv_pass_loss"]) == passes
    for index in range(passes):
        values = [v for i, v in seen if i == index]
        assert len(values) == 2 and log["adv_pass_loss"][index] == pytest.approx(sum(values) / 2)
    assert method.epoch_log() == {} and FineTune().epoch_log() == {}
