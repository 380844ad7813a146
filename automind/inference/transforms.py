"""Maps between θ and the space z the flows train in, chosen per prior.

- ``BoxToUnconstrained`` (automind priors and other bounded boxes): θ -> u in (0, 1) per
  dimension (linearly, or in log space for log-scale parameters) -> z = logit(u). Samples
  mapped back always lie inside the prior: no rejection, no leakage (the stack notes
  measured under-trained flows leaking 40-96 % of their mass outside a 28-d box).
- ``SupportBijection`` (torch-distribution priors): torch's ``biject_to`` of the prior's
  support: the identity on unbounded coordinates (a Gaussian prior trains on θ itself),
  log on half-bounded ones, logit on intervals.

Both give z (float32, for the estimators), θ back, log |dz/dθ| for densities, and
``scaled_to_z`` (differentiable) from the prior's scale space (log for log-scale
parameters, else θ), where ``Prior.standardise`` is affine.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-6
Z_LIMIT = 30.0   # z of a θ exactly on a bound (logit of 1e-13): finite for the estimators


class BoxToUnconstrained:
    name = "logit of the prior box"
    within_support = True       # every z maps inside the prior

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

    def scaled_to_z(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log |dz/ds|) for scale-space values s, differentiable."""
        unit = ((s - self.low) / self.width).clamp(EPS, 1 - EPS)
        return torch.logit(unit), (-torch.log(unit * (1 - unit)) - torch.log(self.width)).sum(-1)


class SupportBijection:
    """z = T⁻¹(θ) with T = torch's ``biject_to(prior.support)``."""

    within_support = True

    def __init__(self, support):
        self.transform = torch.distributions.biject_to(support)
        identity = isinstance(self.transform, torch.distributions.transforms.IndependentTransform) \
            and self.transform.base_transform == torch.distributions.transforms.identity_transform
        self.name = "θ itself (unbounded prior)" if identity else "bijection of the prior support"

    def to_z(self, theta) -> torch.Tensor:
        z = self.transform.inv(torch.as_tensor(theta).double())
        return torch.nan_to_num(z, posinf=Z_LIMIT, neginf=-Z_LIMIT).float()

    def to_theta(self, z) -> torch.Tensor:
        return self.transform(torch.as_tensor(z).double())

    def log_abs_det_dz_dtheta(self, theta) -> torch.Tensor:
        z, _ = self.scaled_to_z(torch.as_tensor(theta).double())
        return -self.transform.log_abs_det_jacobian(z, torch.as_tensor(theta).double()).reshape(-1)

    def scaled_to_z(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.transform.inv(s)
        z = torch.nan_to_num(z, posinf=Z_LIMIT, neginf=-Z_LIMIT)
        return z, -self.transform.log_abs_det_jacobian(z, s).reshape(-1)


class Identity:
    """z = θ (the estimators z-score it), as sbi's NPE trains; samples outside the prior's
    support are rejected. ``log_scale`` marks automind log-scale parameters, whose scale
    space is log θ."""

    name = "θ itself"
    within_support = False

    def __init__(self, log_scale):
        self.log_scale = torch.as_tensor(np.asarray(log_scale, dtype=bool))

    def to_z(self, theta) -> torch.Tensor:
        return torch.as_tensor(theta).float()

    def to_theta(self, z) -> torch.Tensor:
        return torch.as_tensor(z).double()

    def log_abs_det_dz_dtheta(self, theta) -> torch.Tensor:
        return torch.zeros(torch.as_tensor(theta).shape[0], dtype=torch.float64)

    def scaled_to_z(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.where(self.log_scale, torch.exp(s), s)
        return z, torch.where(self.log_scale, s, torch.zeros_like(s)).sum(-1)


def theta_transform(prior, space: str = "bijection"):
    """The θ <-> z map for a prior (automind ``Prior`` or ``DistributionPrior``):
    ``bijection`` maps the support onto R^d, ``none`` keeps θ (rejection to the support)."""
    from ..prior import Prior

    if space == "none":
        return Identity([getattr(p, "scale", "linear") == "log" for p in prior.parameters])
    if isinstance(prior, Prior):
        return BoxToUnconstrained.for_prior(prior)
    if prior.support is None:   # no declared support: train on θ
        return SupportBijection(torch.distributions.constraints.independent(
            torch.distributions.constraints.real, 1))
    return SupportBijection(prior.support)
