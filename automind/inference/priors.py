"""Any prior sbi accepts, as inference uses it.

``as_prior`` returns an automind ``Prior`` unchanged and wraps everything else in a
``DistributionPrior``: sbi's ``BoxUniform``, torch ``MultivariateNormal``, ``Independent``
(e.g. of ``Normal`` or ``Uniform``), sbi's ``MultipleIndependent``, any other torch
distribution, and what sbi's ``process_prior`` accepts (lists of distributions, scipy
distributions). Both kinds offer what training, sampling and diagnostics need: names,
support bounds (infinite where unbounded), validation, seeded sampling, log_prob, moments
and standardisation.

Artifacts store priors as data, never pickles: ``describe`` writes the supported families
(``BoxUniform``, ``Independent``, ``MultipleIndependent`` and the torch families in
``FAMILIES``) as their class name and parameter values, and ``prior_from_dict`` rebuilds
them from that whitelist only. Other priors train and sample in memory, but saving a
posterior with one is refused with a message naming the family.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.distributions import constraints

from ..errors import UserError

#: torch distribution families recorded as {"family": name, "parameters": {...}}; the
#: values are the constructor arguments (for MultivariateNormal the covariance matrix)
FAMILIES = {"Normal": ("loc", "scale"), "Uniform": ("low", "high"), "LogNormal": ("loc", "scale"),
            "Gamma": ("concentration", "rate"), "Beta": ("concentration1", "concentration0"),
            "Exponential": ("rate",), "HalfNormal": ("scale",), "Laplace": ("loc", "scale"),
            "MultivariateNormal": ("loc", "covariance_matrix")}
SUPPORTED = "BoxUniform, MultivariateNormal, Independent, MultipleIndependent, " + \
    ", ".join(sorted(set(FAMILIES) - {"MultivariateNormal"}))


def describe(dist) -> dict | None:
    """A torch distribution as plain data, or None when its family is not supported."""
    from sbi.utils import BoxUniform, MultipleIndependent

    name = type(dist).__name__
    if isinstance(dist, BoxUniform):
        base = dist.base_dist
        return {"family": "BoxUniform", "low": base.low.tolist(), "high": base.high.tolist()}
    if isinstance(dist, MultipleIndependent):
        parts = [describe(d) for d in dist.dists]
        return None if None in parts else {"family": "MultipleIndependent", "components": parts}
    if type(dist) is torch.distributions.Independent:
        base = describe(dist.base_dist)
        return None if base is None else {
            "family": "Independent", "reinterpreted_batch_ndims": dist.reinterpreted_batch_ndims,
            "base": base}
    if name in FAMILIES and type(dist) is getattr(torch.distributions, name):
        return {"family": name, "parameters": {arg: getattr(dist, arg).tolist()
                                               for arg in FAMILIES[name]}}
    return None


def _unsupported(dist) -> str:
    """The name of the first part of ``dist`` that ``describe`` cannot write."""
    for part in getattr(dist, "dists", None) or [getattr(dist, "base_dist", None)]:
        if part is not None and describe(part) is None:
            return _unsupported(part)
    return type(dist).__name__


def build(data: dict):
    """The distribution ``describe`` wrote (whitelisted families only)."""
    from sbi.utils import BoxUniform, MultipleIndependent

    family = data.get("family")
    tensor = lambda v: torch.as_tensor(v, dtype=torch.float32)  # noqa: E731
    if family == "BoxUniform":
        return BoxUniform(tensor(data["low"]), tensor(data["high"]))
    if family == "MultipleIndependent":
        return MultipleIndependent([build(part) for part in data["components"]])
    if family == "Independent":
        return torch.distributions.Independent(build(data["base"]),
                                               int(data["reinterpreted_batch_ndims"]))
    if family in FAMILIES:
        return getattr(torch.distributions, family)(
            **{arg: tensor(data["parameters"][arg]) for arg in FAMILIES[family]})
    raise UserError(f"unknown prior family {family!r} in the artifact; supported: {SUPPORTED}")


def _bounds(constraint, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (low, high) of a support constraint; ±inf where unbounded."""
    if isinstance(constraint, constraints.independent):
        return _bounds(constraint.base_constraint, dim)
    if isinstance(constraint, constraints.cat):
        parts = [_bounds(c, n) for c, n in zip(constraint.cseq, constraint.lengths)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    low = getattr(constraint, "lower_bound", -math.inf)
    high = getattr(constraint, "upper_bound", math.inf)
    return (np.broadcast_to(np.asarray(torch.as_tensor(low), float), (dim,)).copy(),
            np.broadcast_to(np.asarray(torch.as_tensor(high), float), (dim,)).copy())


class DistributionPrior:
    """A torch distribution over θ (n, d) with the interface inference uses."""

    def __init__(self, distribution, names: list[str] | None = None):
        self.distribution = distribution
        shape = distribution.event_shape
        if len(shape) != 1 or distribution.batch_shape not in (torch.Size(), torch.Size([1])):
            raise UserError(f"the prior must be a distribution over vectors (event shape (d,)); "
                            f"{type(distribution).__name__} has batch shape "
                            f"{tuple(distribution.batch_shape)} and event shape {tuple(shape)} "
                            "(wrap independent 1-d distributions in torch Independent)")
        self.dim = int(shape[0])
        self.names = list(names) if names else [f"theta_{k}" for k in range(self.dim)]
        self.name = type(distribution).__name__
        self.description = ""
        self.constants = []
        try:
            self.support = distribution.support
            self.low, self.high = _bounds(self.support, self.dim)
        except NotImplementedError:
            self.support = None
            self.low, self.high = np.full(self.dim, -np.inf), np.full(self.dim, np.inf)

    @property
    def parameters(self) -> list:
        from ..prior import Parameter

        return [Parameter(n, float(lo), float(hi)) for n, lo, hi in zip(self.names, self.low, self.high)]

    @property
    def bounded(self) -> bool:
        return bool(np.isfinite(self.low).all() and np.isfinite(self.high).all())

    def log_prob(self, theta) -> np.ndarray:
        t = torch.as_tensor(np.atleast_2d(np.asarray(theta, dtype=float)), dtype=torch.float32)
        inside = self.inside(t.numpy())
        out = np.full(len(t), -np.inf)
        if inside.any():
            out[inside] = self.distribution.log_prob(t[torch.as_tensor(inside)]).double().numpy()
        return out

    def inside(self, theta) -> np.ndarray:
        """Rows of θ in the prior's support."""
        t = torch.as_tensor(np.atleast_2d(np.asarray(theta, dtype=float)), dtype=torch.float32)
        if self.support is not None:
            ok = self.support.check(t)
            return (ok if ok.dim() == 1 else ok.all(-1)).numpy()
        with np.errstate(invalid="ignore"):
            return np.isfinite(self.distribution.log_prob(t).numpy())

    def validate(self, theta) -> np.ndarray:
        """θ as a float array (n, dim); a UserError if it is not a valid θ."""
        arr = np.asarray(theta, dtype=float)
        arr = arr[None, :] if arr.ndim == 1 else arr
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise UserError(f"θ for this {self.name} prior must have {self.dim} values; got "
                            f"shape {np.shape(theta)}")
        if not np.isfinite(arr).all():
            raise UserError("θ contains NaN or infinite values")
        outside = ~self.inside(arr)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise UserError(f"θ[{row}] = {np.array2string(arr[row], precision=4)} is outside "
                            f"the support of the {self.name} prior")
        return arr

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        with torch.random.fork_rng():
            if seed is not None:
                torch.manual_seed(seed)
            return self.distribution.sample((n,)).reshape(n, self.dim).double().numpy()

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of each parameter (the prior's own, else from 20,000 seeded draws)."""
        try:
            mean = self.distribution.mean.reshape(-1).double().numpy()
            sd = self.distribution.stddev.reshape(-1).double().numpy()
            if np.isfinite(mean).all() and np.isfinite(sd).all():
                return mean, sd
        except (NotImplementedError, AttributeError):
            pass
        draws = self.sample(20000, seed=0)
        return draws.mean(0), draws.std(0)

    def standardise(self, theta) -> np.ndarray:
        mean, sd = self._moments()
        return (np.asarray(theta, dtype=float) - mean) / sd

    def destandardise(self, u) -> np.ndarray:
        mean, sd = self._moments()
        return np.asarray(u, dtype=float) * sd + mean

    def to_dict(self) -> dict:
        """The prior as data for artifacts; a UserError for families not stored as data."""
        data = describe(self.distribution)
        if data is None:
            family = _unsupported(self.distribution)
            raise UserError(f"a posterior with a {family} prior cannot be saved: artifacts "
                            f"store priors as data, and supported families are {SUPPORTED}")
        return {"name": self.name, "names": self.names, "distribution": data}


def as_prior(prior):
    """An automind ``Prior`` or a ``DistributionPrior`` for anything sbi accepts as a prior."""
    from ..prior import Prior

    if isinstance(prior, (Prior, DistributionPrior)):
        return prior
    if isinstance(prior, torch.distributions.Distribution):
        return DistributionPrior(prior)
    if isinstance(prior, (str, bytes, dict, int, float)) or prior is None:
        raise UserError(f"cannot use a {type(prior).__name__} as a prior; pass an automind "
                        f"Prior or a torch distribution ({SUPPORTED})")
    try:
        from sbi.utils.user_input_checks import process_prior

        processed, _, _ = process_prior(prior)
    except Exception as err:  # sbi rejects it: say what we accept
        raise UserError(f"cannot use a {type(prior).__name__} as a prior ({err}); pass an "
                        f"automind Prior or a torch distribution ({SUPPORTED})") from None
    return DistributionPrior(processed)


def prior_from_dict(data: dict, source: str):
    """The prior recorded in an artifact (an automind prior spec or a distribution)."""
    from ..prior import Prior

    if "distribution" in data:
        try:
            return DistributionPrior(build(data["distribution"]), data.get("names"))
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{source}: the recorded prior is malformed ({err})") from None
    return Prior.from_dict(data, source=source)
