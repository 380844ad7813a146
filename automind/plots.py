"""Figures people look at: raster, population rate with detected bursts, and PSD.

Everything is drawn from a SpikeData, so simulations and recordings look the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = {"E": "tab:blue", "I": "tab:red"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_spikes(data, path: Path, title: str = "", max_units: int = 200,
                t_window: tuple[float, float] | None = None, smoothing: float = 5e-3) -> Path:
    """Raster (up to ``max_units`` units per group), population rate with network bursts
    marked (Gaussian ``smoothing`` for display; detection uses its own) and the Welch PSD
    of the 1 ms population rate, to PNG or PDF."""
    from scipy.ndimage import gaussian_filter1d

    from .features.bursts import detect_bursts
    from .features.sets import PSD_BIN, PSD_SEGMENT, population
    from .features.psd import rate_psd

    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), gridspec_kw={"height_ratios": [2, 1, 1.2]})
    t0, t1 = t_window or (0.0, data.duration)
    groups = data.groups or {"all": data.units}
    row = 0
    for name, members in groups.items():
        shown = members[:max_units]
        keep = np.isin(data.unit_ids, shown) & (data.times >= t0) & (data.times < t1)
        position = np.searchsorted(shown, data.unit_ids[keep]) + row
        axes[0].plot(data.times[keep], position, ".", ms=1.2, color=COLOURS.get(name, "k"),
                     label=f"{name} ({len(members)} units)")
        row += len(shown)
    axes[0].set(ylabel="unit", xlim=(t0, t1))
    axes[0].legend(loc="upper right", markerscale=8, frameon=False)

    pop = population(data)
    rate = pop.population_rate(PSD_BIN)
    t = np.arange(len(rate)) * PSD_BIN
    window = (t >= t0) & (t < t1)
    shown_rate = gaussian_filter1d(rate, smoothing / PSD_BIN) if smoothing and len(rate) else rate
    axes[1].plot(t[window], shown_rate[window], lw=0.8, color="k")
    bursts = detect_bursts(rate)
    for peak, left, right in zip(bursts["peaks"], bursts["left"], bursts["right"]):
        if t0 <= peak < t1:
            axes[1].axvspan(left, right, color="tab:orange", alpha=0.25, lw=0)
    label = "E" if "E" in data.groups else "population"
    axes[1].set(xlabel="time (s)", ylabel=f"{label} rate (Hz)", xlim=(t0, t1))
    if len(bursts["peaks"]):
        n = len(bursts["peaks"])
        axes[1].set_title(f"{n} network burst{'s' if n > 1 else ''} (shaded)", fontsize=9)
    freqs, psd = rate_psd(rate, PSD_BIN, PSD_SEGMENT)
    if len(freqs):
        axes[2].loglog(freqs, psd, color="k", lw=0.8)
    axes[2].set(xlabel="frequency (Hz)", ylabel=f"PSD of {label} rate (Hz²/Hz)")
    fig.suptitle(title or f"{data.n_units} units, {data.n_spikes} spikes, {data.duration:g} s")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
