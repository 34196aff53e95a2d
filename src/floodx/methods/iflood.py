"""iFlood (Xie et al., ICLR 2022): flooding per example instead of per batch.

    J~ = (1/n) sum_i ( |l_i - b| + b )

Flooding (eq. 1) floods the batch mean, so an example far below b can still be pushed further
down while others sit above it; iFlood turns each example's gradient around once that example's
own loss is below b. With every l_i on the same side of b the two agree (a test checks both).
"""

from ..errors import ConfigError
from .base import TrainingMethod, per_example_losses
from .flooding import flooded

# flood_level: "flooding" -- the level Flooding's search chose on dev data for the same data set and seed
# (the workflow puts the number in before training: floodx.config.run_spec).
FLOODING_CHOICE = "flooding"


class PerExampleFlood(TrainingMethod):
    """The step iFlood and AdaFlood share: each example's loss flooded at its own level, then averaged."""

    def example_levels(self, batch, losses):
        """The flood level of each example of the batch (a number, or a tensor like `losses`)."""
        raise NotImplementedError

    def per_example_objective(self, losses, levels=None):
        return flooded(losses, self.flood_level if levels is None else levels).mean()

    def step(self, model, batch):
        losses, _ = per_example_losses(model, batch)
        self.per_example_objective(losses, self.example_levels(batch, losses)).backward()
        return losses.mean().detach()      # the training loss J that metrics.json logs, as for Flooding


class IFlood(PerExampleFlood):
    name = "iflood"
    defaults = {"flood_level": None}

    def __init__(self, **params):
        super().__init__(**params)
        if self.flood_level == FLOODING_CHOICE:
            return
        if self.flood_level is None or isinstance(self.flood_level, str) or not float(self.flood_level) > 0:
            raise ConfigError(f"method 'iflood' needs a positive flood_level or \"{FLOODING_CHOICE}\" (Flooding's "
                              f"dev choice) (config key method_params.iflood.flood_level), got {self.flood_level!r}")
        self.flood_level = float(self.flood_level)
        self.params["flood_level"] = self.flood_level

    def setup(self, model, tokenizer, train_loader):
        if self.flood_level == FLOODING_CHOICE:
            raise ConfigError("method 'iflood': flood_level \"flooding\" is resolved by the workflow (run_spec) from "
                              "Flooding's dev choice; a job spec must carry the number")

    def example_levels(self, batch, losses):
        return self.flood_level
