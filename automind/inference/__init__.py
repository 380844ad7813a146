"""Neural posterior estimation on banks or any (θ, x): training, artifacts, diagnostics."""

from .config import TrainingConfig
from .posterior import Posterior, load_posterior
from .train import train

__all__ = ["Posterior", "TrainingConfig", "load_posterior", "train"]
