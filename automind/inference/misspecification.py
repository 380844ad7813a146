"""Is a target's feature vector inside what the model produces? (checked before inference)

Two checks against reference simulations (a bank's valid rows), in the space inference
works in (log10 where the feature set says so):

- per feature: the target is *out of range* where it lies outside the reference's
  [``QUANTILE``, 1 - ``QUANTILE``] quantiles, or is missing (NaN) where the reference has
  values; these are the features named in the warning, ordered by robust z-score;
- jointly: the single-observation form of sbi's MMD misspecification test (RBF kernel on
  standardised features; ``_density_rank_p_value`` says how it relates to
  ``sbi.diagnostics.misspecification``): its p-value says how often a reference
  simulation is as atypical among the others as the target is. A target can pass every
  range and still fail here (an unusual *combination*).

A posterior trained on a bank that never produced anything like the target answers
anyway; this check is how `infer` tells the user when not to trust that answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

QUANTILE = 0.005   # each side: a range holding 99 % of the reference
ALPHA = 0.01       # joint test level
MAX_SAMPLES = 2000


@dataclass
class MisspecificationReport:
    n_reference: int
    n_features: int
    out_of_range: list[dict] = field(default_factory=list)   # name, value, low, high, z
    p_value: float | None = None                             # sbi MMD test (None: not run)
    alpha: float = ALPHA
    quantile: float = QUANTILE
    method: str = "per-feature quantile range + kernel-density rank (single-observation MMD)"

    @property
    def misspecified(self) -> bool:
        return bool(self.out_of_range) or (self.p_value is not None and self.p_value < self.alpha)

    def message(self, limit: int = 6) -> str:
        """One line for a warning (empty when the target looks in range)."""
        if not self.misspecified:
            return ""
        parts = []
        if self.out_of_range:
            shown = [f"{o['name']} ({_fmt(o['value'])} vs {_fmt(o['low'])}..{_fmt(o['high'])})"
                     for o in self.out_of_range[:limit]]
            more = len(self.out_of_range) - limit
            parts.append(f"{len(self.out_of_range)} of {self.n_features} features outside the "
                         f"central {100 - 200 * self.quantile:g} % of {self.n_reference} reference "
                         f"simulations: {', '.join(shown)}" + (f" and {more} more" if more > 0 else ""))
        if self.p_value is not None and self.p_value < self.alpha:
            parts.append(f"jointly atypical (kernel-density rank p = {self.p_value:.3g} < "
                         f"{self.alpha:g})")
        return "the target may be outside what the model produces: " + "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self) | {"misspecified": self.misspecified}


def _fmt(value) -> str:
    return "NaN" if value is None or not np.isfinite(value) else f"{value:.3g}"


def check_misspecification(x_target, reference, names, log10=None, columns=None,
                           quantile: float = QUANTILE, alpha: float = ALPHA, seed: int = 0) -> MisspecificationReport:
    """Compare raw target features (d,) with raw reference features (n, d).

    ``log10`` flags the features inference sees as log10 (floored at 1e-12); ``columns``
    restricts the check to the features a posterior looks at. Reference rows with any
    missing value (in those columns) are left out. Values in the report are transformed.
    """
    names = list(names)
    columns = list(range(len(names))) if columns is None else list(columns)
    flags = np.zeros(len(names), bool) if log10 is None else np.asarray(log10, bool)
    x = _transform(np.asarray(x_target, float).reshape(1, -1), flags)[0, columns]
    ref = _transform(np.atleast_2d(np.asarray(reference, float)), flags)[:, columns]
    ref = ref[np.isfinite(ref).all(1)]
    report = MisspecificationReport(n_reference=len(ref), n_features=len(columns),
                                    alpha=alpha, quantile=quantile)
    if len(ref) < 10:
        return report  # too few valid simulations to say anything
    low, high = np.quantile(ref, [quantile, 1 - quantile], axis=0)
    median = np.median(ref, 0)
    spread = 1.4826 * np.median(np.abs(ref - median), 0)
    spread = np.where(spread > 0, spread, np.maximum(high - low, 1e-12))
    outside = ~np.isfinite(x) | (x < low) | (x > high)
    z = np.where(np.isfinite(x), (x - median) / spread, np.inf)
    order = np.argsort(-np.abs(z[outside]), kind="stable")
    report.out_of_range = [
        {"name": names[columns[k]], "value": float(x[k]) if np.isfinite(x[k]) else None,
         "low": float(low[k]), "high": float(high[k]),
         "z": float(z[k]) if np.isfinite(z[k]) else None}
        for k in np.flatnonzero(outside)[order]]
    if np.isfinite(x).all():
        report.p_value = _density_rank_p_value(x, ref, seed)
    return report


def _transform(x: np.ndarray, flags: np.ndarray) -> np.ndarray:
    x = x.copy()
    with np.errstate(invalid="ignore"):
        x[:, flags] = np.log10(np.maximum(x[:, flags], 1e-12))
    return x


def _density_rank_p_value(x: np.ndarray, ref: np.ndarray, seed: int) -> float:
    """Rank of the target's Gaussian-kernel density among the reference's leave-one-out
    densities, on standardised features (Scott's bandwidth): p = (1 + #{reference points
    no more typical than the target}) / (n + 1), calibrated whatever the distribution.

    This is what sbi's ``calc_misspecification_mmd`` computes for a single observation
    (MMD² = 1 + mean K(Y, Y) - 2 mean K(x, Y), and the K(Y, Y) term is the same for every
    shuffle), without rebuilding an n x n kernel per shuffle (minutes on 2 cores) and with
    a bandwidth narrower than its median distance, which cannot see combinations.
    """
    varying = ref.std(0) > 0
    rng = np.random.default_rng(seed)
    ref = ref[rng.permutation(len(ref))[:MAX_SAMPLES]][:, varying]
    mean, sd = ref.mean(0), ref.std(0)
    y, z = (ref - mean) / sd, (x[varying] - mean) / sd
    n, d = y.shape
    bandwidth = n ** (-1.0 / (d + 4))
    sq = (y * y).sum(1)
    between = np.maximum(sq[:, None] + sq[None] - 2 * y @ y.T, 0.0)
    kernel = np.exp(-between / (2 * bandwidth**2))
    typical = (kernel.sum(1) - 1.0) / (n - 1)                # leave-one-out densities
    target = np.exp(-((y - z) ** 2).sum(1) / (2 * bandwidth**2)).mean()
    return float((1 + np.sum(typical <= target)) / (n + 1))


def check_posterior_target(posterior, x_target, seed: int = 0) -> MisspecificationReport | None:
    """The check against the bank a posterior was trained on (its valid rows, the columns
    it conditions on); None when that bank is no longer where the posterior says."""
    from ..bank import Bank

    bank_path = (posterior.provenance or {}).get("bank")
    feature_set = posterior.features.get("set")
    if not bank_path or not feature_set or not (Path(bank_path) / "bank.json").is_file():
        return None
    bank = Bank(bank_path)
    if feature_set not in bank.feature_sets:
        return None
    data = bank.arrays(features=feature_set, status="ok")
    flags = [t == "log10" for t in posterior.features["transforms"]]
    return check_misspecification(x_target, data["x"], posterior.features["names"], flags,
                                  posterior.config.get("feature_columns"), seed=seed)


def write_report(posterior, x_target, folder: Path, seed: int = 0) -> MisspecificationReport | None:
    """Run ``check_posterior_target`` and write FOLDER/misspecification.json (None, and no
    file, when the posterior's bank is not available)."""
    from ..io import write_json

    report = check_posterior_target(posterior, x_target, seed)
    if report is None:
        return None
    write_json(Path(folder) / "misspecification.json", report.to_dict(), sort_keys=False)
    return report
