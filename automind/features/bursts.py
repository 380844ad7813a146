"""Network bursts on the smoothed population rate (the published detection).

Peaks of the Gaussian-smoothed population rate with prominence >= half the maximum rate
(only when that maximum is >= 5 Hz), at least 1 s apart; burst widths at 95 % relative
height (scipy.signal.peak_widths). Fewer than 2 bursts: every burst feature is missing
(NaN) and ``burst_valid`` is 0 — never zero-filled.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks, peak_widths

from .spikedata import SpikeData

BIN = 1e-3            # s
SMOOTHING = 0.02      # s, sd of the Gaussian kernel (our choice; the reference code's is not public)
MIN_PEAK_RATE = 5.0   # Hz
MIN_DISTANCE = 1.0    # s
REL_HEIGHT = 0.95
PROMINENCE = 0.5      # of the maximum smoothed rate

NAMES = ("burst_num", "burst_interval_mean", "burst_interval_cv", "burst_width_mean",
         "burst_offset_time_mean", "burst_peak_rate_mean", "burst_rate", "burst_valid")


def detect_bursts(rate: np.ndarray, bin_size: float = BIN, smoothing: float = SMOOTHING) -> dict:
    """Peaks (s), widths (s), offsets (peak to burst end, s) and peak rates (Hz) of bursts."""
    smooth = gaussian_filter1d(rate.astype(float), smoothing / bin_size) if len(rate) else rate
    empty = {"smooth": smooth, "peaks": np.zeros(0), "widths": np.zeros(0),
             "offsets": np.zeros(0), "heights": np.zeros(0), "left": np.zeros(0),
             "right": np.zeros(0)}
    if not len(smooth) or smooth.max() < MIN_PEAK_RATE:
        return empty
    peaks, _ = find_peaks(smooth, prominence=PROMINENCE * smooth.max(),
                          distance=max(1, int(round(MIN_DISTANCE / bin_size))))
    if not len(peaks):
        return empty
    widths, _, left, right = peak_widths(smooth, peaks, rel_height=REL_HEIGHT)
    return {"smooth": smooth, "peaks": peaks * bin_size, "widths": widths * bin_size,
            "offsets": (right - peaks) * bin_size, "heights": smooth[peaks],
            "left": left * bin_size, "right": right * bin_size}


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
