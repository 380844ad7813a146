"""Figures people look at: raster, population rate and PSD of one simulation or recording."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_simulation(result, path: Path, title: str = "", max_units: int = 200,
                    t_window: tuple[float, float] | None = None, smoothing: float = 5e-3) -> Path:
    """Raster (a sample of units per population), E population rate (Gaussian ``smoothing``
    s for display; the PSD uses the raw 1 ms rate) and its PSD, to PNG or PDF."""
    from scipy.ndimage import gaussian_filter1d

    from .features.psd import rate_psd

    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), gridspec_kw={"height_ratios": [2, 1, 1.2]})
    t0, t1 = t_window or (0.0, result.t_end)
    colours = {"E": "tab:blue", "I": "tab:red"}
    offset = 0
    for pop in ("E", "I"):
        if pop not in result.spikes:
            continue
        times, ids = result.spikes[pop]
        shown = min(result.n_units[pop], max_units if pop == "E" else max_units // 4)
        keep = (ids < shown) & (times >= t0) & (times < t1)
        axes[0].plot(times[keep], ids[keep] + offset, ".", ms=1.2, color=colours[pop], label=pop)
        offset += shown
    axes[0].set(ylabel="neuron", xlim=(t0, t1))
    axes[0].legend(loc="upper right", markerscale=8, frameon=False)
    rate = result.population_rate("E", 1e-3)
    t = np.arange(len(rate)) * 1e-3
    window = (t >= t0) & (t < t1)
    smooth = gaussian_filter1d(rate, sigma=smoothing / 1e-3) if smoothing else rate
    axes[1].plot(t[window], smooth[window], lw=0.8, color="k")
    axes[1].set(xlabel="time (s)", ylabel=f"E rate (Hz, {smoothing * 1e3:g} ms smoothing)",
                xlim=(t0, t1))
    freqs, psd = rate_psd(rate)
    if len(freqs):
        axes[2].loglog(freqs, psd, color="k", lw=0.8)
    axes[2].set(xlabel="frequency (Hz)", ylabel="PSD of E rate (Hz²/Hz)")
    fig.suptitle(title or f"simulation {result.index}: {result.status}, "
                 f"E {result.rate('E'):.2f} Hz, I {result.rate('I'):.2f} Hz")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
