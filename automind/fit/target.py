"""The fit's target: its features and probe statistics, which probe runs come near it, and
the training features restricted to the columns it has."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..io import json_floats
from ..recordings.windows import MIN_WINDOWS, target_window, window_count, window_features, window_sd
from .plan import FitSettings

PROBE_STATS = ("rate_mean", "isi_cv_mean")


def target_of(recording, feature_set: str, length: float | None = None, window: str = "auto",
              **recording_options) -> tuple[np.ndarray, dict, object, str]:
    """(raw features, target statistics, truth or None, feature-set name) of a recording file
    or BANK:INDEX. ``mea`` becomes ``meaK`` for a recording of K electrodes. A recording at
    least ``MIN_WINDOWS`` simulated runs long (``length``: their analysed seconds) is cut to
    its target window unless ``window == "whole"`` (``recordings.windows``); the target then
    also records the window and the features' sd over the recording's windows
    (``window_sd``, transformed space), which the acceptance adds to the simulations' noise."""
    from ..features.sets import get_feature_set, resolve_feature_set
    from ..inference.targets import bank_target, read_target

    data = read_target(str(recording), **recording_options)
    if data.n_spikes == 0:
        raise UserError(f"{recording} has no spikes; there is nothing to fit")
    feature_set = resolve_feature_set(feature_set, data)
    fs = get_feature_set(feature_set)
    if data.duration < 2.0 and any(n.startswith("psd") for n in fs.names):
        raise UserError(f"{recording} lasts {data.duration:g} s; the {feature_set} feature set "
                        "needs at least 2 s (one Welch segment)")
    info = {}
    if window not in ("auto", "whole"):
        raise UserError(f"target window must be 'auto' or 'whole', not {window!r}")
    if window == "auto" and length and window_count(data, length) >= MIN_WINDOWS:
        start, stop = target_window(data, length)
        info = {"window_s": [start, stop], "windows": window_count(data, length),
                "window_sd": json_floats(window_sd(window_features(data, fs, length), fs))}
        data = data.window(start, stop)
    x = fs.compute(data)
    stats = probe_statistics(x[None], fs.names)[0]
    truth = None
    hit = bank_target(str(recording))
    if hit is not None:
        from ..bank import Bank

        table = Bank(hit[0]).table(index_range=(hit[1], hit[1] + 1))
        truth = table["theta"][0] if len(table["index"]) else None
    return x, {"rate_mean": float(stats[0]), "isi_cv_mean": float(stats[1]),
               "duration": data.duration, "n_units": data.n_units} | info, truth, feature_set


def probe_statistics(x: np.ndarray, names) -> np.ndarray:
    """(n, 2): mean rate and mean ISI CV columns of raw feature rows (NaN where absent)."""
    names = list(names)
    missing = [s for s in PROBE_STATS if s not in names]
    if missing:
        raise UserError(f"the feature set lacks {missing}, which the probe rounds compare with "
                        "the target; use a set with spike statistics (spikes, mk1_compact, "
                        "population, mk1)")
    return np.stack([x[:, names.index(s)] for s in PROBE_STATS], axis=1)


#: the probe-window statistics' range: these quantiles over the recording's windows
PROBE_WINDOW_QUANTILES = (0.05, 0.95)
#: at most this many evenly spaced probe-length windows are measured
PROBE_WINDOWS = 200


def probe_windows(recording, feature_set: str, length: float, **recording_options) -> dict | None:
    """The recording's probe statistics (mean rate, mean ISI CV) over windows as long as a
    probe's analysed part: their 5–95 % ranges (rate in Hz), or None when it holds fewer than
    ``MIN_WINDOWS``. A short probe of a bursting network sees a burst or the gap between two,
    so its rate and ISI CV scatter far from the whole recording's (MK1 target 767 of
    studies/mk1_targets, 1 burst/s: the truth's own 12 one-second probes were all more than
    the tolerances from its 4 s statistics); a probe is near when it lies within the
    tolerances of the range the recording itself shows at the probe's length."""
    from ..features.sets import get_feature_set, resolve_feature_set
    from ..inference.targets import read_target

    data = read_target(str(recording), **recording_options)
    n = window_count(data, length)
    if n < MIN_WINDOWS:
        return None
    fs = get_feature_set(resolve_feature_set(feature_set, data))
    rows = window_features(data, fs, length, most=PROBE_WINDOWS)
    stats = probe_statistics(rows, fs.names)
    rate, cv = stats[:, 0], stats[:, 1]
    rate, cv = rate[np.isfinite(rate) & (rate > 0)], cv[np.isfinite(cv)]
    if len(rate) < MIN_WINDOWS:
        return None
    out = {"length_s": float(length), "windows": int(len(stats)),
           "rate_mean": np.quantile(rate, PROBE_WINDOW_QUANTILES).tolist()}
    if len(cv) >= MIN_WINDOWS:
        out["isi_cv_mean"] = np.quantile(cv, PROBE_WINDOW_QUANTILES).tolist()
    return out


def _outside(value, low, high) -> np.ndarray:
    """How far ``value`` lies outside [low, high] (0 inside)."""
    return np.maximum(np.maximum(low - value, value - high), 0.0)


def near_target(status, stats: np.ndarray, target: dict, settings: FitSettings,
                windows: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(near mask, distance in tolerances) of probe runs: ok, rate within the rate tolerance
    (decades) and ISI CV within its tolerance where both runs have one — of the target's
    values, or, given the recording's ``probe_windows``, of the range its windows show."""
    windows = windows or {}
    rate = np.log10(windows.get("rate_mean", [target["rate_mean"]] * 2))
    cv = windows.get("isi_cv_mean", [target["isi_cv_mean"]] * 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        d_rate = _outside(np.log10(stats[:, 0]), *rate) / settings.rate_tolerance
        d_cv = _outside(stats[:, 1], *cv) / settings.cv_tolerance
    d_cv = np.where(np.isfinite(d_cv), d_cv, 0.0)
    distance = np.where(np.isfinite(d_rate), np.maximum(d_rate, d_cv), np.inf)
    near = (np.asarray(status) == "ok") & (distance <= 1.0)
    return near, distance


def target_columns(x: np.ndarray, x_target: np.ndarray) -> np.ndarray:
    """Training features with the columns the target lacks (e.g. burst statistics of a
    recording without bursts) set missing, so the posterior never conditions on them."""
    x = np.array(x, dtype=np.float64, copy=True)
    x[:, ~np.isfinite(np.asarray(x_target, float))] = np.nan
    return x
