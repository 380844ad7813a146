"""The method `automind fit` is measured against: the same simulations spent as one prior bank
(amortised NPE, as the reference AutoMIND pipeline does), then the same final validation;
``consistent_mass_gain`` compares the two outputs' consistent shares in nats."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def prior_bank_posterior(folder, spec, prior, features: str, n: int, seed: int, x_target,
                         workers: int = 1, progress: bool = False, **training):
    """A posterior trained on a bank of ``n`` prior simulations (resumable: a bank), on the
    features the target has; ``training``: ``TrainingConfig`` fields (``ensemble=5``)."""
    from ..bank import Bank, extend
    from ..inference.train import train
    from .target import target_columns

    extend(Path(folder), spec, prior, n, seed, workers=workers, chunk_size=25,
           features=[features], progress=progress)
    bank = Bank(folder)
    data = bank.arrays(features=features)
    info = bank.feature_sets[features]
    return train(data["theta"], target_columns(data["x"], x_target), prior, valid=data["status"] == "ok",
                 feature_info={"set": features} | {k: info[k] for k in ("version", "names", "transforms")},
                 provenance={"simulator": spec.to_dict(), "bank": str(folder)}, seed=seed,
                 progress=progress,
                 **{"batch_size": min(256, max(32, len(data["theta"]) // 20))} | training)


def evaluate(posterior, x, folder, n_final: int, truth=None, seed: int = 0, workers: int = 1,
             progress: bool = False, noise=None) -> dict:
    """Information (nats) and the re-simulated consistent set of a prior-bank posterior at x;
    ``noise``: the fit's noise model (``NoiseModel.load(RUN/final)``), so both are accepted
    by one rule (else the baseline measures its own)."""
    from ..invariance.consistent import find_consistent_set
    from .region import posterior_information

    def valid(theta):
        return posterior.valid_probability(theta) > posterior.restriction_threshold

    info = posterior_information(posterior, x, valid, seed, truth)
    found = find_consistent_set(posterior, x, folder, n_final, truth=truth, seed=seed,
                                sigma=noise, workers=workers, progress=progress)
    return {"yield": found["yield"], "n_consistent": found["n_consistent"],
            "n_simulated_final": found["n_simulated"], "nats": info["nats"],
            "truth_log_ratio_nats": info.get("truth_log_ratio_nats")}


def consistent_mass_gain(k_method: int, n_method: int, k_base: int, n_base: int,
                         confidence: float = 0.95) -> dict:
    """log(Q(C) / B(C)) in nats: how much more of the method's output distribution Q than of
    the baseline's B lies in the consistent set C, each share measured by re-simulation
    (k of n samples accepted). A validated information measure: a distribution that is
    confident where nothing reproduces the recording gains nothing by it. ``lower``: the
    bound at ``confidence`` (Clopper–Pearson, the lower bound of Q(C) over the upper bound of
    B(C), each one-sided at (1 + confidence) / 2); ``point``: the ratio of the shares (None
    when the baseline accepted none: unbounded). Both None when the method accepted none."""
    from scipy.stats import beta

    alpha = (1 - confidence) / 2
    q_low = beta.ppf(alpha, k_method, n_method - k_method + 1) if k_method > 0 else 0.0
    b_high = beta.ppf(1 - alpha, k_base + 1, n_base - k_base) if k_base < n_base else 1.0
    if k_method == 0:
        return {"point": None, "lower": None, "confidence": confidence}
    point = np.log(k_method / n_method) - np.log(k_base / n_base) if k_base else None
    lower = np.log(q_low) - np.log(b_high)
    return {"point": None if point is None else float(point), "lower": float(lower),
            "confidence": confidence}
