"""The accordance probe as a training method: fine-tuning that measures gradient accordance.

The maths (eq. 11-13, running sums) is `floodx.accordance`; the probe run that records it per
sub-epoch is `floodx.accordance.run_probe`.
"""

import torch

from ..accordance import AccordanceSums, FlatGrad, check_parameters, split_by_class, trainable_parameters
from ..errors import ConfigError
from ..names import PROBE_METHOD
from .base import TrainingMethod, classification_loss


class AccordanceProbe(TrainingMethod):
    """Fine-tuning whose step also measures gradient accordance (eq. 11-13) on the fly.

    Each class sub-batch of the step is forwarded and back-propagated with weight n_c/n into a
    flat buffer; the sub-batch gradients feed the running sums and add up to the full-batch
    gradient, left in `.grad` for the loop's clipping and optimiser step. One pass over the
    batch's examples, hence `passes_per_step = 1`.

    With `sub_epoch_batches`, `sub_epoch_complete` turns True after that many batches or at the
    end of an epoch (known from the loader given to `setup`); `pop_sub_epoch()` returns the
    sub-epoch's `AccordanceResult` and starts the next one. `records` (rows written by the probe
    run) travel in `state_dict()`, so a resumed probe run keeps the rows of its earlier epochs.
    """

    name = PROBE_METHOD
    passes_per_step = 1
    defaults = {"num_labels": None, "sub_epoch_batches": None}

    def __init__(self, **params):
        super().__init__(**params)
        if self.sub_epoch_batches is not None:
            if int(self.sub_epoch_batches) != self.sub_epoch_batches or int(self.sub_epoch_batches) < 2:
                raise ConfigError(
                    f"probe.sub_epoch_batches must be an integer >= 2, got {self.sub_epoch_batches!r}")
            self.sub_epoch_batches = int(self.sub_epoch_batches)
        self.steps_per_epoch = None
        self.records = []
        self.sub_epoch_complete = False
        self._sums = None
        self._losses = []
        self._in_epoch = 0
        self._in_sub_epoch = 0

    # -- set-up
    def setup(self, model, tokenizer, train_loader):
        try:
            self.steps_per_epoch = len(train_loader)
        except TypeError:
            self.steps_per_epoch = None
        self._ensure_buffers(model)

    def _ensure_buffers(self, model):
        if self._sums is not None:
            return
        k = self.num_labels if self.num_labels is not None else getattr(model.config, "num_labels", None)
        params = trainable_parameters(model)
        device = check_parameters(params, k)
        self.num_labels = int(k)
        self._params = params
        self._numel = sum(p.numel() for p in params)
        self._sums = AccordanceSums(self.num_labels, self._numel, device)
        self._grad = FlatGrad(params, device)      # the step's gradient (fine-tuning has it too)
        self._work = FlatGrad(params, device)      # one sub-batch's gradient

    def extra_floats(self):
        """Floats this method allocates beyond fine-tuning's own gradient: (k+1) P, (k+2) P for k > 2."""
        return self._sums.buffer_floats() + self._work.flat.numel()

    def parameter_count(self):
        return self._numel

    # -- one step
    def step(self, model, batch):
        self._ensure_buffers(model)
        parts = split_by_class(batch, self.num_labels)
        n = batch["labels"].shape[0]
        sums = self._sums
        total = None
        sums.begin_batch(len(parts))
        for index, (label, count, sub) in enumerate(parts):
            buffer = self._grad if index == 0 else self._work
            buffer.zero_and_attach()
            loss, _ = classification_loss(model, sub)
            weight = count / n
            (self.objective(loss) * weight).backward()
            sums.add_class(label, buffer.flat)
            if index:
                self._grad.flat.add_(self._work.flat)
            part = loss.detach().float() * weight
            total = part if total is None else total + part
        self._grad.attach()
        sums.end_batch()
        self._losses.append(total)
        self._in_epoch += 1
        self._in_sub_epoch += 1
        end_of_epoch = self.steps_per_epoch is not None and self._in_epoch >= self.steps_per_epoch
        if end_of_epoch:
            self._in_epoch = 0
        if self.sub_epoch_batches and (self._in_sub_epoch >= self.sub_epoch_batches or end_of_epoch):
            self.sub_epoch_complete = True
        return total

    def pop_sub_epoch(self):
        """The accordance of the batches since the last pop (with their losses); resets the sums."""
        if self._sums is None:
            raise RuntimeError("pop_sub_epoch() before any step")
        losses = torch.stack(self._losses).cpu().tolist() if self._losses else []
        result = self._sums.result(losses)
        self._sums.reset()
        self._losses = []
        self._in_sub_epoch = 0
        self.sub_epoch_complete = False
        return result

    def state_dict(self):
        return {"records": list(self.records)}

    def load_state_dict(self, state):
        self.records = list(state.get("records", []))
