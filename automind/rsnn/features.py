"""Differentiable features of spike tensors, equal to ``automind.features`` on the same raster.

Input: spike counts in 1 ms bins, ``counts`` (B, T, N) (``bin_ms`` turns a (B, steps, N) spike
tensor into them); units in the column order of ``SpikeData.from_simulation`` (E, then I).
Every function is written with torch operations on ``counts``, so a relaxed (surrogate)
spike tensor carries gradients through it. Definitions follow ``features/stats.py``,
``features/psd.py`` (scipy's Welch: periodic Hann 2000, step 500, mean detrend, density
scaling) and ``features/sets.py`` (psd_bands); bursts get a smooth measure
(``soft_bursts``) since peak detection has no gradient.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..features import stats
from ..features.bursts import MIN_PEAK_RATE, SMOOTHING
from ..features.sets import LOG_FLOOR, PSD_BAND_EDGES, PSD_FREQS

BIN = 1e-3                     # s
PSD_NPERSEG, PSD_STEP = 2000, 500
BURST_KAPPA = 0.05             # sigmoid softness, fraction of the maximum smoothed rate


def bin_ms(z: torch.Tensor, steps_per_ms: int) -> torch.Tensor:
    """(B, steps, N) spikes -> (B, steps // steps_per_ms, N) counts per 1 ms bin."""
    B, steps, N = z.shape
    T = steps // steps_per_ms
    return z[:, :T * steps_per_ms].reshape(B, T, steps_per_ms, N).sum(2)


def unit_rates(counts: torch.Tensor) -> torch.Tensor:
    """(B, N) rate of every unit, Hz."""
    return counts.sum(1) / (counts.shape[1] * BIN)


def rate_mean_std(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rates = unit_rates(counts)
    return rates.mean(1), rates.std(1, unbiased=False)


def _rebin(x: torch.Tensor, width: int, remainder: str) -> torch.Tensor:
    """Sum (B, T, ...) over bins of ``width``; the last partial bin is dropped or, with
    remainder="last", added to the last full bin (as the numpy code's np.minimum)."""
    T = x.shape[1]
    n = T // width
    out = x[:, :n * width].reshape(x.shape[0], n, width, *x.shape[2:]).sum(2)
    if remainder == "last" and n * width < T and n > 0:
        tail = x[:, n * width:].sum(1)
        out = torch.cat([out[:, :-1], (out[:, -1] + tail).unsqueeze(1)], 1)
    return out


def fano(counts: torch.Tensor, width_s: float) -> torch.Tensor:
    """(B,) var / mean of the pooled count in bins of ``width_s`` (NaN if < 2 bins or no spikes)."""
    width = int(round(width_s / BIN))
    pooled = _rebin(counts.sum(2), width, "drop")
    if pooled.shape[1] < 2:
        return torch.full(counts.shape[:1], math.nan, dtype=counts.dtype)
    mean = pooled.mean(1)
    var = pooled.var(1, unbiased=False)
    return torch.where(mean > 0, var / mean, torch.full_like(mean, math.nan))


def _pairs(active: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded pair sample of ``stats.mean_pair_correlation`` (positions into ``active``)."""
    rng = np.random.default_rng(seed)
    if len(active) * (len(active) - 1) // 2 <= n_pairs:
        return np.triu_indices(len(active), 1)
    a = rng.integers(0, len(active), 2 * n_pairs)
    b = rng.integers(0, len(active), 2 * n_pairs)
    distinct = a != b
    return a[distinct][:n_pairs], b[distinct][:n_pairs]


def corr_mean(counts: torch.Tensor, width_s: float = stats.CORR_BIN,
              n_pairs: int = stats.CORR_PAIRS, seed: int = 0) -> torch.Tensor:
    """(B,) mean Pearson correlation of binned counts over the same seeded pairs of active
    units as the numpy feature (which units are active is read from the forward values)."""
    binned = _rebin(counts, int(round(width_s / BIN)), "last")        # (B, n_bins, N)
    out = []
    for b in range(counts.shape[0]):
        active = np.flatnonzero(counts[b].detach().sum(0).cpu().numpy() > 0)
        if binned.shape[1] < 2 or len(active) < 2:
            out.append(torch.tensor(math.nan, dtype=counts.dtype))
            continue
        ia, ib = _pairs(active, n_pairs, seed)
        x = binned[b][:, active]
        x = x - x.mean(0, keepdim=True)
        norm = x.square().sum(0).sqrt()
        ok = torch.as_tensor(((norm[ia] * norm[ib]) > 0).detach().cpu().numpy())
        if not ok.any():
            out.append(torch.tensor(math.nan, dtype=counts.dtype))
            continue
        ia, ib = torch.as_tensor(ia)[ok], torch.as_tensor(ib)[ok]
        r = (x[:, ia] * x[:, ib]).sum(0) / (norm[ia] * norm[ib])
        out.append(r.mean())
    return torch.stack(out)


def synchrony_chi(counts: torch.Tensor) -> torch.Tensor:
    """(B,) Golomb's χ on 1 ms counts: sqrt(var of the population mean / mean unit variance)."""
    return torch.sqrt(counts.mean(2).var(1, unbiased=False) / counts.var(1, unbiased=False).mean(1))


def population_rate(counts: torch.Tensor) -> torch.Tensor:
    """(B, T) mean rate per unit, Hz (``SpikeData.population_rate`` at 1 ms)."""
    return counts.sum(2) / (counts.shape[2] * BIN)


def hann(n: int, dtype=torch.float64) -> torch.Tensor:
    """Periodic Hann window (scipy's get_window("hann", n))."""
    return 0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(n, dtype=dtype) / n)


def welch(x: torch.Tensor, fs: float, nperseg: int, step: int) -> torch.Tensor:
    """(B, nperseg // 2 + 1) one-sided Welch density of (B, T) signals, as scipy.signal.welch
    (periodic Hann, constant detrend per segment, mean over segments)."""
    window = hann(nperseg, x.dtype).to(x.device)
    segments = x.unfold(1, nperseg, step)                      # (B, S, nperseg)
    segments = segments - segments.mean(2, keepdim=True)
    spectrum = torch.fft.rfft(segments * window, dim=2)
    power = (spectrum.real ** 2 + spectrum.imag ** 2) / (fs * window.square().sum())
    scale = torch.full((power.shape[2],), 2.0, dtype=x.dtype, device=x.device)
    scale[0] = 1.0
    if nperseg % 2 == 0:
        scale[-1] = 1.0
    return (power * scale).mean(1)


def psd(counts: torch.Tensor) -> torch.Tensor:
    """(B, 990) the ``psd`` feature set: Welch PSD of the population rate at 0.5-495 Hz
    (pass the E columns for the simulations' E population); NaN if shorter than 2 s."""
    rate = population_rate(counts)
    if rate.shape[1] < PSD_NPERSEG:
        return torch.full((counts.shape[0], len(PSD_FREQS)), math.nan, dtype=counts.dtype)
    return welch(rate, 1 / BIN, PSD_NPERSEG, PSD_STEP)[:, 1:len(PSD_FREQS) + 1]


def psd_bands(spectrum: torch.Tensor) -> torch.Tensor:
    """(B, 25) mean PSD in the bands of ``features.sets.PSD_BAND_EDGES``."""
    return torch.stack([spectrum[:, lo:hi].mean(1)
                        for lo, hi in zip(PSD_BAND_EDGES[:-1], PSD_BAND_EDGES[1:])], 1)


def band_power(spectrum: torch.Tensor, f1: float, f2: float) -> torch.Tensor:
    """(B,) Σ PSD·Δf over f1 <= f <= f2 (the 990-bin spectrum)."""
    keep = torch.as_tensor((PSD_FREQS >= f1) & (PSD_FREQS <= f2))
    return spectrum[:, keep].sum(1) * (PSD_FREQS[1] - PSD_FREQS[0])


def relative_band_power(spectrum: torch.Tensor, f1: float, f2: float) -> torch.Tensor:
    return band_power(spectrum, f1, f2) / band_power(spectrum, 1.0, 200.0)


def log10_floor(x: torch.Tensor) -> torch.Tensor:
    """log10(max(x, 1e-12)), the transform inference applies."""
    return torch.log10(torch.clamp(x, min=LOG_FLOOR))


def gaussian_smooth(x: torch.Tensor, sigma_bins: float, truncate: float = 4.0) -> torch.Tensor:
    """(B, T) smoothed as scipy.ndimage.gaussian_filter1d (mode 'reflect': edge repeated)."""
    radius = int(truncate * sigma_bins + 0.5)
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (k / sigma_bins) ** 2)
    kernel = kernel / kernel.sum()
    T = x.shape[1]
    if T <= radius:
        raise ValueError(f"gaussian_smooth needs more than {radius} samples, got {T}")
    left, right = x[:, :radius].flip(1), x[:, -radius:].flip(1)
    pieces = torch.cat([left, x, right], 1)
    return torch.nn.functional.conv1d(pieces.unsqueeze(1), kernel.view(1, 1, -1)).squeeze(1)[:, :T]


def soft_bursts(rate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(soft_burst_rate Hz, burst_fraction) of (B, T) population rates at 1 ms: s = rate
    smoothed as the burst detector, σ_k = sigmoid((s_k − max s/2)/κ), κ = 0.05 max s;
    rate = Σ relu(σ_k − σ_{k−1}) / T, fraction = mean σ; NaN where max s < 5 Hz."""
    s = gaussian_smooth(rate, SMOOTHING / BIN)
    peak = s.max(1, keepdim=True).values
    sigma = torch.sigmoid((s - 0.5 * peak) / (BURST_KAPPA * peak.clamp(min=1e-12)))
    duration = rate.shape[1] * BIN
    burst_rate = torch.relu(sigma[:, 1:] - sigma[:, :-1]).sum(1) / duration
    fraction = sigma.mean(1)
    valid = peak.squeeze(1) >= MIN_PEAK_RATE
    nan = torch.full_like(fraction, math.nan)
    return torch.where(valid, burst_rate, nan), torch.where(valid, fraction, nan)
