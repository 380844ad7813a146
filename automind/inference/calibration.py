"""Calibration yardsticks that stay honest when the posterior is flat.

Expected coverage by highest-density rank in θ-space (``diagnostics.posterior_draws``)
ranks posterior samples by log q(θ | x). Where q is nearly flat — a uniform prior that the
features barely change, the usual case for MK1 — that order is set by the flow's small
errors, not by the posterior: a posterior equal to the prior (pure-noise features, 8,000
simulations) measured a 0.37 coverage error. The yardsticks here do not depend on that
order:

- ``marginal_coverage``: per parameter, central credible intervals from SBC ranks
  (rank of θ*_i among the samples, randomised ties), one coverage curve per parameter;
- ``latent_coverage``: θ* pushed through the flow's own transform to its standard-normal
  base, where the exact highest-density regions are balls: level = χ²_d CDF of |u*|²
  (no samples; an ensemble member is chosen by its responsibility for θ*);
- ``tarp``: sbi's TARP on prior-standardised coordinates, references from the prior;
- ``information``: mean log q(θ* | x*) − log p(θ*) in nats, against the same with x
  shuffled across cases (what the posterior knows without reading x) and against the
  validity baseline −ln(valid fraction);
- ``principal_contraction``: prior sd / posterior sd along the eigenvectors of the
  posterior covariance (directions from one half of the samples, variances from the other,
  so sampling noise does not pose as contraction).

Every coverage error comes with ``noise_95``: the 95 % quantile of the same statistic for
an exactly calibrated posterior with as many cases (and curves), so a reader can tell
miscalibration from too few cases.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

GRID = np.linspace(0, 1, 101)


# ---- coverage curves ---------------------------------------------------------------------
def coverage_curve(levels, grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(nominal, empirical): fraction of cases whose level is at most each nominal level
    (the truth lies inside the credible region of that mass)."""
    grid = GRID if grid is None else np.asarray(grid)
    levels = np.asarray(levels, dtype=float)
    return grid, (levels[:, None] <= grid[None, :]).mean(0)


@lru_cache(maxsize=64)
def noise_level(n_cases: int, n_curves: int = 1, quantile: float = 0.95, reps: int = 2000,
                seed: int = 0) -> float:
    """The ``quantile`` of max |empirical − nominal| (on the 101-point grid, maximised over
    ``n_curves`` independent curves) for exactly calibrated levels of ``n_cases`` cases.
    Curves of correlated parameters are not independent, so this errs on the high side."""
    rng = np.random.default_rng(seed)
    worst = np.zeros(reps)
    for start in range(0, n_curves, 8):  # bounded memory for many parameters
        k = min(8, n_curves - start)
        levels = rng.uniform(size=(reps, k, n_cases))
        bins = np.clip(np.ceil(levels * 100).astype(int), 0, 100)  # level <= g_j  <=>  bin <= j
        flat = (np.arange(reps * k).reshape(reps, k, 1) * 101 + bins).ravel()
        counts = np.bincount(flat, minlength=reps * k * 101).reshape(reps, k, 101)
        error = np.abs(counts.cumsum(-1) / n_cases - GRID).max(-1)
        worst = np.maximum(worst, error.max(1))
    return float(np.quantile(worst, quantile))


def _curve_report(levels: np.ndarray, n_curves: int = 1) -> dict:
    nominal, empirical = coverage_curve(levels)
    return {"nominal": nominal.tolist(), "empirical": empirical.tolist(),
            "max_abs_error": float(np.max(np.abs(empirical - nominal))),
            "noise_95": noise_level(len(levels), n_curves)}


def sbc_ranks(samples: np.ndarray, theta_true: np.ndarray) -> np.ndarray:
    """Per case and parameter, how many samples lie below the truth: (cases, d)."""
    return (np.asarray(samples) < np.asarray(theta_true)[:, None, :]).sum(1)


def marginal_coverage(samples: np.ndarray, theta_true: np.ndarray, names: list[str],
                      seed: int = 0) -> dict:
    """Coverage of central credible intervals, per parameter, from SBC ranks.

    The rank fraction r = (#below + U·(#tied + 1)) / (n + 1) is exactly uniform for a
    calibrated posterior; the truth lies in the central interval of mass α iff
    |2r − 1| ≤ α. ``max_abs_error`` is the worst parameter's, ``noise_95`` its noise level
    over all d parameters."""
    samples, theta_true = np.asarray(samples), np.atleast_2d(theta_true)
    below = (samples < theta_true[:, None, :]).sum(1)
    tied = (samples == theta_true[:, None, :]).sum(1)
    jitter = np.random.default_rng(seed).uniform(size=below.shape)
    r = (below + jitter * (tied + 1)) / (samples.shape[1] + 1)
    levels = np.abs(2 * r - 1)
    per = {n: coverage_curve(levels[:, k])[1] for k, n in enumerate(names)}
    errors = {n: float(np.max(np.abs(c - GRID))) for n, c in per.items()}
    return {"nominal": GRID.tolist(), "empirical": {n: c.tolist() for n, c in per.items()},
            "max_abs_error_per_parameter": errors, "max_abs_error": max(errors.values()),
            "worst_parameter": max(errors, key=errors.get),
            "noise_95": noise_level(len(theta_true), len(names)),
            "noise_95_one_parameter": noise_level(len(theta_true), 1)}


# ---- the flow's latent space -----------------------------------------------------------
def _has_standard_normal_base(estimator) -> bool:
    """sbi's flows (zuko and nflows) map θ to a standard normal; check, do not assume."""
    if not hasattr(estimator, "inverse_transform"):
        return False  # e.g. a mixture density network: no single latent transform
    net = getattr(estimator, "net", None)
    base = getattr(net, "_distribution", None)
    if base is not None:
        return type(base).__name__ == "StandardNormal"
    try:
        import zuko

        dist = net(estimator.embedding_net(torch.zeros(1, *estimator.condition_shape)))
        base = dist.base
        return (isinstance(base, zuko.distributions.DiagNormal)
                and bool(torch.all(base.base_dist.loc == 0)) and bool(torch.all(base.base_dist.scale == 1)))
    except (AttributeError, TypeError, RuntimeError):
        return False


def latent_transform(posterior, theta, x) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Each row of θ (n, d) under its own row of raw x (n, dx) in every ensemble member's
    base space: (u (members, n, d), log q_member(z | x) (members, n)); None when an
    estimator has no standard-normal latent space (e.g. ``mdn``). Uses only the
    posterior's public attributes (``estimators``, ``theta_map``, ``prepare_x``) and sbi's
    ``inverse_transform``."""
    if not all(_has_standard_normal_base(est) for est in posterior.estimators):
        return None
    x_t = posterior.prepare_x(x)
    with torch.no_grad():
        z = posterior.theta_map.to_z(torch.as_tensor(np.atleast_2d(theta), dtype=torch.float64))
        u = torch.stack([est.inverse_transform(z, x_t) for est in posterior.estimators])
        logs = torch.stack([est.log_prob(z.unsqueeze(0), x_t)[0] for est in posterior.estimators])
    return u.double(), logs.double()


def latent_levels(posterior, theta, x, seed: int = 0, batch: int = 512) -> np.ndarray | None:
    """Per case, the mass of the flow's base-space highest-density ball reaching θ*:
    χ²_d CDF of |u*|². For an ensemble, the member is drawn with probability
    q_k(θ*) / Σ_j q_j(θ*), which makes u* standard normal when θ* ~ q."""
    from scipy.stats import chi2

    theta = np.atleast_2d(theta)
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, len(theta), batch):
        pushed = latent_transform(posterior, theta[start:start + batch], np.atleast_2d(x)[start:start + batch])
        if pushed is None:
            return None
        u, logs = pushed
        weights = torch.softmax(logs, 0).numpy()               # (members, n)
        pick = (rng.uniform(size=weights.shape[1]) > weights.cumsum(0)).sum(0)
        pick = np.minimum(pick, len(weights) - 1)
        radius2 = (u[pick, np.arange(u.shape[1])] ** 2).sum(-1).numpy()
        out.append(chi2.cdf(radius2, df=theta.shape[1]))
    return np.concatenate(out)


def latent_coverage(posterior, theta, x, seed: int = 0) -> dict | None:
    levels = latent_levels(posterior, theta, x, seed)
    return None if levels is None else _curve_report(levels)


# ---- TARP --------------------------------------------------------------------------------
def tarp(samples: np.ndarray, theta_true: np.ndarray, prior, seed: int = 0,
         num_bins: int = 30) -> dict:
    """sbi's TARP on prior-standardised coordinates with references drawn from the prior:
    the expected-coverage curve, its area difference above α = 0.5 (ATC; > 0 too wide,
    < 0 too narrow), the KS p-value of ``check_tarp`` and the curve's max |error|."""
    from sbi.diagnostics.tarp import _run_tarp, check_tarp, l2

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        z = torch.as_tensor(prior.standardise(samples), dtype=torch.float32).transpose(0, 1)
        truth = torch.as_tensor(prior.standardise(theta_true), dtype=torch.float32)
        references = torch.as_tensor(prior.standardise(prior.sample(len(theta_true), seed=seed)),
                                     dtype=torch.float32)
        ecp, alpha = _run_tarp(z, truth, references, distance=l2, num_bins=num_bins)
        atc, ks = check_tarp(ecp, alpha)
    ecp, alpha = ecp.numpy(), alpha.numpy()
    return {"atc": float(atc), "ks_pvalue": float(ks), "nominal": alpha.tolist(),
            "empirical": ecp.tolist(), "max_abs_error": float(np.max(np.abs(ecp - alpha)))}


# ---- information in nats -----------------------------------------------------------------
def paired_log_prob(posterior, theta, x, batch: int = 512) -> np.ndarray:
    """log q(θ_i | x_i) for paired rows (n, d) and raw (n, dx), in the prior's units (the
    same values as ``posterior.log_prob`` row by row, in batches)."""
    theta, x = np.atleast_2d(np.asarray(theta, dtype=np.float64)), np.atleast_2d(x)
    out = np.empty(len(theta))
    for start in range(0, len(theta), batch):
        rows = slice(start, start + batch)
        t = torch.as_tensor(theta[rows])
        x_t = posterior.prepare_x(x[rows])
        with torch.no_grad():
            z = posterior.theta_map.to_z(t)
            logs = torch.stack([est.log_prob(z.unsqueeze(0), x_t)[0] for est in posterior.estimators])
            value = (torch.logsumexp(logs, 0) - math.log(len(logs))).double()
            out[rows] = (value + posterior.theta_map.log_abs_det_dz_dtheta(t)).numpy()
    inside = ((theta >= posterior.prior.low) & (theta <= posterior.prior.high)).all(1)
    out[~inside] = -np.inf
    return out


def validity_nats(posterior) -> float | None:
    """−ln(valid fraction of the training simulations), from the posterior's metrics."""
    valid, invalid = (posterior.metrics.get(k) for k in ("n_valid", "n_invalid"))
    if valid is None or invalid is None or valid <= 0:
        return None
    return float(-math.log(valid / (valid + invalid)))


def information(posterior, theta, x, seed: int = 0, shuffles: int = 5) -> dict:
    """What the posterior knows about θ, in nats, on held-out (θ*, x*):

    - ``mean``: mean of log q(θ* | x*) − log p(θ*) (an estimate of the mutual information
      the posterior captures; 0 for a posterior equal to the prior);
    - ``shuffled``: the same with each θ* paired with another case's x (``shuffles``
      random derangements, no retraining): what the posterior asserts whatever x says,
      e.g. where simulations are valid; ``beyond_shuffled`` = mean − shuffled, with the
      standard error of the paired differences;
    - ``validity``: −ln(valid fraction), what "the simulation is valid" alone is worth;
      ``beyond_validity`` = mean − validity.
    """
    theta, x = np.atleast_2d(theta), np.atleast_2d(x)
    n = len(theta)
    prior_log = posterior.prior.log_prob(theta).astype(float)
    gain = paired_log_prob(posterior, theta, x) - prior_log
    rng = np.random.default_rng(seed)
    shuffled = np.zeros(n)
    for _ in range(shuffles):
        order = rng.permutation(n)
        partner = np.empty(n, dtype=int)
        partner[order] = np.roll(order, -1)  # a derangement: nobody keeps their own x
        shuffled += paired_log_prob(posterior, theta, x[partner]) - prior_log
    shuffled /= shuffles
    finite = np.isfinite(gain) & np.isfinite(shuffled)
    se = float(np.std(gain[finite]) / math.sqrt(max(finite.sum(), 1)))
    diff = gain[finite] - shuffled[finite]
    validity = validity_nats(posterior)
    return {"mean": float(np.mean(gain[finite])), "standard_error": se,
            "shuffled": float(np.mean(shuffled[finite])),
            "shuffled_standard_error": float(np.std(shuffled[finite]) / math.sqrt(max(finite.sum(), 1))),
            "beyond_shuffled": float(np.mean(diff)),
            "beyond_shuffled_standard_error": float(np.std(diff) / math.sqrt(max(len(diff), 1))),
            "validity": validity,
            "beyond_validity": None if validity is None else float(np.mean(gain[finite]) - validity),
            "cases": int(finite.sum()), "cases_outside_support": int(n - finite.sum()),
            "shuffles": shuffles}


# ---- contraction along principal directions ---------------------------------------------
def principal_contraction(samples: np.ndarray, prior) -> dict:
    """Prior sd / posterior sd along the eigenvectors of each case's posterior covariance,
    in prior-standardised coordinates (where the prior's covariance is the identity).

    Directions come from the first half of each case's samples and variances along them
    from the second half: taking both from the same samples would turn the spread of
    sample eigenvalues (Marchenko–Pastur) into spurious contraction. ``spectrum`` is the
    geometric mean over cases, strongest direction first; ``log_volume_nats`` = Σ ln of it
    (the Gaussian approximation of the information, in nats)."""
    u = prior.standardise(np.asarray(samples).reshape(-1, prior.dim)).reshape(np.shape(samples))
    half = u.shape[1] // 2
    logs = []
    for case in u:
        values, vectors = np.linalg.eigh(np.cov(case[:half].T).reshape(prior.dim, prior.dim))
        held = np.atleast_2d(np.cov(case[half:].T))
        variance = np.einsum("ij,ik,kj->j", vectors, held, vectors)
        logs.append(-0.5 * np.log(np.maximum(variance, 1e-300)))  # eigh: weakest variance first
    logs = np.array(logs)
    spectrum = np.exp(logs.mean(0))
    return {"spectrum": spectrum.tolist(), "log_volume_nats": float(logs.sum(1).mean()),
            "directions_contracted_2x": int((spectrum >= 2).sum())}
