"""Calibration and recovery on held-out simulations.

- expected coverage: for each held-out (θ*, x*), the rank of log p(θ* | x*) among the
  log-densities of posterior samples gives the smallest highest-density region containing
  θ*; the empirical CDF of those levels against the nominal level is the coverage curve
  (a calibrated posterior gives the diagonal);
- SBC ranks: per parameter, the rank of θ*_i among the samples' i-th coordinates;
- TARP (sbi's implementation): expected coverage against random reference points;
- contraction: prior sd / posterior sd per parameter; recovery NRMSE: RMSE of the posterior
  mean over the prior range, per parameter.
"""

from __future__ import annotations

import numpy as np


def posterior_draws(posterior, theta_true, x, n_samples: int = 200, seed: int = 0,
                    restrict: bool = False):
    """Samples (cases, n, d) and HPD levels (cases,) for held-out cases."""
    samples, levels = [], []
    for k, (theta_k, x_k) in enumerate(zip(theta_true, x)):
        draw = posterior.sample(n_samples, x_k, seed=seed + k, restrict=restrict)
        log_samples = posterior.log_prob(draw, x_k)
        log_true = posterior.log_prob(theta_k[None], x_k)[0]
        samples.append(draw)
        levels.append(np.mean(log_samples > log_true))  # mass of the HPD region reaching θ*
    return np.array(samples), np.array(levels)


def coverage_curve(levels: np.ndarray, grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(nominal, empirical): fraction of cases whose truth lies in the nominal HPD region."""
    grid = np.linspace(0, 1, 101) if grid is None else grid
    return grid, np.array([np.mean(levels <= g) for g in grid])


def diagnose(posterior, theta_true, x, n_samples: int = 200, seed: int = 0) -> dict:
    """All diagnostics for held-out simulations (θ in prior units, raw x); any prior."""
    prior = posterior.prior
    theta_true = np.atleast_2d(theta_true)
    samples, levels = posterior_draws(posterior, theta_true, x, n_samples, seed)
    nominal, empirical = coverage_curve(levels)
    sbc_ranks = (samples < theta_true[:, None, :]).sum(1)
    prior_sd = prior._moments()[1] if all(p.scale == "linear" for p in prior.parameters) \
        else prior.sample(20000, seed=seed).std(0)
    # the prior's range; for unbounded priors that of a uniform with the prior's sd
    width = np.where(np.isfinite(prior.high - prior.low), prior.high - prior.low,
                     np.sqrt(12) * prior_sd)
    post_sd = samples.std(1).mean(0)
    post_mean = samples.mean(1)
    nrmse = np.sqrt(((post_mean - theta_true) ** 2).mean(0)) / width
    tarp = _tarp(samples, theta_true, prior, seed)
    names = prior.names
    return {
        "n_cases": int(len(theta_true)), "n_samples": n_samples,
        "coverage_nominal": nominal.tolist(), "coverage_empirical": empirical.tolist(),
        "coverage_max_abs_error": float(np.max(np.abs(empirical - nominal))),
        "sbc_ranks": sbc_ranks.tolist(), "tarp_atc": tarp["atc"], "tarp_ks_pvalue": tarp["ks_pvalue"],
        "contraction": {n: float(v) for n, v in zip(names, prior_sd / post_sd)},
        "recovery_nrmse": {n: float(v) for n, v in zip(names, nrmse)},
    }


def _tarp(samples: np.ndarray, theta_true: np.ndarray, prior, seed: int) -> dict:
    """TARP expected coverage area difference (ATC) with sbi's check, references from the prior."""
    import torch
    from sbi.diagnostics.tarp import _run_tarp, check_tarp, l2

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        z = torch.as_tensor(prior.standardise(samples), dtype=torch.float32).transpose(0, 1)
        truth = torch.as_tensor(prior.standardise(theta_true), dtype=torch.float32)
        references = torch.as_tensor(prior.standardise(prior.sample(len(theta_true), seed=seed)),
                                     dtype=torch.float32)
        ecp, alpha = _run_tarp(z, truth, references, distance=l2, num_bins=30)
        atc, ks = check_tarp(ecp, alpha)
    return {"atc": float(atc), "ks_pvalue": float(ks)}
