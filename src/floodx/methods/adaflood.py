"""AdaFlood (Bae et al., TMLR 2024; code BorealisAI/adaflood): a flood level per training example.

    theta_i = -log((1 - gamma) * exp(-l_i^aux) + gamma)        J~ = (1/n) sum_i ( |l_i - theta_i| + theta_i )

l_i^aux is example i's cross-entropy under an auxiliary model that did not train on it (the held-out
fold of `floodx.auxiliary`); theta_i is the loss of the auxiliary prediction corrected towards the
label, (1 - gamma) * p_aux + gamma * onehot(y). An example the auxiliary model finds easy gets a low
level, a hard (or mislabelled) one a high level. gamma = 1 gives theta = 0, i.e. cross-entropy;
gamma = 0 floods every example at its auxiliary loss. Defaults: gamma 0.5 (their adaflood_cls.yaml).
"""

import math

import torch

from ..errors import ConfigError, DataError
from ..files import read_json
from .iflood import PerExampleFlood


def adaflood_levels(aux_losses, gamma):
    """theta_i from auxiliary losses (a tensor)."""
    return -torch.log((1 - gamma) * torch.exp(-aux_losses) + gamma)


class AdaFlood(PerExampleFlood):
    name = "adaflood"
    # `aux_losses`: the held-out losses file, filled in by the workflow (floodx.config.run_spec), not by users.
    defaults = {"gamma": 0.5, "folds": 2, "aux_losses": None}
    needs_example_ids = True      # the training batches carry each example's idx, to look up theta_i

    def __init__(self, **params):
        super().__init__(**params)
        if not 0 <= float(self.gamma) <= 1:
            raise ConfigError(f"method 'adaflood': gamma must lie in [0, 1] (config key method_params.adaflood.gamma), "
                              f"got {self.gamma!r}")
        if not isinstance(self.folds, int) or isinstance(self.folds, bool) or self.folds < 2:
            raise ConfigError(f"method 'adaflood': folds must be an integer >= 2 (config key "
                              f"method_params.adaflood.folds), got {self.folds!r}")
        self.gamma = float(self.gamma)
        self.levels = None

    def setup(self, model, tokenizer, train_loader):
        if not self.aux_losses:
            raise ConfigError("method 'adaflood' needs the auxiliary losses (method_params.adaflood.aux_losses), "
                              "which the workflow's adaflood_losses rule writes")
        losses = {int(idx): float(loss) for idx, loss in read_json(self.aux_losses)["losses"].items()}
        size = max(losses) + 1
        table = torch.full((size,), math.nan, dtype=torch.float64)
        table[list(losses)] = torch.tensor(list(losses.values()), dtype=torch.float64)
        self.levels = adaflood_levels(table, self.gamma)
        missing = [int(i) for batch in train_loader for i in batch["idx"].tolist()
                   if i >= size or math.isnan(float(self.levels[i]))]
        if missing:
            raise DataError(f"{self.aux_losses}: no auxiliary loss for training example(s) idx {missing[:5]}"
                            f"{' ...' if len(missing) > 5 else ''}")

    def example_levels(self, batch, losses):
        if self.levels.device != losses.device:      # once: the table moves to the training device
            self.levels = self.levels.to(losses.device)
        return self.levels[batch["idx"]].to(losses.dtype)
