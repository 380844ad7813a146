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
    axes[1].plot(t[window], bursts["smooth"][window], color="tab:orange", lw=0.7)
    axes[1].axhline(bursts["threshold"], color="tab:orange", lw=0.6, ls="--")
    label = "E" if "E" in data.groups else "population"
    axes[1].set(xlabel="time (s)", ylabel=f"{label} rate (Hz)", xlim=(t0, t1))
    n = len(bursts["peaks"])
    note = f"{n} bursts (shaded; orange: detection's rate, dashed: threshold)"
    if "E" not in data.groups:  # a recording: the independent participation count beside it
        from .recordings.events import population_events

        events = population_events(data)
        shown_events = events[(events >= t0) & (events < t1)]
        axes[1].plot(shown_events, np.full(len(shown_events), 1.02), "v", ms=3,
                     color="tab:purple", transform=axes[1].get_xaxis_transform(), clip_on=False)
        note += f"; {len(events)} population events (▼)"
    axes[1].set_title(note, fontsize=9)
    freqs, psd = rate_psd(rate, PSD_BIN, PSD_SEGMENT)
    lines = data.metadata.get("masked_lines_hz") or []
    if len(freqs):
        axes[2].loglog(freqs, psd, color="0.6" if lines else "k", lw=0.8,
                       label="as recorded" if lines else None)
    if lines and len(freqs):
        from .features.line_noise import mask_lines

        axes[2].loglog(freqs, mask_lines(freqs, psd, lines), color="k", lw=0.8,
                       label=f"{len(lines)} lines masked (features)")
        for line in lines:
            axes[2].axvline(line, color="tab:red", lw=0.5, alpha=0.5)
        axes[2].legend(frameon=False, fontsize=8)
    axes[2].set(xlabel="frequency (Hz)", ylabel=f"PSD of {label} rate (Hz²/Hz)")
    described = [f"{data.metadata[k]}" for k in ("region",) if k in data.metadata]
    described += [f"DIV {data.metadata['age_div']}"] if "age_div" in data.metadata else []
    fig.suptitle(title or ", ".join(described + [f"{data.n_units} units, {data.n_spikes} spikes, "
                                                 f"{data.duration:g} s"]))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_target_vs_accepted(target, accepted: list, path: Path, max_units: int = 100,
                            t_window: tuple[float, float] | None = None,
                            psd_segment: float = 0.25, sample_label: str = "accepted") -> Path:
    """Target beside re-simulated accepted samples: rasters of the target and the best
    accepted sample, their population rates, and the PSDs of the target and every accepted
    sample (``psd_segment`` s Welch segments, so short runs get a spectrum too).
    ``sample_label`` names the samples (e.g. "closest" when they were not accepted)."""
    from scipy.ndimage import gaussian_filter1d

    from .features.psd import rate_psd
    from .features.sets import PSD_BIN, population

    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
    t0, t1 = t_window or (0.0, target.duration)
    shown = [("target", target, "k")] + ([(f"best {sample_label}", accepted[0], "tab:green")]
                                         if accepted else [])
    for ax, (label, data, colour) in zip(axes[0], shown):
        units = data.units[:max_units]
        keep = np.isin(data.unit_ids, units) & (data.times >= t0) & (data.times < t1)
        ax.plot(data.times[keep], np.searchsorted(units, data.unit_ids[keep]), ".", ms=1,
                color=colour)
        ax.set(title=f"{label}: raster of {len(units)} units", xlabel="time (s)", ylabel="unit",
               xlim=(t0, t1))
    if not accepted:
        axes[0, 1].text(0.5, 0.5, f"no {sample_label} sample", ha="center", va="center")
        axes[0, 1].axis("off")
    for k, (label, data, colour) in enumerate([("target", target, "k")] +
                                              [(sample_label, d, "tab:green") for d in accepted]):
        rate = population(data).population_rate(PSD_BIN)
        t = np.arange(len(rate)) * PSD_BIN
        window = (t >= t0) & (t < t1)
        width, alpha = (1.2, 1.0) if k == 0 else (0.6, 0.35)
        if k <= 3:  # the target and up to three accepted traces stay readable
            axes[1, 0].plot(t[window], gaussian_filter1d(rate, 2)[window], color=colour,
                            lw=width, alpha=alpha, label=label if k < 2 else None, zorder=-k)
        freqs, psd = rate_psd(rate, PSD_BIN, psd_segment)
        if len(freqs):
            axes[1, 1].loglog(freqs, psd, color=colour, lw=width, alpha=alpha,
                              label=label if k < 2 else None, zorder=-k)
    axes[1, 0].set(xlabel="time (s)", ylabel="population rate (Hz)", xlim=(t0, t1))
    axes[1, 0].legend(frameon=False, fontsize=8)
    axes[1, 1].set(xlabel="frequency (Hz)", ylabel="PSD (Hz²/Hz)",
                   title=f"target and {len(accepted)} {sample_label} samples")
    axes[1, 1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
