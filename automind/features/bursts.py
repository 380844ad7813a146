"""Network bursts: episodes of the smoothed population rate above a threshold.

The 1 ms population rate (per unit) is smoothed with a Gaussian (sd ``SMOOTHING``). A
burst is an episode where the smoothed rate exceeds ``max(MIN_PEAK_RATE, BASELINE_FACTOR
× its median)``; episodes separated by less than ``MERGE_GAP`` of sub-threshold rate are
one burst. Each burst's peak is its highest smoothed rate; its width is measured at 95 %
relative height (scipy.signal.peak_widths) around that peak, with the bases of its
prominence searched within the episode ± ``MERGE_GAP``. Fewer than 2 bursts: every
burst feature is missing (NaN) and ``burst_valid`` is 0 — never zero-filled.

Version 2 of the ``bursts`` set kept peaks with a prominence of half the *largest* peak,
at least 1 s apart: on real cultures, whose bursts vary tenfold in size, it missed two
bursts in three (docs/recordings.md). The threshold is now fixed by the rate's floor and
its median, so one large burst no longer hides the others.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import peak_widths

from .spikedata import SpikeData

BIN = 1e-3             # s
SMOOTHING = 0.02       # s, sd of the Gaussian kernel (our choice; the reference code's is not public)
MIN_PEAK_RATE = 5.0    # Hz per unit: the smoothed rate must exceed this inside a burst
BASELINE_FACTOR = 2.0  # ... and this multiple of its median (tonic activity is no burst)
MERGE_GAP = 0.5        # s: episodes closer than this are one burst
REL_HEIGHT = 0.95

NAMES = ("burst_num", "burst_interval_mean", "burst_interval_cv", "burst_width_mean",
         "burst_offset_time_mean", "burst_peak_rate_mean", "burst_rate", "burst_valid")


def burst_threshold(smooth: np.ndarray) -> float:
    """The rate (Hz per unit) a smoothed population rate must exceed inside a burst."""
    return max(MIN_PEAK_RATE, BASELINE_FACTOR * float(np.median(smooth))) if len(smooth) else MIN_PEAK_RATE


def episodes(above: np.ndarray, merge_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """[start, stop) bin ranges of runs of True, runs closer than ``merge_bins`` joined."""
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not len(starts):
        return starts, stops
    new = np.concatenate([[True], starts[1:] - stops[:-1] >= merge_bins])
    return starts[new], np.concatenate([stops[np.flatnonzero(new)[1:] - 1], stops[-1:]])


def _bases(smooth, peaks, starts, stops, gap):
    """Prominence data for peak_widths, searched within each burst's episode ± ``gap``:
    on a noisy rate, scipy's unbounded search finds bases seconds away (widths of seconds)."""
    left = np.array([lo + int(np.argmin(smooth[lo:p + 1])) for lo, p in
                     zip(np.maximum(starts - gap, 0), peaks)], dtype=np.intp)
    right = np.array([p + int(np.argmin(smooth[p:hi])) for p, hi in
                      zip(peaks, np.minimum(stops + gap, len(smooth)))], dtype=np.intp)
    prominences = smooth[peaks] - np.maximum(smooth[left], smooth[right])
    return prominences, left, right


def detect_bursts(rate: np.ndarray, bin_size: float = BIN, smoothing: float = SMOOTHING) -> dict:
    """Peaks (s), widths (s), offsets (peak to burst end, s), peak rates (Hz), the left and
    right ends at 95 % height (s) of bursts; ``smooth`` and ``threshold`` for plotting."""
    smooth = gaussian_filter1d(rate.astype(float), smoothing / bin_size) if len(rate) else rate
    threshold = burst_threshold(smooth)
    empty = {"smooth": smooth, "threshold": threshold, "peaks": np.zeros(0),
             "widths": np.zeros(0), "offsets": np.zeros(0), "heights": np.zeros(0),
             "left": np.zeros(0), "right": np.zeros(0)}
    if not len(smooth) or smooth.max() <= threshold:
        return empty
    gap = max(1, int(round(MERGE_GAP / bin_size)))
    starts, stops = episodes(smooth > threshold, gap)
    peaks = np.array([start + int(np.argmax(smooth[start:stop]))
                      for start, stop in zip(starts, stops)], dtype=np.int64)
    with warnings.catch_warnings():  # a peak not above its base has width 0: a value, not a fault
        warnings.filterwarnings("ignore", message="some peaks have a width of 0")
        widths, _, left, right = peak_widths(smooth, peaks, rel_height=REL_HEIGHT,
                                             prominence_data=_bases(smooth, peaks, starts, stops,
                                                                    gap))
    return {"smooth": smooth, "threshold": threshold, "peaks": peaks * bin_size,
            "widths": widths * bin_size, "offsets": (right - peaks) * bin_size,
            "heights": smooth[peaks], "left": left * bin_size, "right": right * bin_size}


#: features that are 0 or 1 (the acceptance's noise floors their σ at a Bernoulli's)
INDICATORS = ("burst_valid",)
#: features that count events per analysed second: their step is 1 / the analysed duration
COUNT_RATES = ("burst_rate",)


def feature_quanta(names, analysed_seconds: float) -> np.ndarray:
    """The smallest step each named feature takes — 1 for ``INDICATORS``, 1/T for
    ``COUNT_RATES`` over T analysed seconds, 0 for continuous features — which the
    acceptance's noise model floors σ with (``inference.noise.quantum_sd``)."""
    names = np.asarray(names)
    return np.where(np.isin(names, INDICATORS), 1.0,
                    np.where(np.isin(names, COUNT_RATES), 1.0 / analysed_seconds, 0.0))


def burst_features(data: SpikeData) -> np.ndarray:
    """The ``bursts`` feature vector (order: NAMES)."""
    found = detect_bursts(data.population_rate(BIN))
    n = len(found["peaks"])
    values = np.full(len(NAMES), np.nan)
    values[NAMES.index("burst_rate")] = n / data.duration
    values[NAMES.index("burst_valid")] = float(n >= 2)
    if n >= 2:
        intervals = np.diff(found["peaks"])
        values[:6] = [n, intervals.mean(),
                      intervals.std() / intervals.mean() if len(intervals) >= 2 else np.nan,
                      found["widths"].mean(), found["offsets"].mean(), found["heights"].mean()]
    return values
