"""Shared machinery of the embedding-perturbation baselines (PGD, FreeLB, TAVAT, InfoBERT).

Every baseline perturbs the *word* embeddings of a batch with a tensor delta of shape
(batch, length, hidden); position and token-type embeddings are added by the model on top.
This module holds what the four methods share, so that no method carries its own copy:

* `token_mask`, `example_norm`, `token_norm`: norms per example / per token with padding masked;
* `init_delta`: the FreeLB-style random start inside a ball (zero when the magnitude is 0);
* `ascent_step`: delta + lr * g / ||g|| (the normalised gradient-ascent step of the FreeLB code);
* `project`: back onto the epsilon ball (`max_norm <= 0` means "no bound", as in the papers' code);
* `DropoutSync`: the same dropout masks for all ascent passes of one step (FreeLB section 3.3);
* `EmbeddingAdversary`: hyper-parameter checks and the debug trace of delta norms;
* `FreeAdversary`: the "free" loop of FreeLB, TAVAT and InfoBERT (K passes, parameter gradients
  of every pass accumulated with weight 1/K, delta updated between passes).

Nothing here calls `.item()` or otherwise synchronises with the device inside `step()`.
Hyper-parameters, their sources and every deviation from the reference code: docs/baselines.md.
"""

import math

import torch

from ..errors import ConfigError
from .base import TrainingMethod, classification_loss, embed

NORM_TYPES = ("l2", "linf")
_TINY = 1e-8  # floor of a gradient norm before dividing by it (the reference code's clamp)


# --------------------------------------------------------------------------------------------
# Norms, initialisation, ascent and projection (per example, padding masked)
# --------------------------------------------------------------------------------------------

def token_mask(batch, like):
    """(B, L, 1) mask of real tokens in the dtype/device of `like` (1 = token, 0 = padding)."""
    mask = batch.get("attention_mask")
    if mask is None:
        return torch.ones(like.shape[:2] + (1,), dtype=like.dtype, device=like.device)
    return mask.to(device=like.device, dtype=like.dtype).unsqueeze(-1)


def example_norm(x, norm_type="l2"):
    """(B, 1, 1) norm of each example's (L, d) slice: Frobenius (l2) or max-abs (linf).

    Callers pass masked tensors (padding rows zero), so padding never contributes."""
    flat = x.reshape(x.shape[0], -1).float()
    if norm_type == "l2":
        norm = flat.norm(p=2, dim=1)
    elif norm_type == "linf":
        norm = flat.abs().amax(dim=1)
    else:
        raise ValueError(f"unknown norm type {norm_type!r}")
    return norm.view(-1, 1, 1).to(x.dtype)


def token_norm(x):
    """(B, L, 1) L2 norm of every token's perturbation."""
    return x.float().norm(p=2, dim=-1, keepdim=True).to(x.dtype)


def norm_of(x, norm_type):
    """Per-example norm (`l2`, `linf`; shape (B, 1, 1)) or per-token L2 norm (`token`; (B, L, 1))."""
    return token_norm(x) if norm_type == "token" else example_norm(x, norm_type)


def init_delta(embeds, mask, init_mag, norm_type="l2"):
    """Random start of FreeLB's code: U(-1, 1) * init_mag / sqrt(length * d) (l2) or
    U(-init_mag, init_mag) (linf), zero on padding. `init_mag == 0` gives zeros and draws no
    random numbers (so a zero-size method consumes the RNG exactly like fine-tuning)."""
    if init_mag <= 0:
        return torch.zeros_like(embeds)
    if norm_type == "l2":
        lengths = mask.sum(dim=(1, 2))                        # (B,) real tokens
        scale = init_mag / torch.sqrt(lengths.clamp(min=1) * embeds.shape[-1])
        delta = torch.empty_like(embeds).uniform_(-1, 1) * scale.view(-1, 1, 1)
    else:
        delta = torch.empty_like(embeds).uniform_(-init_mag, init_mag)
    return delta * mask


def ascent_step(delta, grad, lr, mask, norm_type="l2"):
    """One normalised gradient-ascent step: delta + lr * g / ||g||, the norm per example (`l2`,
    `linf`: FreeLB's code, whose l-inf variant divides by the max-abs entry rather than taking
    sign(g)) or per token (`token`: TAVAT's token-level step)."""
    grad = grad * mask
    denom = norm_of(grad, norm_type).clamp(min=_TINY)
    return delta + lr * grad / denom


def project(delta, max_norm, norm_type="l2"):
    """Onto the ball ||delta|| <= max_norm per example; `max_norm <= 0` means unbounded."""
    if max_norm <= 0:
        return delta
    if norm_type == "linf":
        return delta.clamp(-max_norm, max_norm)
    return delta * shrink_factor(example_norm(delta, "l2"), max_norm)


def shrink_factor(norm, max_norm):
    """min(1, max_norm / norm): the factor that rescales an example back onto its ball."""
    return (max_norm / norm.clamp(min=1e-12)).clamp(max=1.0)


class BallPerturbation:
    """One delta per batch inside an (l2 or linf) ball per example: PGD, FreeLB, InfoBERT."""

    def __init__(self, embeds, mask, init_mag, lr, max_norm, norm_type):
        self.mask, self.lr, self.max_norm, self.norm_type = mask, lr, max_norm, norm_type
        self.delta = project(init_delta(embeds, mask, init_mag, norm_type), max_norm, norm_type)

    def total(self):
        return self.delta

    def ascend(self, grad):
        step = ascent_step(self.delta, grad, self.lr, self.mask, self.norm_type)
        self.delta = project(step, self.max_norm, self.norm_type)

    def finish(self):
        """Called once after the last pass of a step (TAVAT updates its vocabulary here)."""


class DropoutSync:
    """Same dropout masks in every pass of one step, by restoring the RNG state before each pass.

    FreeLB (section 3.3 and its `dp_masks` code) and InfoBERT (`clear_mask`) reuse the dropout
    masks of the first ascent pass; restoring the generator reproduces them exactly because every
    pass makes the same random draws in the same order."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.device = device
        self.cpu_state = torch.get_rng_state()
        self.cuda_state = torch.cuda.get_rng_state(device) if self.cuda else None

    def before_pass(self, index):
        if index == 0:
            return
        torch.set_rng_state(self.cpu_state)
        if self.cuda:
            torch.cuda.set_rng_state(self.cuda_state, self.device)


# --------------------------------------------------------------------------------------------
# Method base classes
# --------------------------------------------------------------------------------------------

def _number(name, key, value, minimum=0.0, integer=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ConfigError(
            f"method_params.{name}.{key} must be {kind} >= {minimum}, got {value!r}")
    return int(value) if integer else float(value)


class EmbeddingAdversary(TrainingMethod):
    """Hyper-parameters, their checks and the debug trace shared by the four baselines.

    Debug trace: set `method.norm_trace = []` and every pass appends a dict with the detached
    per-example norm (`"example"`, shape (B,)) and per-token L2 norms (`"token"`, (B, L), zero on
    padding) of the delta the model saw; tests use it to check the norm ball."""

    defaults = {
        "adv_steps": 5,            # K (Flooding-X section 4.3: 5 for every adversarial method)
        "adv_lr": 0.03,            # alpha, step of the normalised gradient ascent
        "adv_init_mag": 0.05,      # magnitude of the random start
        "adv_max_norm": 0.0,       # epsilon; 0 = no bound (the convention of all reference codes)
        "norm_type": "l2",         # l2 | linf
        "share_dropout_mask": False,
    }
    norm_types = NORM_TYPES
    norm_trace = None
    _pass_losses = None          # per-pass running sums of the cross-entropy (device tensors)
    _logged_steps = 0

    def __init__(self, **params):
        super().__init__(**params)
        name = self.name
        self.adv_steps = _number(name, "adv_steps", self.adv_steps, minimum=1, integer=True)
        for key in ("adv_lr", "adv_init_mag", "adv_max_norm"):
            setattr(self, key, _number(name, key, getattr(self, key)))
        if self.norm_type not in self.norm_types:
            raise ConfigError(f"method_params.{name}.norm_type must be one of "
                              f"{list(self.norm_types)}, got {self.norm_type!r}")
        if not isinstance(self.share_dropout_mask, bool):
            raise ConfigError(f"method_params.{name}.share_dropout_mask must be true or false, "
                              f"got {self.share_dropout_mask!r}")
        self.params.update({key: getattr(self, key) for key in self.params})

    backward_passes_per_step = None  # set by subclasses when it differs from passes_per_step

    def describe(self):
        info = super().describe()
        info["backward_passes_per_step"] = self.backward_passes_per_step or self.passes_per_step
        return info

    # -- helpers ---------------------------------------------------------------------------------
    def new_perturbation(self, model, batch, embeds, mask):
        return BallPerturbation(embeds, mask, self.adv_init_mag, self.adv_lr, self.adv_max_norm,
                                self.norm_type)

    def dropout_sync(self, model):
        if not self.share_dropout_mask:
            return None
        return DropoutSync(next(model.parameters()).device)

    def log_pass(self, index, loss):
        """Add pass `index`'s detached cross-entropy to the epoch's sums (no host sync)."""
        if self._pass_losses is None:
            self._pass_losses = []
        if index == len(self._pass_losses):
            self._pass_losses.append(torch.zeros((), dtype=torch.float32, device=loss.device))
        self._pass_losses[index] += loss.detach().float()
        if index == 0:
            self._logged_steps += 1

    def epoch_log(self):
        """`adv_pass_loss`: mean cross-entropy of each pass over the epoch's steps (pass 0 = the
        random start; later passes follow each ascent step), so the attack's strength is visible."""
        if not self._pass_losses:
            return {}
        means = [float(total.item()) / max(1, self._logged_steps) for total in self._pass_losses]
        self._pass_losses, self._logged_steps = None, 0
        return {"adv_pass_loss": means}

    def record(self, delta, mask):
        if self.norm_trace is None:
            return
        delta = delta.detach() * mask
        self.norm_trace.append({
            "example": example_norm(delta, self.norm_type).flatten(),
            "token": token_norm(delta).squeeze(-1),
        })


class FreeAdversary(EmbeddingAdversary):
    """The FreeLB loop, shared by FreeLB, TAVAT and InfoBERT.

    K passes on embeddings + delta_t; each pass back-propagates (its objective) / K, so the
    parameter gradient is the average over the K perturbations; between passes delta takes one
    ascent step (with the gradient of that pass) and is projected. The word embeddings are looked
    up afresh in every pass (as in FreeLB's code), so each backward frees its own graph. Returns
    the mean adversarial cross-entropy of the K passes."""

    def __init__(self, **params):
        super().__init__(**params)
        self.passes_per_step = self.adv_steps

    def pass_backward(self, model, batch, inputs_embeds, delta, mask, scale):
        """Forward, backward of scale * objective; returns (detached CE, gradient on delta)."""
        loss, _ = classification_loss(model, batch, inputs_embeds=inputs_embeds)
        (loss * scale).backward()
        return loss.detach(), delta.grad

    def step(self, model, batch):
        scale = 1.0 / self.adv_steps
        with torch.no_grad():
            first = embed(model, batch)
            mask = token_mask(batch, first)
            perturbation = self.new_perturbation(model, batch, first, mask)
        sync = self.dropout_sync(model)
        total = None
        for index in range(self.adv_steps):
            if sync is not None:
                sync.before_pass(index)
            delta = perturbation.total().detach().requires_grad_()
            self.record(delta, mask)
            loss, grad = self.pass_backward(model, batch, embed(model, batch) + delta, delta,
                                            mask, scale)
            self.log_pass(index, loss)
            total = loss if total is None else total + loss
            if index < self.adv_steps - 1:
                with torch.no_grad():
                    perturbation.ascend(grad)
        with torch.no_grad():
            perturbation.finish()
        return total * scale
