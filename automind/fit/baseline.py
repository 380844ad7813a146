"""The method `automind fit` is measured against: the same simulations spent as one prior bank
(amortised NPE, as the reference AutoMIND pipeline does), then the same final validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def prior_bank_posterior(folder, spec, prior, features: str, n: int, seed: int, x_target,
                         workers: int = 1, progress: bool = False):
    """A posterior trained on a bank of ``n`` prior simulations (resumable: a bank), on the
    features the target has."""
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
                 progress=progress, batch_size=min(256, max(32, len(data["theta"]) // 20)))


def evaluate(posterior, x, folder, n_final: int, truth=None, seed: int = 0, workers: int = 1,
             progress: bool = False) -> dict:
    """Information (nats) and the re-simulated consistent set of a prior-bank posterior at x."""
    from ..invariance.consistent import find_consistent_set
    from .region import posterior_information

    def valid(theta):
        return posterior.valid_probability(theta) > posterior.restriction_threshold

    info = posterior_information(posterior, x, valid, seed, truth)
    found = find_consistent_set(posterior, x, folder, n_final, truth=truth, seed=seed,
                                workers=workers, progress=progress)
    return {"yield": found["yield"], "n_consistent": found["n_consistent"],
            "n_simulated_final": found["n_simulated"], "nats": info["nats"],
            "truth_log_ratio_nats": info.get("truth_log_ratio_nats")}
