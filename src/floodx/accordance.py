"""Gradient accordance (Flooding-X, Section 3.2, eq. 11-13) and the probe run that records it.

Definitions (paper, Section 3.2). A batch B_t is split by label into sub-batches B_t^1..B_t^k;
g_t^j is the gradient of the mean training loss (cross-entropy) of B_t^j w.r.t. all trainable
parameters, u_t^j = g_t^j / |g_t^j| its unit vector, C(B_s^i, B_t^j) = u_s^i . u_t^j (eq. 11).

    batch accordance (eq. 12)      S(B_s, B_t) = 1/(k(k-1)) * sum_j sum_{i != j} u_s^i . u_t^j
    sub-epoch accordance (eq. 13)  S_epoch     = 1/(N(N-1)) * sum_{s < t} S(B_s, B_t)

over the N batches of a sub-epoch. Normalisation, as printed in the paper: eq. 13 sums the
N(N-1)/2 unordered pairs s < t but divides by N(N-1), the number of *ordered* pairs. Since
S(B_s, B_t) = S(B_t, B_s), S_epoch is exactly HALF the mean batch accordance over pairs of
distinct batches; its values lie in [-1/2, 1/2]. Only the sign matters to Flooding-X (window.py),
and we keep the paper's constant so that values compare with Figure 3.

Missing classes. If class i is absent from B_s (or class j from B_t) the term C(B_s^i, B_t^j)
does not exist: it contributes 0 and the normalisers stay N(N-1) and k(k-1), as in the paper.
Such terms are counted in `dropped_terms` (out of `total_terms` = N(N-1)/2 * k(k-1)). A
sub-batch whose gradient is exactly zero has no direction; its cosines are taken as 0 and it is
counted in `zero_gradients`. A sub-epoch of fewer than 2 batches has no pair: accordance NaN.

Computation (exact, never stores N gradients). Per class i we keep the running sum of unit
gradients R^i = sum_s u_s^i over the sub-epoch, in flat fp32 buffers of P floats (P = number of
trainable parameters). Because sum_{i<i'} R^i . R^i' covers every pair of batches in both
orders plus each batch with itself,

    sum_{s<t} sum_{i != j} u_s^i . u_t^j = sum_{i<i'} R^i . R^i' - sum_t sum_{i<i' in B_t} u_t^i . u_t^i',

where the last (same-batch) term costs one dot per batch of two classes (see AccordanceSums).
This is the running-sum scheme "sum += u_t^j . sum_{i != j} R^i; R^j += u_t^j" with the dot
products moved to the end of the sub-epoch: the same number, less vector work. Long fp32 dot
products are summed in float64 over 2^16-element chunks (`dot64`): one fp32 dot over 22M
elements is off by ~1e-3 here.

Inside training (`floodx.methods.probe.AccordanceProbe`, method name `accordance_probe`) the sub-batch gradients come
from the training step itself: each class sub-batch is forwarded and its loss, weighted by n_c/n,
back-propagated into a flat gradient buffer; the weighted gradients are summed, so the update is
the full-batch fine-tuning update (loss = sum_c n_c/n * mean_c = the batch mean). Memory beyond
fine-tuning's own gradient: R (k P) + one sub-batch gradient buffer (P), plus for k > 2 the
batch's sum of unit vectors (P): (k+1) P floats for k = 2, (k+2) P for k > 2.
Cost: the k sub-batches together are one forward and one backward over the batch, plus O(P)
vector work per class. One host sync per step (the per-class counts, needed to split the batch).

Command line (the `probe` rule):
    python -m floodx.accordance --spec JSON --data results/data/D --out results/probe/D/seedS --threads N
writes accordance.csv (columns in docs/design.md) in --out, one row per sub-epoch.
"""

import csv
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .config import job_arguments, parse_spec
from .errors import ConfigError, DataError, run_main
from .methods.base import classification_loss
from .names import PROBE_METHOD

CSV_COLUMNS = (
    "sub_epoch", "epoch", "first_step", "last_step", "accordance", "train_loss_mean",
    "train_loss_min", "train_loss_max", "train_losses", "dev_loss", "dev_acc", "test_loss", "dropped_terms",
    "epoch_fraction",
)


# ---------------------------------------------------------------- results
@dataclass
class AccordanceResult:
    """Gradient accordance of one sub-epoch (eq. 13) and how many of its terms exist."""

    accordance: float
    dropped_terms: int
    n_batches: int
    total_terms: int
    zero_gradients: int = 0
    train_losses: list = field(default_factory=list)

    def as_dict(self):
        return asdict(self)


# ---------------------------------------------------------------- flat gradient buffers
def trainable_parameters(model):
    return [p for p in model.parameters() if p.requires_grad]


class FlatGrad:
    """A flat fp32 buffer of P floats whose slices can serve as the parameters' `.grad`.

    While attached, autograd accumulates each parameter's gradient in place into its slice, so
    the whole gradient is one vector without copying (`torch.cat`) anything.
    """

    def __init__(self, params, device):
        self.params = params
        numel = sum(p.numel() for p in params)
        self.flat = torch.zeros(numel, dtype=torch.float32, device=device)
        self.views, offset = [], 0
        for p in params:
            self.views.append(self.flat[offset:offset + p.numel()].view(p.shape))
            offset += p.numel()

    def attach(self):
        for p, view in zip(self.params, self.views):
            p.grad = view

    def zero_and_attach(self):
        self.flat.zero_()
        self.attach()


def check_parameters(params, num_labels):
    if not params:
        raise ConfigError("gradient accordance: the model has no trainable parameters")
    if num_labels is None or int(num_labels) < 2:
        raise ConfigError(f"gradient accordance needs at least 2 classes (num_labels = {num_labels})")
    devices = {p.device for p in params}
    if len(devices) != 1:
        raise ConfigError(f"gradient accordance: parameters on several devices {sorted(map(str, devices))}")
    dtypes = {p.dtype for p in params}
    if dtypes != {torch.float32}:
        raise ConfigError(
            f"gradient accordance needs fp32 parameters (got {sorted(map(str, dtypes))}); "
            "bf16 training uses autocast over fp32 weights")
    return devices.pop()


# ---------------------------------------------------------------- running sums (eq. 11-13)
_CHUNK = 1 << 16


def dot64(a, b):
    """a . b of two flat fp32 vectors, accurate to ~1e-8 relative, as a 0-d float64 tensor.

    One fp32 dot over tens of millions of elements (MKL sdot, torch.linalg.vector_norm on CPU)
    is off by ~1e-3 relative; summing 2^16-element partial dots in float64 is as fast and exact
    enough. On GPUs the reductions are tree-shaped already.
    """
    if a.device.type != "cpu" or a.numel() <= _CHUNK:
        return torch.dot(a, b).double()
    return torch.stack([torch.dot(x, y) for x, y in zip(a.split(_CHUNK), b.split(_CHUNK))]).double().sum()


class AccordanceSums:
    """Eq. 13 over one sub-epoch, exactly, in O(k P) memory and O(P) vector work per class.

    With R^i = sum_s u_s^i (all batches of the sub-epoch) and X_t = sum_{i<i' in B_t} u_t^i . u_t^i'
    (cross-class cosines inside one batch),

        sum_{s<t} sum_{i != j} u_s^i . u_t^j  =  sum_{i<i'} R^i . R^i'  -  sum_t X_t,

    since sum_{i<i'} R^i . R^i' runs over all pairs of batches (s, t), both orders, plus s = t.
    Per class: its norm and R^label += u. X_t: nothing for one class in the batch, one dot for
    two (the caller keeps the first class's gradient intact until the second is added), else
    |Z|^2 with Z = sum of the batch's unit vectors (one more P buffer, allocated only if k > 2).
    """

    def __init__(self, num_labels, numel, device):
        self.k = int(num_labels)
        self.numel = int(numel)
        self.per_class = torch.zeros(self.k, self.numel, dtype=torch.float32, device=device)
        self._z = torch.zeros(self.numel, dtype=torch.float32, device=device) if self.k > 2 else None
        self._within = torch.zeros((), dtype=torch.float64, device=device)
        self._zero = torch.zeros((), dtype=torch.long, device=device)
        self.reset()

    def buffer_floats(self):
        return self.per_class.numel() + (self._z.numel() if self._z is not None else 0)

    def reset(self):
        self.per_class.zero_()
        self._within.zero_()
        self._zero.zero_()
        self.n_batches = 0
        self.seen = [0] * self.k          # batches so far that contained class i
        self.valid_terms = 0
        self._batch = None

    def begin_batch(self, n_classes):
        """Start a batch in which `n_classes` classes are present."""
        if self._batch is not None:
            raise RuntimeError("begin_batch() twice without end_batch()")
        self._batch = {"m": int(n_classes), "labels": [], "first": None, "unit_sq": None}

    def add_class(self, label, grad):
        """Add the gradient (any positive multiple) of class `label`'s sub-batch, a flat fp32 vector.

        In a batch of two classes the first one's `grad` must stay unchanged until the second
        has been added.
        """
        batch = self._batch
        if batch is None:
            raise RuntimeError("add_class() outside begin_batch()/end_batch()")
        if label in batch["labels"] or len(batch["labels"]) >= batch["m"]:
            raise RuntimeError(f"class {label} added twice to a batch, or more classes than announced")
        norm = dot64(grad, grad).sqrt()
        self._zero += norm == 0
        # A zero gradient has no direction: its unit vector is taken as 0 (cosines 0).
        denom = norm.clamp_min(1e-30).float()
        self.per_class[label].addcdiv_(grad, denom)
        m, first = batch["m"], not batch["labels"]
        if m == 2:
            if first:
                batch["first"] = (grad, denom)
            else:
                other, other_denom = batch["first"]
                self._within += dot64(grad, other) / (denom.double() * other_denom.double())
        elif m > 2:
            if first:
                torch.div(grad, denom, out=self._z)
                batch["unit_sq"] = (norm / denom.double()).square()
            else:
                self._z.addcdiv_(grad, denom)
                batch["unit_sq"] = batch["unit_sq"] + (norm / denom.double()).square()
        self.valid_terms += sum(self.seen) - self.seen[label]
        batch["labels"].append(label)

    def end_batch(self):
        batch = self._batch
        if batch is None or len(batch["labels"]) != batch["m"]:
            raise RuntimeError("end_batch() before every announced class was added")
        if batch["m"] > 2:
            self._within += (dot64(self._z, self._z) - batch["unit_sq"]) / 2
        for label in batch["labels"]:
            self.seen[label] += 1
        self._batch = None
        self.n_batches += 1

    def pair_sum(self):
        """sum_{s<t} sum_{i != j} C(B_s^i, B_t^j) as a 0-d float64 tensor."""
        total = -self._within
        for i in range(self.k):
            for j in range(i + 1, self.k):
                if self.seen[i] and self.seen[j]:
                    total = total + dot64(self.per_class[i], self.per_class[j])
        return total

    def result(self, train_losses=()):
        n, k = self.n_batches, self.k
        total_terms = n * (n - 1) // 2 * k * (k - 1)
        if n < 2:
            value = float("nan")
        else:
            value = float(self.pair_sum().item()) / (n * (n - 1) * k * (k - 1))
        return AccordanceResult(
            accordance=value, dropped_terms=total_terms - self.valid_terms, n_batches=n,
            total_terms=total_terms, zero_gradients=int(self._zero.item()),
            train_losses=list(train_losses),
        )


def split_by_class(batch, num_labels):
    """[(label, n_label, sub_batch)] for the labels present in `batch` (one host sync)."""
    labels = batch["labels"]
    n = labels.shape[0]
    if n == 0:
        raise DataError("gradient accordance: empty batch")
    try:
        counts = torch.bincount(labels, minlength=num_labels).tolist()
    except RuntimeError:
        counts = None
    if counts is None or len(counts) > num_labels:
        raise DataError(f"labels outside 0..{num_labels - 1} in a batch: {labels.unique().tolist()}")
    present = [c for c in range(num_labels) if counts[c]]
    if len(present) == 1:
        return [(present[0], n, batch)]
    parts = []
    for c in present:
        mask = labels == c
        sub = {key: (value[mask] if torch.is_tensor(value) and value.dim() and value.shape[0] == n else value)
               for key, value in batch.items()}
        parts.append((c, counts[c], sub))
    return parts


def _to_device(batch, device):
    return {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}


def gradient_accordance(model, batches, num_labels):
    """Gradient accordance (eq. 13) of `batches` at the model's current, fixed parameters.

    Nothing is updated and the parameters' `.grad` are restored afterwards. The model's mode is
    left as it is: call `model.eval()` first for a deterministic value (no dropout).
    """
    params = trainable_parameters(model)
    device = check_parameters(params, num_labels)
    num_labels = int(num_labels)
    sums = AccordanceSums(num_labels, sum(p.numel() for p in params), device)
    buffers = (FlatGrad(params, device), FlatGrad(params, device))
    saved = [p.grad for p in params]
    try:
        with torch.enable_grad():
            for batch in batches:
                batch = _to_device(batch, device)
                parts = split_by_class(batch, num_labels)
                sums.begin_batch(len(parts))
                for index, (label, _, sub) in enumerate(parts):
                    grad = buffers[index % 2]     # two classes: the first stays intact
                    grad.zero_and_attach()
                    loss, _ = classification_loss(model, sub)
                    loss.backward()
                    sums.add_class(label, grad.flat)
                sums.end_batch()
    finally:
        for p, g in zip(params, saved):
            p.grad = g
    return sums.result()


# ---------------------------------------------------------------- the probe run
class ProbeRecorder:
    """Training callback: closes each sub-epoch, evaluates dev and test, keeps the row, and ends
    training `stop_after_sub_epochs` sub-epochs after a confirmed crossing (`floodx.window`'s
    rule, so the probe stops on exactly the crossing the window will use)."""

    def __init__(self, splits=("dev", "test"), stop=None):
        self.splits = splits
        self.stop = dict(stop or {})
        self.method = None
        self._first_step = None

    def on_step_end(self, state):
        method = state.method
        if getattr(method, "name", None) != PROBE_METHOD:
            raise ConfigError(f"the probe run needs method '{PROBE_METHOD}', got '{method.name}'")
        self.method = method
        if self._first_step is None:
            self._first_step = state.global_step
        if not method.sub_epoch_complete:
            return
        result = method.pop_sub_epoch()
        losses = result.train_losses
        dev = state.evaluate("dev") if "dev" in self.splits else {"loss": None, "acc": None}
        row = {
            "sub_epoch": len(method.records) + 1, "epoch": state.epoch,
            "first_step": self._first_step, "last_step": state.global_step,
            "accordance": result.accordance,
            "train_loss_mean": sum(losses) / len(losses),
            "train_loss_min": min(losses), "train_loss_max": max(losses),
            "train_losses": losses,
            "dev_loss": dev["loss"], "dev_acc": dev["acc"],
            "test_loss": state.evaluate("test")["loss"] if "test" in self.splits else None,
            "dropped_terms": result.dropped_terms,
            "epoch_fraction": state.global_step / method.steps_per_epoch if method.steps_per_epoch else None,
        }
        method.records.append(row)
        self._first_step = None
        print(f"probe: sub-epoch {row['sub_epoch']} (epoch {state.epoch}, step {state.global_step}): "
              f"accordance {row['accordance']:+.4f}, train loss {row['train_loss_mean']:.4f}, "
              f"dev loss {dev['loss'] if dev['loss'] is not None else float('nan'):.4f}", flush=True)
        if self.should_stop(method.records):
            print(f"probe: crossing confirmed; stopping after sub-epoch {row['sub_epoch']}", flush=True)
            state.stop = True

    def should_stop(self, rows):
        """A confirmed crossing (configured direction) lies `stop_after_sub_epochs` rows back."""
        from .window import crossing_confirmed_at

        after = self.stop.get("stop_after_sub_epochs")
        if after is None:
            return False
        at = crossing_confirmed_at(rows, self.stop.get("confirm_sub_epochs", 1), self.stop.get("direction"))
        return at is not None and len(rows) - 1 - at >= int(after)


def write_accordance_csv(path, rows):
    """accordance.csv, written atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for row in rows:
                out = {key: row.get(key) for key in CSV_COLUMNS}
                out["train_losses"] = json.dumps(list(row.get("train_losses") or []))
                for key in ("accordance", "train_loss_mean", "train_loss_min", "train_loss_max",
                            "dev_loss", "dev_acc", "test_loss", "epoch_fraction"):
                    value = out[key]
                    out[key] = "" if value is None else repr(float(value))
                writer.writerow(out)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _sub_epoch_batches(spec):
    value = spec.get("sub_epoch_batches", (spec.get("probe") or {}).get("sub_epoch_batches"))
    if value is None:
        raise ConfigError("probe spec has no sub_epoch_batches (config key probe.sub_epoch_batches)")
    return value


def _records_from_checkpoint(out_dir, metrics):
    """Rows of a probe run that had already finished (resumed with nothing left to train)."""
    state_file = Path(out_dir) / metrics["final_checkpoint"] / "trainer_state.pt"
    if not state_file.exists():
        raise DataError(f"{state_file}: missing; delete {out_dir} and run the probe again")
    state = torch.load(state_file, map_location="cpu", weights_only=False)
    return list(state.get("method", {}).get("records", []))


def run_probe(spec, data_dir, out_dir, device=None):
    """Fine-tune with the probe method and write `out_dir/accordance.csv`; returns the rows."""
    from .training import train

    train_spec = dict(spec)
    train_spec["method"] = PROBE_METHOD
    train_spec["method_params"] = {"sub_epoch_batches": _sub_epoch_batches(spec)}
    recorder = ProbeRecorder(stop=spec.get("stop"))
    metrics = train(train_spec, data_dir, out_dir, callbacks=[recorder], device=device)
    if recorder.method is not None:
        rows = recorder.method.records
    else:
        rows = _records_from_checkpoint(out_dir, metrics)
    write_accordance_csv(Path(out_dir) / "accordance.csv", rows)
    return rows


# ---------------------------------------------------------------- command line
def _main(argv=None):
    parser = job_arguments("python -m floodx.accordance", "Gradient-accordance probe run (Flooding-X, eq. 11-13).",
                           "probe folder; accordance.csv is written there")
    args = parser.parse_args(argv)
    spec = parse_spec(args.spec)
    from .devices import select_device

    device = select_device(args.threads)
    rows = run_probe(spec, args.data, args.out, device=device)
    signs = "".join("+" if r["accordance"] > 0 else "-" if r["accordance"] < 0 else "0"
                    for r in rows if not math.isnan(r["accordance"]))
    print(f"probe: {len(rows)} sub-epochs, accordance signs {signs}")


def main(argv=None):
    return run_main(_main, argv)


if __name__ == "__main__":
    main()
