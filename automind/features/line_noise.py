"""Narrow spectral lines (mains, equipment) in a population rate: found and masked.

Real probes pick up lines no network model produces (T209 aIC: 31.4 Hz, 120 Hz and their
mixtures up to ~490 Hz). Lines are found on a fine Welch spectrum (16 s Hann segments,
0.0625 Hz resolution), where a line stays narrow while a physiological rhythm spreads
over Hz: a line is a peak of log10 power >= ``PROMINENCE`` (x3.2) above its running median
over ±1 Hz — and >= ``SIGNIFICANCE`` robust sd of the estimate's scatter, which matters on
short recordings — with a width at half height <= ``MAX_WIDTH``, at or above ``FMIN`` (below it, narrow peaks of population rates are usually rhythms: delta,
theta, spindles). The feature spectrum (2 s segments) spreads a line over the Hann main
lobe, ±1 Hz; those bins are replaced by log-linear interpolation between their unmasked
neighbours, so the spectrum keeps its length and the masked frequencies are recorded.
"""

from __future__ import annotations

import numpy as np
from scipy import signal
from scipy.ndimage import median_filter

from .spikedata import SpikeData

SEGMENT = 16.0       # s: fine spectrum for finding lines
PROMINENCE = 0.5     # log10 units above the running median
SIGNIFICANCE = 5.0   # ... and at least this many robust sd of the spectrum's scatter
WINDOW = 1.0         # Hz each side: the running median
MAX_WIDTH = 0.5      # Hz, at half prominence
FMIN = 20.0          # Hz
MIN_SEGMENTS = 4     # a recording shorter than 4 fine segments is not searched
MAIN_LOBE = 1.0      # Hz each side of a line masked in the 2 s (feature) spectrum


def find_lines(rate: np.ndarray, bin_size: float = 1e-3, fmin: float = FMIN,
               fmax: float | None = None) -> np.ndarray:
    """Frequencies (Hz) of narrow lines in the spectrum of a rate sampled every ``bin_size`` s."""
    fs = 1.0 / bin_size
    nperseg = int(round(SEGMENT * fs))
    if len(rate) < MIN_SEGMENTS * nperseg // 2 or not np.any(rate):
        return np.zeros(0)
    freqs, psd = signal.welch(np.asarray(rate, float), fs=fs, window="hann", nperseg=nperseg,
                              noverlap=nperseg // 2, detrend="constant")
    keep = (freqs > 0) & (psd > 0)
    freqs, log_psd = freqs[keep], np.log10(psd[keep])
    df = freqs[1] - freqs[0]
    excess = log_psd - median_filter(log_psd, 2 * int(round(WINDOW / df)) + 1, mode="nearest")
    # the estimate's own scatter (robust sd of the excess) sets the bar on short recordings
    scatter = 1.4826 * np.median(np.abs(excess - np.median(excess)))
    peaks, _ = signal.find_peaks(excess, height=max(PROMINENCE, SIGNIFICANCE * scatter),
                                 width=(None, MAX_WIDTH / df), rel_height=0.5)
    lines = freqs[peaks]
    return lines[(lines >= fmin) & (lines <= (fmax if fmax is not None else fs / 2))]


def line_mask(freqs: np.ndarray, lines, half_width: float = MAIN_LOBE) -> np.ndarray:
    """True for frequencies within ``half_width`` Hz of a line."""
    lines = np.asarray(lines, float)
    if not len(lines):
        return np.zeros(len(freqs), bool)
    return (np.abs(np.asarray(freqs)[:, None] - lines[None]) <= half_width + 1e-9).any(1)


def mask_lines(freqs: np.ndarray, psd: np.ndarray, lines) -> np.ndarray:
    """``psd`` with the bins near ``lines`` replaced by log-linear interpolation between the
    nearest unmasked bins (NaN stays NaN; nothing changes without lines)."""
    mask = line_mask(freqs, lines)
    if not mask.any() or mask.all() or not np.isfinite(psd).all():
        return psd
    out = np.array(psd, float, copy=True)
    log_psd = np.log10(np.maximum(out, 1e-300))
    out[mask] = 10 ** np.interp(freqs[mask], freqs[~mask], log_psd[~mask])
    return out


def with_line_mask(data: SpikeData, bin_size: float = 1e-3) -> SpikeData:
    """``data`` whose metadata names the lines of its (E) population rate
    (``masked_lines_hz``), so spectral features computed from it mask them
    (``features.sets.population_psd``)."""
    pop = data.select("E") if "E" in data.groups else data
    lines = find_lines(pop.population_rate(bin_size), bin_size)
    return SpikeData(data.times, data.unit_ids, data.duration, data.units, data.groups,
                     data.source, data.positions,
                     data.metadata | {"masked_lines_hz": [round(float(f), 4) for f in lines],
                                      "line_mask_half_width_hz": MAIN_LOBE})
