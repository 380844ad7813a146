"""``automind fit``: consistent configurations for a recording, spending simulations where the
target is (probe rounds, a learned region, truncated rounds, a validated consistent set)."""

from .plan import FitSettings
from .run import fit

__all__ = ["FitSettings", "fit"]
