"""iFlood (Xie et al., ICLR 2022): flooding per example instead of per batch.

    J~ = (1/n) sum_i ( |l_i - b| + b )

Flooding (eq. 1) floods the batch mean, so an example far below b can still be pushed further
down while others sit above it; iFlood turns each example's gradient around once that example's
own loss is below b. With every l_i on the same side of b the two agree (a test checks both).
"""

from ..errors import ConfigError
from .base import TrainingMethod, per_example_losses
from .flooding import flooded


class IFlood(TrainingMethod):
    name = "iflood"
    defaults = {"flood_level": None}

    def __init__(self, **params):
        super().__init__(**params)
        if self.flood_level is None or not float(self.flood_level) > 0:
            raise ConfigError(f"method 'iflood' needs a positive flood_level (config key "
                              f"method_params.iflood.flood_level), got {self.flood_level!r}")
        self.flood_level = float(self.flood_level)
        self.params["flood_level"] = self.flood_level

    def per_example_objective(self, losses):
        return flooded(losses, self.flood_level).mean()

    def step(self, model, batch):
        losses, _ = per_example_losses(model, batch)
        self.per_example_objective(losses).backward()
        return losses.mean().detach()      # the training loss J that metrics.json logs, as for Flooding
