"""What every training method shares: the classification loss and access to word embeddings.

A method decides the forward/backward work of one optimisation step; the loop in
`floodx.training` owns everything else (optimiser, schedule, clipping, checkpoints, metrics).
"""

import torch
import torch.nn.functional as F

from ..errors import ConfigError

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def model_inputs(batch):
    return {key: batch[key] for key in MODEL_INPUTS if key in batch}


def classification_loss(model, batch, inputs_embeds=None):
    """Mean cross-entropy of a batch; with `inputs_embeds` the word embeddings are replaced."""
    inputs = model_inputs(batch)
    if inputs_embeds is not None:
        inputs.pop("input_ids")
        inputs["inputs_embeds"] = inputs_embeds
    logits = model(**inputs).logits
    return F.cross_entropy(logits, batch["labels"]), logits


def at_least_fp32(tensor):
    """bf16/fp16 logits (under autocast) up to fp32 for a loss written by hand; fp32 and fp64 unchanged."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def per_example_losses(model, batch):
    """Cross-entropy of each example of the batch (not averaged), and the logits."""
    logits = model(**model_inputs(batch)).logits
    return F.cross_entropy(logits, batch["labels"], reduction="none"), logits


def word_embeddings(model):
    return model.get_input_embeddings()


def embed(model, batch):
    """Word embeddings of the batch (position and token-type embeddings are added by the model)."""
    return word_embeddings(model)(batch["input_ids"])


class TrainingMethod:
    """Plain fine-tuning: one forward and one backward pass per step."""

    name = "finetune"
    passes_per_step = 1
    defaults: dict = {}

    def __init__(self, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {sorted(unknown)} for method '{self.name}' "
                f"(config key method_params.{self.name}); known: {sorted(self.defaults)}"
            )
        self.params = {**self.defaults, **params}
        for key, value in self.params.items():
            setattr(self, key, value)

    def setup(self, model, tokenizer, train_loader):
        """Called once before training (e.g. to build a perturbation vocabulary)."""

    def extra_parameters(self):
        """Parameters the method owns besides the model's (e.g. an estimator head), trained too."""
        return []

    def state_dict(self):
        """Method state that a resumed run needs (e.g. an accumulated perturbation vocabulary)."""
        return {}

    def load_state_dict(self, state):
        """Inverse of state_dict()."""

    def epoch_log(self):
        """Per-epoch figures the method adds to metrics.json's epoch record; resets them."""
        return {}

    def objective(self, loss):
        """The quantity that is back-propagated, given the mean training loss J."""
        return loss

    def step(self, model, batch):
        loss, _ = classification_loss(model, batch)
        self.objective(loss).backward()
        return loss.detach()

    def describe(self):
        return {"name": self.name, "params": dict(self.params), "passes_per_step": self.passes_per_step}


class FineTune(TrainingMethod):
    name = "finetune"
