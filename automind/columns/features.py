"""Features of a column simulation from its population rates: the eight mean rates and, per
layer, the power of the excitatory rate in five bands (Welch, scipy)."""

from __future__ import annotations

import numpy as np

from . import pd

BANDS = ((2.0, 8.0), (8.0, 15.0), (15.0, 30.0), (30.0, 80.0), (80.0, 200.0))
SEGMENT = 0.5  # s, Welch segment (2 Hz resolution)
NAMES = tuple(f"rate_{p}" for p in pd.POPULATIONS) + tuple(
    f"power_{layer}E_{lo:g}-{hi:g}Hz" for layer in pd.LAYERS for lo, hi in BANDS)


def column_features(rates: np.ndarray, record_dt: float) -> np.ndarray:
    """rates (steps, 8) in Hz sampled every ``record_dt`` s -> (28,) raw features: mean rate of
    each population, then band power (Hz², PSD summed over the band × Δf) of each layer's E
    rate; NaN when shorter than one segment or non-finite."""
    from scipy.signal import welch

    rates = np.asarray(rates, dtype=np.float64)
    out = np.full(len(NAMES), np.nan)
    if rates.ndim != 2 or rates.shape[1] != 8 or not np.all(np.isfinite(rates)):
        return out
    out[:8] = rates.mean(axis=0)
    fs = 1.0 / record_dt
    nperseg = int(round(SEGMENT * fs))
    if len(rates) < nperseg:
        return out
    freqs, psd = welch(rates[:, pd.EXCITATORY], fs=fs, window="hann", nperseg=nperseg,
                       noverlap=nperseg // 2, detrend="constant", axis=0)
    df = freqs[1] - freqs[0]
    powers = [[psd[(freqs >= lo) & (freqs < hi), k].sum() * df for lo, hi in BANDS]
              for k in range(4)]
    out[8:] = np.ravel(powers)
    return out
