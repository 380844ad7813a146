"""``automind cheap check BANK``: the cheap model's statuses and rates against Brian2 runs.

Calibrates the screen window on the first part of the bank and scores everything on the
rest (held out), for the table and for the analytic transfer function (spec §4).
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import UserError

#: spec cheap-forward.md §4: "asynchronous" ok runs for the rate accuracy (mean pairwise
#: correlation below this)
ASYNC_CORR = 0.05
#: an ok run whose E activity ν_E·t_ref over the analysed window exceeds this is a network
#: locked at the refractory limit that ignited a few ms too late for the probe's 0.99
#: (docs/cheap.md, "Saturated ok runs")
SATURATED_ACTIVITY = 0.9


def saturated_ok(status, rate_E, t_refrac, above: float = SATURATED_ACTIVITY) -> np.ndarray:
    """Mask of the ok runs whose E activity ν_E·t_ref exceeds ``above`` (runs without a rate:
    False)."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(status) == "ok") & (np.asarray(rate_E, float) * t_refrac > above)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def check_runs(spec, prior, theta, status, rate_E, table=None, recall: float = 0.95,
               calibration: float = 0.5, baseline: bool = True, calibrate_on=None,
               regime_features: dict | None = None, learned: bool = False,
               saturation: float | None = None, slow_inhibition: bool = False) -> dict:
    """Scores of the cheap model on simulated runs (θ rows, their status and E rate, e.g. a
    bank's); ``table`` as in ``CheapModel.for_spec``; also the analytic baseline. The window
    and the classifier (``classify.py``) are calibrated on the first ``calibration`` share of
    the runs, or on another bank's (θ, status) ``calibrate_on`` and then scored on all runs.
    ``regime_features``: the runs' ``regimes.NEEDED`` features (name → array by row), to score
    the predicted regimes (``regimes.regime_report``; all of these runs, nothing calibrated).
    ``learned``: also learned classifiers on θ and on θ + the model's signals (``learned.py``).
    ``calibrate_on`` is (θ, status) or (θ, status, rate_E). ``saturation``: calibrate and score
    on statuses where ok runs with window activity above it are runaway
    (:func:`saturated_ok`; needs the rates of every run, of ``calibrate_on``'s too).
    Either way ``saturated_ok`` counts the held-out ok runs above ``SATURATED_ACTIVITY``.
    ``slow_inhibition``: both models with the slow-inhibition blend (``inhibition.py``)."""
    from .classify import calibrate_classifier
    from .learned import learned_report, theta_only
    from .regimes import auc, regime_report
    from .screen import CheapModel, calibrate_window, label_scores, scores, table_key

    done = np.isin(status, ("ok", "silent", "runaway"))
    theta, status, rate_E = theta[done], np.asarray(status)[done].astype(str), rate_E[done]
    regime_features = None if regime_features is None else {
        k: np.asarray(v, float)[done] for k, v in regime_features.items()}
    if len(theta) < 20:
        raise UserError(f"checking needs at least 20 ok/silent/runaway runs, got {len(theta)}")
    n_cal = int(round(calibration * len(theta)))
    if calibrate_on is not None:
        other_theta, other_status = calibrate_on[:2]
        other_rate = calibrate_on[2] if len(calibrate_on) > 2 else np.full(len(other_theta), np.nan)
        other_done = np.isin(other_status, ("ok", "silent", "runaway"))
        n_cal = int(other_done.sum())
        theta = np.concatenate([np.asarray(other_theta)[other_done], theta])
        status = np.concatenate([np.asarray(other_status)[other_done].astype(str), status])
        rate_E = np.concatenate([np.asarray(other_rate, float)[other_done], rate_E])
    t_ref = CheapModel.for_spec(spec, prior, "analytic").t_refrac(theta)
    cal, held = slice(0, n_cal), slice(n_cal, None)
    over = saturated_ok(status, rate_E, t_ref)
    saturated = {"above": SATURATED_ACTIVITY, "n": int(over[held].sum()),
                 "of": int((status[held] == "ok").sum())}
    if saturation is not None:
        if not np.all(np.isfinite(rate_E[status == "ok"])):
            raise UserError("--saturation needs the E rate of every ok run, of the calibration "
                            "bank's too")
        status = np.where(saturated_ok(status, rate_E, t_ref, saturation), "runaway", status)
    out = {"n": int(len(theta)), "calibration": n_cal, "held_out": int(len(theta) - n_cal),
           "recall_target": recall, "saturation": saturation,
           "slow_inhibition": slow_inhibition, "saturated_ok": saturated,
           "models": {}}
    models = [("table", table)] if table != "analytic" else []
    models += [("analytic", "analytic")] if baseline or table == "analytic" else []
    theta_scores = theta_only(theta, status, n_cal, recall) if learned else None
    for name, which in models:
        model = CheapModel.for_spec(spec, prior, which, slow_inhibition)
        start = time.process_time()
        pred = model.predict(theta)
        cpu = time.process_time() - start
        window = calibrate_window(_take(pred, cal), t_ref[cal], status[cal], recall)
        signals = model.status_signals(theta, pred)
        classifier = calibrate_classifier(_take(pred, cal), signals[cal], status[cal], recall)
        said = classifier.classify(_take(pred, held), signals[held])
        result = {"calibrated": scores(_take(pred, held), t_ref[held], status[held], window),
                  "default_thresholds": scores(_take(pred, held), t_ref[held], status[held],
                                               type(window)()),
                  "classifier": label_scores(_take(pred, held), said, status[held])
                  | {"classifier": classifier.to_dict()}}
        if learned:
            p_ok = classifier.probabilities(signals[held])[:, 1]
            result["learned"] = learned_report(theta, status, signals, n_cal, recall,
                                               auc(p_ok, status[held] == "ok"),
                                               theta_scores=theta_scores)
        ok = (status[held] == "ok") & (pred.status[held] != "undetermined")
        sim_rate, cheap_rate = rate_E[held][ok], pred.rate_E[held][ok]
        dlog = np.abs(np.log10(np.maximum(cheap_rate, 1e-3)) - np.log10(np.maximum(sim_rate, 1e-3)))
        result["ok_rate"] = {"spearman": spearman(cheap_rate, sim_rate), "n": int(ok.sum()),
                             "median_abs_dlog10": float(np.median(dlog)) if ok.any() else None}
        if regime_features is not None:  # spec §4: asynchronous ok runs, corr_mean < 0.05
            corr = regime_features["corr_mean"][slice(None) if calibrate_on is not None else held]
            flat = corr[ok] < ASYNC_CORR
            result["async_rate"] = {"n": int(flat.sum()), "median_abs_dlog10":
                                    float(np.median(dlog[flat])) if flat.any() else None}
        result["regimes"] = {r: int(np.sum(pred.regime == r)) for r in ("async", "bursting",
                                                                       "multistable", "")}
        if regime_features is not None:
            own = slice(n_cal, None) if calibrate_on is not None else slice(None)
            result["regimes_vs_simulated"] = regime_report(_take(pred, own), status[own],
                                                           regime_features)
        result["cpu_seconds"] = cpu
        result["predictions_per_cpu_second"] = len(theta) / max(cpu, 1e-9)
        result["table"] = table_key(model.table)
        out["models"][name] = result
    return out


def _take(pred, index):
    from dataclasses import fields, replace

    values = {f.name: getattr(pred, f.name)[index] for f in fields(pred)
              if f.name not in ("populations", "flags")}
    return replace(pred, **values, flags={k: v[index] for k, v in pred.flags.items()})


def rate_window_report(pred, status, rate_E, targets=(1.0, 3.0, 10.0, 30.0),
                       tolerance: float = 0.3, recall: float = 0.95,
                       calibration: float = 1 / 3) -> dict:
    """What a target-rate window screen would save (spec §3a, for a probe round): per target
    rate, "near" runs are simulated ``ok`` with |log10 ν_E − log10 target| ≤ ``tolerance``;
    the screen keeps θ predicted ``ok`` within a half-width (decades) around the target that
    keeps ``recall`` of the calibration part's near runs (or undetermined). Scored on the rest:
    kept fraction, near recall, and probes simulated per near run with and without it. Where
    more than 1 − ``recall`` of the near runs are predicted not ``ok`` no window reaches the
    recall: the half-width is None and the screen keeps everything (gain 1)."""
    status = np.asarray(status).astype(str)
    n_cal = int(round(calibration * len(status)))
    cal, held = slice(0, n_cal), slice(n_cal, None)
    log_pred = np.log10(np.maximum(pred.rate_E, 1e-6))
    log_sim = np.log10(np.maximum(np.asarray(rate_E, float), 1e-6))
    out = {}
    for target in targets:
        near = (status == "ok") & (np.abs(log_sim - np.log10(target)) <= tolerance)
        if near[cal].sum() < 10 or near[held].sum() < 10:
            continue
        dist = np.where(pred.status == "ok", np.abs(log_pred - np.log10(target)), np.inf)
        with np.errstate(invalid="ignore"):  # inf − inf between two unpredicted near runs
            width = float(np.quantile(dist[cal][near[cal]], recall))
        width = width if np.isfinite(width) else np.inf
        keep = (pred.status == "undetermined") | (dist <= width)
        k, n = keep[held], near[held]
        out[str(target)] = {"half_width_decades": width if np.isfinite(width) else None,
                            "kept": float(k.mean()),
                            "near_recall": float((k & n).sum() / n.sum()),
                            "near_held_out": int(n.sum()),
                            "probes_per_near_unscreened": float(len(n) / n.sum()),
                            "probes_per_near_screened": float(k.sum() / max((k & n).sum(), 1))}
        out[str(target)]["gain"] = (out[str(target)]["probes_per_near_unscreened"]
                                    / out[str(target)]["probes_per_near_screened"])
    return out
