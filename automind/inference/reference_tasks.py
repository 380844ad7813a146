"""Standard SBI benchmark tasks with reference posteriors computed here (no downloads).

The three tasks of sbibm (Lueckmann et al. 2021) that ``benchmarks/estimators.py`` scores
estimators on, with the same priors and simulators:

- ``gaussian_linear_uniform``: θ ~ U(-1, 1)^10, x ~ N(θ, 0.1 I). The posterior is
  N(x_o, 0.1 I) truncated to the box: exact samples by rejection.
- ``two_moons``: θ ~ U(-1, 1)^2, a ~ U(-π/2, π/2), r ~ N(0.1, 0.01²),
  x = (r cos a + 0.25, r sin a) + (-|θ0 + θ1| / √2, (θ1 - θ0) / √2). The map
  g(θ) = (-|θ0 + θ1| / √2, (θ1 - θ0) / √2) is two-to-one with |det ∂g/∂θ| = 1 on both
  branches, so with a uniform prior p(θ | x_o) ∝ p_noise(x_o - g(θ)) on the box: exact
  samples draw the noise p, solve x_o - p = g(θ) on a random branch, and reject θ outside
  the box (or noise for which no θ exists).
- ``slcp``: θ ~ U(-3, 3)^5, x = 4 draws of a 2-d Gaussian with mean (θ0, θ1), sds θ2², θ3²
  and correlation tanh(θ4). The likelihood is analytic; the posterior has four modes
  related by the signs of θ2 and θ3 (it depends on them only through θ2², θ3²). Reference
  samples: sbi's vectorised slice sampler on the orthant θ2, θ3 > 0 (unimodal there: the
  Gaussian likelihood in (mean, sds, correlation) has one maximum), chains started from
  sampling-importance-resampling of prior draws, and then a random sign for θ2 and θ3 each,
  which balances the four modes exactly (a chain left alone rarely crosses between them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

TASKS = ("gaussian_linear_uniform", "two_moons", "slcp")


@dataclass(frozen=True)
class Task:
    name: str
    low: np.ndarray                       # prior box (uniform priors, as in sbibm)
    high: np.ndarray
    simulate: Callable                    # (θ (n, d), rng) -> x (n, dx)
    reference: Callable                   # (x_o (dx,), n, seed) -> exact posterior samples

    @property
    def prior(self):
        from sbi.utils import BoxUniform

        return BoxUniform(torch.as_tensor(self.low, dtype=torch.float32),
                          torch.as_tensor(self.high, dtype=torch.float32))

    def sample_prior(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=(n, len(self.low)))


# ---- gaussian_linear_uniform -----------------------------------------------------------------
GLU_DIM, GLU_VARIANCE = 10, 0.1


def _glu_simulate(theta, rng):
    return theta + math.sqrt(GLU_VARIANCE) * rng.standard_normal(theta.shape)


def _glu_reference(x_o, n, seed):
    rng = np.random.default_rng(seed)
    out = []
    while sum(len(o) for o in out) < n:
        draw = np.asarray(x_o) + math.sqrt(GLU_VARIANCE) * rng.standard_normal((4 * n, GLU_DIM))
        out.append(draw[(np.abs(draw) <= 1).all(1)])
    return np.concatenate(out)[:n]


# ---- two_moons ------------------------------------------------------------------------------
def _moons_noise(n, rng):
    a = rng.uniform(-math.pi / 2, math.pi / 2, n)
    r = 0.1 + 0.01 * rng.standard_normal(n)
    return np.column_stack([r * np.cos(a) + 0.25, r * np.sin(a)])


def _moons_g(theta):
    return np.column_stack([-np.abs(theta[:, 0] + theta[:, 1]) / math.sqrt(2),
                            (theta[:, 1] - theta[:, 0]) / math.sqrt(2)])


def _moons_simulate(theta, rng):
    return _moons_noise(len(theta), rng) + _moons_g(theta)


def _moons_reference(x_o, n, seed):
    rng = np.random.default_rng(seed)
    out = []
    while sum(len(o) for o in out) < n:
        q = np.asarray(x_o) - _moons_noise(4 * n, rng)        # = g(θ)
        total = -math.sqrt(2) * q[:, 0] * rng.choice([-1.0, 1.0], len(q))   # θ0 + θ1, either branch
        diff = math.sqrt(2) * q[:, 1]                                          # θ1 - θ0
        theta = np.column_stack([(total - diff) / 2, (total + diff) / 2])
        keep = (q[:, 0] <= 0) & (np.abs(theta) <= 1).all(1)
        out.append(theta[keep])
    return np.concatenate(out)[:n]


def moons_log_likelihood(theta, x_o) -> np.ndarray:
    """log p(x_o | θ) of two_moons (for checking the reference sampler): the noise
    p = x_o - g(θ) has density N(r; 0.1, 0.01²) / (π r) at radius r around (0.25, 0) on
    the right half-plane (polar coordinates, a uniform over half a turn)."""
    d = np.asarray(x_o) - _moons_g(np.atleast_2d(theta)) - np.array([0.25, 0.0])
    r = np.hypot(d[:, 0], d[:, 1])
    log_r = -0.5 * ((r - 0.1) / 0.01) ** 2 - math.log(0.01 * math.sqrt(2 * math.pi))
    with np.errstate(divide="ignore"):
        return np.where(d[:, 0] > 0, log_r - np.log(math.pi * r), -np.inf)


# ---- slcp -----------------------------------------------------------------------------------
SLCP_DRAWS = 4


def _slcp_moments(theta):
    theta = np.atleast_2d(theta)
    s1, s2, rho = theta[:, 2] ** 2, theta[:, 3] ** 2, np.tanh(theta[:, 4])
    return theta[:, :2], s1, s2, rho


def _slcp_simulate(theta, rng):
    mean, s1, s2, rho = _slcp_moments(theta)
    e = rng.standard_normal((len(theta), SLCP_DRAWS, 2))
    a = s1[:, None] * e[..., 0]
    b = s2[:, None] * (rho[:, None] * e[..., 0] + np.sqrt(1 - rho[:, None] ** 2) * e[..., 1])
    return (mean[:, None, :] + np.stack([a, b], -1)).reshape(len(theta), 2 * SLCP_DRAWS)


def slcp_log_likelihood(theta, x_o) -> np.ndarray:
    """log p(x_o | θ) of slcp: four independent bivariate normal draws."""
    mean, s1, s2, rho = _slcp_moments(theta)
    pts = np.asarray(x_o, dtype=float).reshape(SLCP_DRAWS, 2)
    one_minus = 1 - rho**2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        u = (pts[None, :, 0] - mean[:, None, 0]) / s1[:, None]
        v = (pts[None, :, 1] - mean[:, None, 1]) / s2[:, None]
        quad = (u**2 - 2 * rho[:, None] * u * v + v**2) / one_minus[:, None]
        per = -0.5 * quad - np.log(2 * math.pi * s1 * s2 * np.sqrt(one_minus))[:, None]
    out = per.sum(1)
    return np.where(np.isfinite(out), out, -np.inf)


def _slcp_reference(x_o, n, seed, chains: int = 20, warmup: int = 100, thin: int = 2):
    from sbi.samplers.mcmc.slice_numpy import SliceSamplerVectorized

    rng = np.random.default_rng(seed)
    low, high = np.array([-3, -3, 0, 0, -3.0]), np.full(5, 3.0)

    def log_post(theta):
        inside = ((theta >= low) & (theta <= high)).all(1)
        return np.where(inside, slcp_log_likelihood(np.clip(theta, low, high), x_o), -np.inf)

    # sampling-importance-resampling of prior draws (orthant) for the chains' starts
    proposals = rng.uniform(low, high, size=(100_000, 5))
    logw = log_post(proposals)
    weights = np.exp(logw - logw.max())
    starts = proposals[rng.choice(len(proposals), chains, p=weights / weights.sum())]
    state = np.random.get_state()   # sbi's sampler draws from numpy's global generator
    np.random.seed(int(rng.integers(2**31)))
    try:
        sampler = SliceSamplerVectorized(log_post, starts, num_chains=chains, thin=thin,
                                         verbose=False, init_width=0.05)
        per_chain = warmup + math.ceil(n / chains)
        samples = sampler.run(per_chain * thin)[:, warmup:, :]   # (chains, kept, 5), thinned
    finally:
        np.random.set_state(state)
    samples = samples.reshape(-1, 5)[rng.permutation(samples.shape[0] * samples.shape[1])][:n]
    signs = rng.choice([-1.0, 1.0], size=(len(samples), 2))
    samples[:, 2:4] *= signs
    return samples


def get_task(name: str) -> Task:
    if name == "gaussian_linear_uniform":
        return Task(name, -np.ones(GLU_DIM), np.ones(GLU_DIM), _glu_simulate, _glu_reference)
    if name == "two_moons":
        return Task(name, -np.ones(2), np.ones(2), _moons_simulate, _moons_reference)
    if name == "slcp":
        return Task(name, np.full(5, -3.0), np.full(5, 3.0), _slcp_simulate, _slcp_reference)
    raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
