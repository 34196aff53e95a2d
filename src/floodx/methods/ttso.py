"""Training-time temperature scaling: TTSO and TTSO++, as AdvBench4Text (PuReDefence, COLING 2025)
runs them (`run_ttso.py`, `run_ttso_plus.py`; TTSO after Raina et al., 2024).

Cross-entropy on temperature-scaled logits, z_i / T_i, during training only (the model is attacked
and evaluated on its plain logits z_i, as their attack wrapper returns raw logits):

    TTSO:    T_i = T                                      (entropy_weight 0; their run_ttso.sh: T = 10)
    TTSO++:  T_i = T + alpha * H(softmax(z_i))            (their run_ttso_plus.sh: T = 20, alpha = 0.5)

H is the prediction's entropy in nats. As in their code, T_i is not detached: the gradient also
flows through the entropy (their H uses log(p + 1e-12); log_softmax here, the same to ~1e-12). A large
T makes the model grow its logits to reach a low training loss, so its softmax saturates and
score-based attacks see flat probabilities. metrics.json's training loss is the plain cross-entropy
of z_i, the quantity the other methods log.
"""

import torch.nn.functional as F

from ..errors import ConfigError
from .base import TrainingMethod, at_least_fp32, model_inputs


def prediction_entropy(logits):
    """H(softmax(z)) per row, in nats."""
    log_p = F.log_softmax(at_least_fp32(logits), dim=-1)
    return -(log_p.exp() * log_p).sum(dim=-1)


def example_temperatures(logits, temperature, entropy_weight):
    return temperature + entropy_weight * prediction_entropy(logits)


def temperature_scaled_loss(logits, labels, temperature, entropy_weight):
    """Mean cross-entropy of z_i / T_i."""
    scale = example_temperatures(logits, temperature, entropy_weight)
    return F.cross_entropy(at_least_fp32(logits) / scale.unsqueeze(-1), labels)


class TTSO(TrainingMethod):
    name = "ttso"
    defaults = {"temperature": 10.0, "entropy_weight": 0.0}

    def __init__(self, **params):
        super().__init__(**params)
        if not float(self.temperature) > 0 or float(self.entropy_weight) < 0:
            raise ConfigError(f"method '{self.name}': temperature must be > 0 and entropy_weight >= 0 "
                              f"(config key method_params.{self.name}), got {self.temperature!r}, "
                              f"{self.entropy_weight!r}")
        self.temperature, self.entropy_weight = float(self.temperature), float(self.entropy_weight)

    def step(self, model, batch):
        logits = model(**model_inputs(batch)).logits
        temperature_scaled_loss(logits, batch["labels"], self.temperature, self.entropy_weight).backward()
        return F.cross_entropy(at_least_fp32(logits.detach()), batch["labels"])


class TTSOPlusPlus(TTSO):
    name = "ttso_pp"
    defaults = {"temperature": 20.0, "entropy_weight": 0.5}
