"""Power spectral density of a population rate (the published PSD feature's estimator)."""

from __future__ import annotations

import numpy as np
from scipy import signal


def rate_psd(rate: np.ndarray, bin_size: float = 1e-3, segment: float = 2.0, overlap: float = 0.75,
             fmin: float = 0.5, fmax: float = 495.0) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD (Hann window, ``segment`` s, ``overlap`` fraction) of a rate sampled every
    ``bin_size`` s; returns (freqs, psd) for fmin <= f <= fmax. Recordings shorter than one
    segment use one segment of their own length (coarser frequency resolution)."""
    rate = np.asarray(rate, dtype=float)
    fs = 1.0 / bin_size
    nperseg = min(int(round(segment * fs)), len(rate))
    if nperseg < 2:
        return np.zeros(0), np.zeros(0)
    freqs, psd = signal.welch(rate, fs=fs, window="hann", nperseg=nperseg,
                              noverlap=int(round(nperseg * overlap)), detrend="constant")
    keep = (freqs >= fmin) & (freqs <= fmax)
    return freqs[keep], psd[keep]
