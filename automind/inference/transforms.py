"""A bijection between the prior's box and R^d, so flows train and sample unconstrained.

θ -> u in (0, 1) per dimension (linearly, or in log space for log-scale parameters) ->
z = logit(u). Samples mapped back always lie inside the prior: no rejection, no leakage
(the stack notes measured under-trained flows leaking 40-96 % of their mass outside a
28-d box).
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-6


class BoxToUnconstrained:
    def __init__(self, low, high, log_scale):
        self.log_scale = torch.as_tensor(np.asarray(log_scale, dtype=bool))
        low = torch.as_tensor(np.asarray(low, dtype=np.float64))
        high = torch.as_tensor(np.asarray(high, dtype=np.float64))
        self.low = torch.where(self.log_scale, torch.log(low), low)
        self.width = torch.where(self.log_scale, torch.log(high), high) - self.low

    @classmethod
    def for_prior(cls, prior) -> "BoxToUnconstrained":
        return cls(prior.low, prior.high, [p.scale == "log" for p in prior.parameters])

    def _scaled(self, theta: torch.Tensor) -> torch.Tensor:
        theta = theta.double()
        return torch.where(self.log_scale, torch.log(theta.clamp_min(1e-300)), theta)

    def to_z(self, theta) -> torch.Tensor:
        u = ((self._scaled(torch.as_tensor(theta)) - self.low) / self.width).clamp(EPS, 1 - EPS)
        return torch.logit(u).float()

    def to_theta(self, z) -> torch.Tensor:
        u = torch.sigmoid(torch.as_tensor(z).double())
        value = self.low + u * self.width
        return torch.where(self.log_scale, torch.exp(value), value)

    def log_abs_det_dz_dtheta(self, theta) -> torch.Tensor:
        """log |dz/dθ| summed over dimensions (the density correction p(θ) = q(z) |dz/dθ|)."""
        theta = torch.as_tensor(theta).double()
        u = ((self._scaled(theta) - self.low) / self.width).clamp(EPS, 1 - EPS)
        per_dim = -torch.log(u * (1 - u)) - torch.log(self.width)
        per_dim = per_dim - torch.where(self.log_scale, torch.log(theta.clamp_min(1e-300)),
                                        torch.zeros_like(theta))
        return per_dim.sum(-1)
