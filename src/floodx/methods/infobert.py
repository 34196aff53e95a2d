"""InfoBERT (Wang et al., ICLR 2021): two mutual-information regularisers on top of FreeLB.

Each of the K FreeLB passes (shared dropout masks, as the code's `clear_mask`) minimises

    CE / K  +  beta * IB_upper / K  -  alpha * InfoNCE(local anchored features; CLS) / K

* Information-bottleneck term (the code's `CLUBv2.mi_est_sample` on the embedding-layer outputs
  T_i of the real tokens, "version 3"): the sampled CLUB bound with the variational Gaussian
  q(t | x) = N(t, I) centred on the sample itself, i.e. mean_i 0.5 * ||T_i - T_r(i)||^2 with r(i)
  a random real token of the batch; it has no parameters.
* Anchored-feature term: after the backward of (CE + IB) / K the gradient on delta ranks each
  sentence's tokens by ||g_i|| (word-level sensitivity to the adversarial perturbation); tokens
  whose rank lies in [ceil(n * cl), ceil(n * ch)) are the local anchored features (neither
  useless nor the most fragile). Their embedding-layer outputs (local) and the sentence's final
  [CLS] vector (global) are paired, shuffled, cut into chunks of batch-size pairs, and the
  InfoNCE lower bound of I(local; global) with the code's critic
  F(x, y) = softplus(w2 . relu(W [x; y] + b1) + b2), W: 2d -> 300, is maximised (weight alpha);
  its own backward follows, as in the code (so a pass costs one forward and two backwards).
The critic is created in `setup()`; its parameters are trained by the loop's optimiser, which
must add `method.extra_parameters()` (the InfoBERT code puts them in the model's AdamW group).
Everything runs on the device without host synchronisation; the per-token Python loops of the
code are replaced by masked tensor operations (docs/baselines.md lists the differences).
"""

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .adversarial import EmbeddingAdversary, FreeAdversary, _number
from .base import model_inputs


class InfoNCE(nn.Module):
    """InfoNCE lower bound of I(X; Y) with the InfoBERT critic (hidden width 300)."""

    def __init__(self, x_dim, y_dim, hidden=300):
        super().__init__()
        self.x_dim = x_dim
        self.first = nn.Linear(x_dim + y_dim, hidden)
        self.second = nn.Linear(hidden, 1)

    def scores(self, x, y):
        """T[c, i, j] = F(x[c, j], y[c, i]) for chunks x, y of shape (n, C, dim).

        F's first layer on the concatenation [x; y] is split into W_x x + W_y y, so the C x C
        pairs of a chunk cost C x C additions instead of C x C matrix products."""
        weight = self.first.weight
        a = x @ weight[:, :self.x_dim].T                          # (n, C, H)
        b = y @ weight[:, self.x_dim:].T + self.first.bias        # (n, C, H)
        hidden = torch.relu(a.unsqueeze(1) + b.unsqueeze(2))      # (n, C_i, C_j, H)
        return F.softplus(self.second(hidden).squeeze(-1))        # (n, C, C)

    def forward(self, x, y, valid):
        """Mean over non-empty chunks of T0.mean() - (logsumexp_j T1 .mean() - log n_chunk)."""
        scores = self.scores(x, y)
        count = valid.sum(dim=1)                                  # (n,) pairs in each chunk
        denom = count.clamp(min=1).to(scores.dtype)
        positive = (scores.diagonal(dim1=1, dim2=2) * valid).sum(dim=1) / denom
        # -1e4 instead of -inf keeps the gradients of empty chunks finite (exp(-1e4) == 0)
        masked = scores.masked_fill(~valid.unsqueeze(1), -1e4)
        lse = masked.logsumexp(dim=-1).masked_fill(~valid, 0.0).sum(dim=1) / denom
        bound = positive - (lse - denom.log())
        used = (count > 0).to(scores.dtype)
        return (bound * used).sum() / used.sum().clamp(min=1)


def information_bottleneck(hidden0, mask):
    """CLUBv2 sampled bound of the code: mean over real tokens of 0.5 ||T_i - T_r(i)||^2."""
    flat = hidden0.reshape(-1, hidden0.shape[-1])
    weights = mask.reshape(-1).float()
    # a uniformly random real token for every slot (the code's randint over the unpadded
    # tokens), drawn on the device: real positions first, then index floor(u * count)
    count = weights.sum()
    real_first = (weights == 0).to(torch.uint8).argsort(stable=True)
    pick = (torch.rand(flat.shape[0], device=flat.device) * count).long()
    partner = real_first[torch.minimum(pick, count.long() - 1)]
    spread = 0.5 * (flat - flat[partner]).pow(2).sum(dim=-1)
    return (spread * weights.to(spread.dtype)).sum() / weights.sum().to(spread.dtype)


def anchored_features(grad, mask, low, high):
    """(B, L) bool: tokens whose rank by ||grad_i|| within their sentence is in
    [ceil(n * low), ceil(n * high)) -- the code's `feature_ranking` (n = real tokens)."""
    real = mask.squeeze(-1) > 0
    norms = grad.float().norm(dim=-1).masked_fill(~real, float("inf"))
    rank = norms.argsort(dim=1, stable=True).argsort(dim=1)
    lengths = real.sum(dim=1).double()        # float64 like Python's math.ceil(n * c)
    lo = torch.ceil(lengths * low).unsqueeze(1)
    hi = torch.ceil(lengths * high).unsqueeze(1)
    return (rank >= lo) & (rank < hi) & real


@functools.lru_cache(maxsize=None)
def max_anchored(length, low, high):
    """Most anchored features one sentence of at most `length` tokens can have (a static bound,
    so that the chunks can be sized without reading the selection back to the host)."""
    return max(math.ceil(n * high) - math.ceil(n * low) for n in range(1, length + 1))


def shuffled_chunks(local, global_, selected, chunk, capacity):
    """Selected (local, global) pairs first, in random order, cut into chunks of `chunk` pairs;
    returns x, y of shape (n, chunk, d) and the (n, chunk) validity mask (no host sync). Only the
    first `capacity` slots (>= the number of selected pairs) are kept."""
    dim = local.shape[-1]
    x = local.reshape(-1, dim)
    y = global_.unsqueeze(1).expand_as(local).reshape(-1, dim)
    valid = selected.reshape(-1)
    order = (torch.rand(valid.shape, device=valid.device) + (~valid).float() * 2).argsort()
    order = order[:capacity]
    x, y, valid = x[order], y[order], valid[order]
    pad = (-x.shape[0]) % chunk
    if pad:
        x = torch.cat([x, x.new_zeros(pad, dim)])
        y = torch.cat([y, y.new_zeros(pad, dim)])
        valid = torch.cat([valid, valid.new_zeros(pad)])
    return x.view(-1, chunk, dim), y.view(-1, chunk, dim), valid.view(-1, chunk)


class InfoBERT(FreeAdversary):
    name = "infobert"
    # InfoBERT README / setup.sh and TextDefender's InfoBERT trainer; K = 5 from Flooding-X.
    defaults = {**EmbeddingAdversary.defaults,
                "adv_lr": 0.04, "adv_init_mag": 0.08, "adv_max_norm": 0.0,
                "share_dropout_mask": True,
                "alpha": 5e-3, "beta": 5e-3, "cl": 0.5, "ch": 0.9, "estimator_hidden": 300}

    def __init__(self, **params):
        super().__init__(**params)
        for key in ("alpha", "beta"):
            setattr(self, key, _number(self.name, key, getattr(self, key)))
        self.cl = _number(self.name, "cl", self.cl)
        self.ch = _number(self.name, "ch", self.ch)
        if not self.cl <= self.ch <= 1:
            raise ConfigError(f"method_params.infobert needs 0 <= cl <= ch <= 1, "
                              f"got cl={self.cl}, ch={self.ch}")
        self.estimator_hidden = _number(self.name, "estimator_hidden", self.estimator_hidden,
                                        minimum=1, integer=True)
        self.params.update({key: getattr(self, key) for key in self.params})
        self.backward_passes_per_step = self.adv_steps * (2 if self.alpha > 0 else 1)
        self.estimator = None
        self._pending_state = None

    def setup(self, model, tokenizer, train_loader):
        self.build_estimator(model)

    def build_estimator(self, model):
        dim = model.config.hidden_size
        weight = model.get_input_embeddings().weight
        dtype = weight.dtype if weight.dtype.is_floating_point else torch.float32
        self.estimator = InfoNCE(dim, dim, self.estimator_hidden).to(weight.device, dtype)
        if self._pending_state is not None:
            self.estimator.load_state_dict(self._pending_state)
            self._pending_state = None

    def extra_parameters(self):
        return [] if self.estimator is None else list(self.estimator.parameters())

    def state_dict(self):
        return {} if self.estimator is None else {"estimator": self.estimator.state_dict()}

    def load_state_dict(self, state):
        if "estimator" not in state:
            return
        if self.estimator is None:
            self._pending_state = state["estimator"]
        else:
            self.estimator.load_state_dict(state["estimator"])

    def step(self, model, batch):
        if self.estimator is None:
            self.build_estimator(model)
        # the estimator's gradients belong to this step only (the code zeroes them explicitly)
        for parameter in self.estimator.parameters():
            parameter.grad = None
        self.estimator.train()
        return super().step(model, batch)

    def pass_backward(self, model, batch, inputs_embeds, delta, mask, scale):
        inputs = model_inputs(batch)
        inputs.pop("input_ids")
        outputs = model(**inputs, inputs_embeds=inputs_embeds, output_hidden_states=True)
        loss = F.cross_entropy(outputs.logits, batch["labels"])
        hidden0, last = outputs.hidden_states[0], outputs.hidden_states[-1]
        objective = loss
        if self.beta > 0:
            objective = objective + self.beta * information_bottleneck(hidden0, mask)
        lower = self.alpha > 0
        (objective * scale).backward(retain_graph=lower)
        grad, delta.grad = delta.grad, None
        if lower:
            selected = anchored_features(grad, mask, self.cl, self.ch)
            size, length = hidden0.shape[:2]
            capacity = size * max_anchored(length, self.cl, self.ch)
            x, y, valid = shuffled_chunks(hidden0, last[:, 0], selected, size, capacity)
            regulariser = -self.estimator(x, y, valid)
            (regulariser * (self.alpha * scale)).backward()
        return loss.detach(), grad
