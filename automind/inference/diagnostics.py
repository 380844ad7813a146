"""Calibration and recovery on held-out simulations.

The headline (``calibration.py``): marginal (SBC) coverage per parameter, coverage in the
flow's own latent space, TARP, information in nats against a shuffled-x null and the
validity baseline, and contraction along the posterior's principal directions.
``coverage_max_abs_error`` is the worse of the marginal and latent coverage errors;
``coverage_noise_95`` is what an exactly calibrated posterior would reach with as many
cases.

Kept, labelled ``hpd_coverage`` (θ-space expected coverage by highest-density rank): for
each held-out (θ*, x*), the rank of log q(θ* | x*) among the samples' log-densities. Where
q is nearly flat (features that identify little) that order is set by the flow's small
errors, so it reports large errors even for a posterior equal to the prior: a diagnostic
of the density's shape, not the headline.

Also: SBC ranks; per-parameter contraction (prior sd / posterior sd); recovery NRMSE
(RMSE of the posterior mean over the prior range).
"""

from __future__ import annotations

import numpy as np

from . import calibration
from .calibration import coverage_curve, sbc_ranks  # noqa: F401  (public here since v1)

HPD_NOTE = ("θ-space coverage by highest-density rank: unreliable where the posterior is "
            "nearly flat (ranks follow the flow's small errors); not the headline")


def posterior_draws(posterior, theta_true, x, n_samples: int = 200, seed: int = 0,
                    restrict: bool = False):
    """Samples (cases, n, d) and θ-space HPD levels (cases,) for held-out cases."""
    samples, levels = [], []
    for k, (theta_k, x_k) in enumerate(zip(theta_true, x)):
        draw = posterior.sample(n_samples, x_k, seed=seed + k, restrict=restrict)
        log_samples = posterior.log_prob(draw, x_k)
        log_true = posterior.log_prob(theta_k[None], x_k)[0]
        samples.append(draw)
        levels.append(np.mean(log_samples > log_true))  # mass of the HPD region reaching θ*
    return np.array(samples), np.array(levels)


def diagnose(posterior, theta_true, x, n_samples: int = 200, seed: int = 0) -> dict:
    """All diagnostics for held-out simulations (θ in prior units, raw x); any prior."""
    prior = posterior.prior
    theta_true = np.atleast_2d(theta_true)
    x = np.atleast_2d(x)
    samples, hpd_levels = posterior_draws(posterior, theta_true, x, n_samples, seed)
    names = prior.names
    marginal = calibration.marginal_coverage(samples, theta_true, names, seed)
    latent = calibration.latent_coverage(posterior, theta_true, x, seed)
    tarp = calibration.tarp(samples, theta_true, prior, seed)
    info = calibration.information(posterior, theta_true, x, seed)
    principal = calibration.principal_contraction(samples, prior)
    hpd = calibration._curve_report(hpd_levels) | {"note": HPD_NOTE}

    errors = [marginal["max_abs_error"]] + ([latent["max_abs_error"]] if latent else [])
    noise = calibration.noise_level(len(theta_true), prior.dim + (1 if latent else 0))
    prior_sd = prior._moments()[1] if all(p.scale == "linear" for p in prior.parameters) \
        else prior.sample(20000, seed=seed).std(0)
    # the prior's range; for unbounded priors that of a uniform with the prior's sd
    width = np.where(np.isfinite(prior.high - prior.low), prior.high - prior.low,
                     np.sqrt(12) * prior_sd)
    post_sd = samples.std(1).mean(0)
    nrmse = np.sqrt(((samples.mean(1) - theta_true) ** 2).mean(0)) / width
    return {
        "n_cases": int(len(theta_true)), "n_samples": n_samples,
        # headline
        "coverage_max_abs_error": float(max(errors)), "coverage_noise_95": noise,
        "marginal_coverage": marginal, "latent_coverage": latent,
        "tarp": tarp, "tarp_atc": tarp["atc"], "tarp_ks_pvalue": tarp["ks_pvalue"],
        "information": info, "principal_contraction": principal,
        # per parameter
        "sbc_ranks": sbc_ranks(samples, theta_true).tolist(),
        "contraction": {n: float(v) for n, v in zip(names, prior_sd / post_sd)},
        "recovery_nrmse": {n: float(v) for n, v in zip(names, nrmse)},
        # kept, labelled: not the headline
        "hpd_coverage": hpd,
    }


def headline(report: dict) -> str:
    """One line of the honest numbers, for the CLI and reports."""
    info = report["information"]
    latent = report["latent_coverage"]
    near = report.get("near")
    cases = f"{report['n_cases']} held-out simulations" + (
        f" nearest the target (of {near['of']}; feature distance median "
        f"{near['distance_median']:.2f}, max {near['distance_max']:.2f})" if near else "")
    parts = [f"{cases}: coverage error "
             f"{report['coverage_max_abs_error']:.3f} (noise level {report['coverage_noise_95']:.3f}; "
             f"marginal {report['marginal_coverage']['max_abs_error']:.3f}"
             + (f", latent {latent['max_abs_error']:.3f}" if latent else "") + ")",
             *([f"the latent 90 % HPD regions hold {latent['empirical'][90]:.2f} of the truths"]
               if latent else []),
             f"TARP ATC {report['tarp_atc']:+.3f}",
             f"information {info['mean']:.2f} ± {info['standard_error']:.2f} nats "
             f"({info['beyond_shuffled']:.2f} beyond shuffled x"
             + (f", {info['beyond_validity']:.2f} beyond validity" if info["validity"] is not None else "")
             + ")"]
    return "; ".join(parts)
