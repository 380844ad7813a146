"""An automind ``Posterior`` as an sbi ``NeuralPosterior`` (``Posterior.to_sbi()``).

sbi's analysis and diagnostics take sbi posteriors: ``sbi.analysis.pairplot`` of its
samples, ``sbi.diagnostics.run_sbc`` / ``run_tarp`` (which call ``sample_batched``) and
expected coverage with ``reduce_fns=posterior.log_prob``. This wrapper gives them ours:
θ and x as tensors in and out, x in raw features (the feature transforms are applied
here), samples restricted by the restriction classifier as ``Posterior.sample`` does,
``log_prob`` unrestricted and -inf outside the prior, ``set_default_x`` and ``map``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sbi.inference.posteriors.base_posterior import NeuralPosterior


class SbiPosterior(NeuralPosterior):
    def __init__(self, posterior, restrict: bool = True):
        self.posterior = posterior
        self.restrict = restrict
        super().__init__(potential_fn=self._potential, device="cpu")
        self.prior = posterior.prior.distribution
        self.potential_fn.prior = self.prior
        self._purpose = "It wraps an automind posterior (automind.inference.Posterior)."

    def _potential(self, theta, x_o):
        """log p(θ | x_o), differentiable in θ; -inf outside the prior."""
        theta = torch.as_tensor(theta).reshape(-1, self.posterior.prior.dim)
        x_t = self.posterior.prepare_x(x_o.reshape(1, -1).numpy())
        lp = self.posterior.log_prob_tensor(theta.double(), x_t)
        inside = torch.as_tensor(self.posterior.prior.inside(theta.detach().numpy()))
        return torch.where(inside, lp, torch.full_like(lp, -math.inf)).float()

    def log_prob(self, theta, x=None, track_gradients: bool = False) -> torch.Tensor:
        x = self._x_else_default_x(x)
        with torch.set_grad_enabled(track_gradients):
            return self._potential(torch.as_tensor(theta), x)

    def sample(self, sample_shape=torch.Size(), x=None, show_progress_bars: bool = False,
               **kwargs) -> torch.Tensor:
        """θ ~ p(θ | x) drawn with torch's global generator (seed it with torch.manual_seed)."""
        x = self._x_else_default_x(x)
        shape = torch.Size(sample_shape)
        n = int(np.prod(shape)) if len(shape) else 1
        draws = self.posterior.sample(n, x.reshape(1, -1).numpy(), seed=None,
                                      restrict=self.restrict)
        return torch.as_tensor(draws, dtype=torch.float32).reshape(*shape, -1)

    def sample_batched(self, sample_shape, x, max_sampling_batch_size: int = 10_000,
                       show_progress_bars: bool = False, **kwargs) -> torch.Tensor:
        """Samples (*sample_shape, len(x), d): one set per row of x."""
        x = torch.as_tensor(x).reshape(len(x), -1)
        return torch.stack([self.sample(sample_shape, x=row) for row in x], dim=-2)
