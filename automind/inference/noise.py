"""The acceptance's noise model: how far a re-simulation may lie from the target.

A θ reproduces the target when its (transformed) features x lie within the simulations'
own noise: with z = (x − x*) / σ per feature,

    d = sqrt( zᵀ R⁻¹ z / k )  <=  threshold (2),

σ the sd of each feature over ``REPEATS`` re-simulations of a reference θ (the truth when
known) and R their correlation, shrunk towards the identity by the Ledoit–Wolf weight
(``sklearn.covariance.ledoit_wolf_shrinkage``); features that do not vary stay independent.
Without R (older run folders) d is the RMS of z.

Why R (studies/mk1_targets, "Why the truth of synchronous targets is rejected"): in bursting
networks the 25 PSD bands move together (the first eigenvalue holds 67–72 % of the
variance, ~2 effective degrees of freedom of 42), so the RMS of z has a far wider spread than
for independent features and 10–12 % of the truth's own runs exceeded 2 even with exact σ;
σ from 8 runs was also small-sample low (median 0.90 of σ from 80). Measured on 80 held-out
runs of each of six truths: σ and R from 32 runs accept the truth 0.99–1.00 of the time on
all six (RMS with σ from 8: 0.36–1.00), while no posterior sample that the RMS rule rejected
for being far becomes consistent (0 of 400 on every target).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: re-simulations of the reference that set σ and R
REPEATS = 32
SIGMA_FLOOR = 1e-3
#: the least Ledoit–Wolf weight: keeps R positive definite (smallest eigenvalue ≥ this)
MIN_SHRINKAGE = 1e-3


@dataclass
class NoiseModel:
    """Per-feature σ (k,) and, optionally, the features' correlation R (k, k)."""

    sigma: np.ndarray
    correlation: np.ndarray | None = None

    def __post_init__(self):
        self.sigma = np.asarray(self.sigma, float)
        self._chol = None
        if self.correlation is not None:
            self.correlation = np.asarray(self.correlation, float)
            self._chol = np.linalg.cholesky(self.correlation)

    @classmethod
    def from_runs(cls, features: np.ndarray, target: np.ndarray, correlated: bool = True,
                  quantum: np.ndarray | None = None) -> "NoiseModel":
        """From the transformed features (runs, k) of the reference's repeats; σ floored at
        SIGMA_FLOOR·(1 + |target|), NaN-only features σ = inf (ignored). ``quantum`` (k,): the
        step of quantised features (``features.bursts.feature_quanta``: 1 for 0/1 indicators,
        1/T for counts per second; 0 = continuous); their σ is at least ``quantum_sd``."""
        features = np.asarray(features, float)
        sd = np.nanstd(features, axis=0)
        sigma = np.maximum(np.nan_to_num(sd, nan=np.inf), SIGMA_FLOOR * (1 + np.abs(target)))
        if quantum is not None:  # quantum_sd is finite: ignored features stay σ = inf
            sigma = np.maximum(sigma, quantum_sd(features, quantum))
        if not correlated:
            return cls(sigma)
        return cls(sigma, shrunk_correlation(features))

    @classmethod
    def from_dict(cls, noise: dict) -> "NoiseModel":
        """From a ``noise.json`` (``sigma``, optional ``correlation``)."""
        sigma = np.array([np.inf if v is None else v for v in noise["sigma"]], float)
        return cls(sigma, noise.get("correlation"))

    @classmethod
    def load(cls, folder) -> "NoiseModel":
        """The model of a consistent-set folder (its ``noise.json``)."""
        import json
        from pathlib import Path

        return cls.from_dict(json.loads((Path(folder) / "noise.json").read_text()))

    def to_dict(self) -> dict:
        out = {"sigma": self.sigma.tolist()}
        if self.correlation is not None:
            out["correlation"] = np.round(self.correlation, 6).tolist()
        return out

    def select(self, columns) -> "NoiseModel":
        """The model of a subset of the features (e.g. the ones a gradient fit scores)."""
        columns = np.asarray(columns)
        corr = None if self.correlation is None else self.correlation[np.ix_(columns, columns)]
        return NoiseModel(self.sigma[columns], corr)

    def whiten(self, residuals: np.ndarray) -> np.ndarray:
        """Residuals x − x* (n, k) -> w with |w|² = zᵀ R⁻¹ z (z = residual / σ); NaN kept."""
        z = np.atleast_2d(np.asarray(residuals, float)) / self.sigma
        z = np.where(np.isinf(self.sigma), 0.0, z)  # features with no noise scale: ignored
        if self._chol is None:
            return z
        finite = np.isfinite(z).all(1)
        out = np.full_like(z, np.nan)
        if finite.any():
            from scipy.linalg import solve_triangular

            out[finite] = solve_triangular(self._chol, z[finite].T, lower=True).T
        return out

    def distance(self, features: np.ndarray, target: np.ndarray) -> np.ndarray:
        """d per row of features (NaN where a feature is missing); k counts only the features
        with a noise scale (σ = inf ones are ignored, not counted as perfect matches)."""
        w = self.whiten(np.atleast_2d(features) - target)
        k = int(np.isfinite(self.sigma).sum())
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.sum(w ** 2, axis=1) / k) if k else np.full(len(w), np.nan)

    def widened(self, extra_sd) -> "NoiseModel":
        """The model with independent extra noise of sd ``extra_sd`` per feature (NaN = 0)
        added: Σ = D R D + diag(extra²), σ and R re-read from Σ."""
        extra = np.nan_to_num(np.asarray(extra_sd, float), nan=0.0)
        finite = np.isfinite(self.sigma)
        s = np.where(finite, self.sigma, 0.0)
        R = self.correlation if self.correlation is not None else np.eye(len(s))
        cov = s[:, None] * R * s[None, :] + np.diag(extra ** 2)
        sigma = np.where(finite, np.sqrt(np.diag(cov)), np.inf)
        if self.correlation is None:
            return NoiseModel(sigma)
        scale = np.where(finite & (sigma > 0), sigma, 1.0)
        corr = cov / scale[:, None] / scale[None, :]
        corr[~finite, :], corr[:, ~finite] = 0.0, 0.0
        np.fill_diagonal(corr, 1.0)
        return NoiseModel(sigma, corr)


def quantum_sd(features: np.ndarray, quantum: np.ndarray) -> np.ndarray:
    """Per column of quantised values (runs, k; NaN skipped) with step ``quantum`` (k,; 0 =
    continuous, result 0): the step times the sd of a Bernoulli at Laplace's estimate of the
    share of repeats off the most common value, (off + 1) / (runs + 2) — for a 0/1 feature
    the Bernoulli sd at Laplace's share of ones. When every repeat agrees (all 32 burst) the
    repeats' sd is 0 and the σ floor (0.002) put a run that disagrees 500 sd away on that
    feature alone: an acceptance distance of ~77 on 42 features whatever the others
    (studies/mk1_targets, target 767: most refined members sat at 77 for six generations).
    With this floor (0.17 steps for 32 agreeing repeats) a one-step disagreement counts ~6 sd
    and the continuous features (spectrum, ISIs) say how far the run is."""
    x, quantum = np.asarray(features, float), np.asarray(quantum, float)
    out = np.zeros(x.shape[1])
    for j in np.flatnonzero(quantum > 0):
        steps = np.round(x[np.isfinite(x[:, j]), j] / quantum[j])
        if len(steps):
            p = (len(steps) - np.unique(steps, return_counts=True)[1].max() + 1) / (len(steps) + 2)
            out[j] = quantum[j] * np.sqrt(p * (1 - p))
    return out


def shrunk_correlation(features: np.ndarray) -> np.ndarray:
    """The correlation of the runs' features (runs, k), shrunk towards the identity by the
    Ledoit–Wolf weight; features that do not vary (or are missing) stay independent. Runs
    with no feature at all (failed, timed out: all NaN) are left out, so that one failed
    repeat does not make every feature 'missing'."""
    from sklearn.covariance import ledoit_wolf_shrinkage

    features = np.asarray(features, float)
    R = np.eye(features.shape[1])
    features = features[np.isfinite(features).any(1)]
    if len(features) < 3:
        return R
    live = np.isfinite(features).all(0) & (np.std(features, axis=0) > 1e-12)
    if live.sum() < 2:
        return R
    z = features[:, live]
    z = (z - z.mean(0)) / z.std(0)
    # floored: a zero weight leaves R singular for features the repeats tie together exactly
    weight = max(float(ledoit_wolf_shrinkage(z, assume_centered=False)), MIN_SHRINKAGE)
    R[np.ix_(live, live)] = (1 - weight) * np.corrcoef(z, rowvar=False) + weight * np.eye(live.sum())
    return R


def held_out_distances(features: np.ndarray, target: np.ndarray,
                       quantum: np.ndarray | None = None) -> np.ndarray:
    """Each repeat's distance to the target under the model fitted to the other repeats (an
    honest 'is the reference itself accepted?': a repeat never sets its own scale)."""
    features = np.asarray(features, float)
    return np.array([NoiseModel.from_runs(np.delete(features, i, 0), target,
                                          quantum=quantum).distance(
        features[i], target)[0] for i in range(len(features))])
