"""The cheap model's regimes (async / bursting / multistable) against what Brian2 runs did.

A simulated ``ok`` run is labelled from its features over the analysed window:

- *quiet*: the E rate fell below ``QUIET_RATE`` (it ignited, then settled in the quiet state);
- *synchronous*: at least ``MIN_BURSTS`` network bursts or mean pairwise correlation above
  ``SYNC_CORR`` (the synchronous-target rule of ``studies/fit_targets.py``);
- *asynchronous*: otherwise.

Scored on runs both simulated and predicted ``ok``: the table of predicted regime × simulated
label, "bursting" as a detector of synchronous runs (recall, precision), "multistable" as a
detector of runs that end quiet, the predicted period against the simulated mean
inter-burst interval where both exist, and how well the burst score (and the fast
subsystem's loop gain alone) ranks runs with valid network bursts (``burst_valid``: at least
two detected) above the others (AUC).
"""

from __future__ import annotations

import numpy as np

#: Hz: an ok run whose analysed-window rate is below this ended in the quiet state
QUIET_RATE = 0.05
#: as studies/fit_targets.py's synchronous rule (its study.toml values)
MIN_BURSTS = 3
SYNC_CORR = 0.1
PREDICTED = ("async", "bursting", "multistable")
SIMULATED = ("asynchronous", "synchronous", "quiet")
#: feature sets that hold what the labels need, best first (``population``: the E population)
FEATURE_SETS = ("population", "mk1_compact", "mk1")
NEEDED = ("rate_mean", "corr_mean", "burst_num", "burst_interval_mean")


def simulated_labels(rate, corr, bursts) -> np.ndarray:
    """quiet / synchronous / asynchronous per run (features of its analysed window)."""
    rate, corr, bursts = (np.asarray(v, float) for v in (rate, corr, bursts))
    quiet = ~(np.nan_to_num(rate) >= QUIET_RATE)
    synchronous = (np.nan_to_num(bursts) >= MIN_BURSTS) | (np.nan_to_num(corr) > SYNC_CORR)
    return np.where(quiet, "quiet", np.where(synchronous, "synchronous", "asynchronous"))


def auc(score, label) -> float:
    """Area under the ROC curve of ``score`` for the boolean ``label`` (ties count one half;
    NaN scores excluded; NaN without both classes)."""
    from scipy.stats import rankdata

    score, label = np.asarray(score, float), np.asarray(label, bool)
    finite = np.isfinite(score)
    score, label = score[finite], label[finite]
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((rankdata(score)[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def burst_report(pred, ok, bursts) -> dict:
    """The burst score, the loop gain and the "bursting" regime as scores of ``burst_valid``
    on the runs ``ok``; ``bursts``: simulated burst counts (NaN or < 2: no valid bursts)."""
    valid = np.nan_to_num(np.asarray(bursts, float)[ok]) >= 2
    return {"n": int(ok.sum()), "burst_valid": int(valid.sum()),
            "auc_burst_score": auc(np.asarray(pred.burst_score, float)[ok], valid),
            "auc_loop_gain": auc(np.asarray(pred.loop_gain, float)[ok], valid),
            "auc_bursting_regime": auc(np.asarray(pred.regime)[ok] == "bursting", valid)}


def regime_report(pred, status, features: dict) -> dict:
    """``features``: the ``NEEDED`` columns per run (name → array). See the module docstring."""
    from .check import spearman

    ok = (np.asarray(status) == "ok") & (pred.status == "ok")
    said = np.asarray(pred.regime)[ok]
    label = simulated_labels(features["rate_mean"], features["corr_mean"],
                             features["burst_num"])[ok]
    table = {p: {s: int(np.sum((said == p) & (label == s))) for s in SIMULATED}
             for p in PREDICTED}

    def detector(predicted, simulated):
        hit = int(np.sum((said == predicted) & (label == simulated)))
        return {"recall": hit / max(int(np.sum(label == simulated)), 1),
                "precision": hit / max(int(np.sum(said == predicted)), 1),
                "predicted": int(np.sum(said == predicted)),
                "simulated": int(np.sum(label == simulated)),
                "base_rate": float(np.mean(label == simulated)) if len(label) else float("nan")}

    period = np.asarray(pred.period, float)[ok]
    interval = np.asarray(features["burst_interval_mean"], float)[ok]
    both = (said == "bursting") & np.isfinite(period) & np.isfinite(interval) & (interval > 0)
    return {"n": int(ok.sum()), "table": table,
            "bursting_finds_synchronous": detector("bursting", "synchronous"),
            "multistable_finds_quiet": detector("multistable", "quiet"),
            "period": {"n": int(both.sum()),
                       "spearman": spearman(period[both], interval[both]),
                       "median_log10_ratio": (float(np.median(np.log10(period[both]
                                                                       / interval[both])))
                                              if both.any() else None)},
            "bursts": burst_report(pred, ok, features["burst_num"])}


def bank_regime_features(bank, index) -> tuple[str, dict] | None:
    """(feature set, ``NEEDED`` columns for the bank rows ``index``, sorted ascending as
    ``Bank.table`` returns them; NaN where not computed) from the first of ``FEATURE_SETS``
    the bank has computed, or None."""
    index = np.asarray(index)
    for name in FEATURE_SETS:
        if name in bank.feature_sets and set(NEEDED) <= set(bank.feature_sets[name]["names"]):
            data = bank.arrays(features=name)
            names = list(bank.feature_sets[name]["names"])
            at = np.searchsorted(index, data["index"])
            out = {k: np.full(len(index), np.nan) for k in NEEDED}
            for k in NEEDED:
                out[k][at] = data["x"][:, names.index(k)]
            return name, out
    return None
