"""Neural posterior estimation on banks or any (θ, x): training, artifacts, diagnostics."""

from .posterior import Posterior, load_posterior
from .train import train

__all__ = ["Posterior", "load_posterior", "train"]
