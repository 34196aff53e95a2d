"""Adversarial label smoothing, ALS (Goibert & Dohmatob, 2019), as AdvBench4Text runs it (their
`run_als.py` uses the authors' `smooth_label` with smoothing_method 'adversarial').

The target moves a share alpha of the label's mass to the class the model finds least likely
(the lowest logit, chosen on detached logits; tied lowest classes share it evenly):

    q_i = (1 - alpha) * onehot(y_i) + alpha * u_i,   u_i uniform over argmin_k z_ik
    J~ = -(1/n) sum_i q_i . log softmax(z_i)

With alpha = 0 this is cross-entropy (a test checks it). On two classes a misclassified example's
least likely class is its label, and its target is onehot(y). metrics.json logs the plain cross-entropy.
"""

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import TrainingMethod, at_least_fp32, model_inputs


def adversarial_targets(logits, labels, alpha):
    with torch.no_grad():
        logits = at_least_fp32(logits.detach())
        lowest = (logits == logits.min(dim=-1, keepdim=True).values).to(logits.dtype)
        uniform_lowest = lowest / lowest.sum(dim=-1, keepdim=True)
        return (1 - alpha) * F.one_hot(labels, logits.shape[-1]).to(logits.dtype) + alpha * uniform_lowest


def adversarial_label_smoothing_loss(logits, labels, alpha):
    targets = adversarial_targets(logits, labels, alpha)
    return -(targets * F.log_softmax(at_least_fp32(logits), dim=-1)).sum(dim=-1).mean()


class AdversarialLabelSmoothing(TrainingMethod):
    name = "als"
    defaults = {"alpha": 0.1}   # AdvBench4Text's run_als.sh

    def __init__(self, **params):
        super().__init__(**params)
        if not 0 <= float(self.alpha) < 1:
            raise ConfigError(f"method 'als': alpha must lie in [0, 1) (config key method_params.als.alpha), "
                              f"got {self.alpha!r}")
        self.alpha = float(self.alpha)

    def step(self, model, batch):
        logits = model(**model_inputs(batch)).logits
        adversarial_label_smoothing_loss(logits, batch["labels"], self.alpha).backward()
        return F.cross_entropy(at_least_fp32(logits.detach()), batch["labels"])
