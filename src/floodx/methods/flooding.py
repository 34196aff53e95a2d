"""Flooding (Ishida et al., 2020), eq. 1 of the paper: J~ = |J - b| + b on each mini-batch loss."""


from ..errors import ConfigError
from .base import TrainingMethod


def flooded(loss, flood_level):
    """|J - b| + b: the same gradient as J above the flood level, its negation below."""
    return (loss - flood_level).abs() + flood_level


class Flooding(TrainingMethod):
    name = "flooding"
    defaults = {"flood_level": None}

    def __init__(self, **params):
        super().__init__(**params)
        if self.flood_level is None or not float(self.flood_level) > 0:
            raise ConfigError(f"method 'flooding' needs a positive flood_level, got {self.flood_level!r}")
        self.flood_level = float(self.flood_level)

    def objective(self, loss):
        return flooded(loss, self.flood_level)
