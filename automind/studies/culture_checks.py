"""Per-recording checks and cross-recording comparisons of ``culture_development``: the
posterior-predictive figures, the set's geometry, ``compare_runs`` over ages and regions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..fit.misfit import (closest_configurations, samples_folder, set_folder, set_size,
                          shown_label)

#: what the studies keep of a fit's summary (``compare_fits`` reads the folders and set size)
FIT_SUMMARY_KEYS = ("yield", "n_consistent", "n_simulated_final", "set_size", "simulations",
                    "nats", "probe_region_nats", "misspecified", "out_of_range_features",
                    "consistent_set_folder", "last_generation_folder", "posterior_yield",
                    "set_sd_over_prior_sd", "closest_misfit")
#: the features shown in the burst-statistics figure (raw units)
SHOWN_FEATURES = ("rate_mean", "isi_cv_mean", "corr_mean", "burst_rate", "burst_interval_mean",
                  "burst_width_mean", "burst_peak_rate_mean")


def load_fit_x(run: Path) -> np.ndarray:
    """The fit's raw target features (fit.json)."""
    import json

    values = json.loads((Path(run) / "fit.json").read_text())["target"]["x"]
    return np.array([np.nan if v is None else v for v in values], float)


def fit_checks(run: Path, summary: dict, target, spec, fs, folder: Path, s: dict,
               workers: int, spread: dict | None = None) -> dict:
    """Posterior predictive check and geometry of one fitted recording (figures in ``folder``):
    ``target`` is the recording as the fit compared it (its target window), ``fs`` its feature
    set; ``s``: shown, min_set, local, conditional."""
    from ..features.sets import units_seen
    from ..features.spikedata import SpikeData
    from ..inference import load_posterior
    from ..plots import plot_target_vs_accepted
    from ..simulators.engine import CompiledModel
    from ..simulators.execution import make_jobs, simulate_jobs

    posterior = load_posterior(summary["posterior"])
    best = closest_configurations(summary, int(s.get("shown", 4)))
    start = spec.t_analysis_start
    sims = []
    if len(best["theta"]):
        results = simulate_jobs(spec, str(CompiledModel.for_spec(spec).directory),
                                make_jobs(posterior.prior, best["theta"], spec.duration,
                                          seeds=best["seed"]), workers)
        sims = [units_seen(fs.name, SpikeData.from_simulation(r).window(start))
                for r in results if r.t_end > start]
    analysed = spec.duration - start
    shown_target = target.window(0.0, min(analysed, target.duration))
    n_accepted = int(best["accepted"].sum())
    label = shown_label(best["accepted"])
    ppc = plot_target_vs_accepted(shown_target, sims, folder / "target_vs_closest.png",
                                  t_window=(0.0, shown_target.duration), sample_label=label)
    x_target = dict(zip(fs.names, fs.compute(target)))
    simulated = [dict(zip(fs.names, fs.compute(d))) for d in sims]
    stats = {name: {"target": _plain(x_target[name]),
                    "simulated": [_plain(v[name]) for v in simulated]} for name in SHOWN_FEATURES}
    bursts = burst_figure(stats, summary.get("out_of_range_features") or [],
                          folder / "burst_statistics.png", spread)
    geometry = set_geometry(summary, posterior, load_fit_x(run), folder / "geometry", s)
    return {"ppc": {"shown": len(sims), "accepted": n_accepted,
                    "distance_noise_sd": [round(float(d), 3) for d in best["distance"]],
                    "features": stats},
            "geometry": geometry,
            "figures": [str(ppc), str(bursts)] + geometry.pop("figures", [])}


def set_geometry(summary: dict, posterior, x, out: Path, s: dict) -> dict:
    """``analyse_set`` on the fit's consistent set when it has ``min_set`` configurations,
    else on the last re-simulated samples (said in ``of``); the refusal's reason when neither
    can."""
    from ..invariance.analysis import analyse_set
    from ..invariance.consistent import load_consistent_set

    consistent = load_consistent_set(set_folder(summary))
    of = "consistent set"
    if len(consistent["u"]) < int(s["min_set"]):
        samples = samples_folder(summary)
        theta = np.load(samples / "samples.npy")
        consistent = {"theta": theta, "u": posterior.prior.standardise(theta)}
        of = "refined samples" if "refine" in samples.parts else "posterior samples"
    try:
        report = analyse_set(posterior, x, consistent, out, n_local=int(s["local"]),
                             n_conditional=int(s["conditional"]), seed=0)
    except UserError as err:
        return {"of": of, "refused": str(err)}
    keep = ("n_configurations", "participation_ratio", "explained_variance_ratio", "pc1",
            "local", "composite_spread", "figures")
    return {"of": of} | {k: report[k] for k in keep if k in report}


def compare_fits(fits: dict[str, dict], out: Path, min_set: int, local: int) -> dict:
    """``compare_runs`` over fits (label -> fit summary) into ``out``: their consistent sets when
    every one holds ``min_set`` configurations, else their last re-simulated samples."""
    from ..invariance.compare import compare_runs

    labels = list(fits)
    use = "consistent" if all(set_size(f) >= int(min_set) for f in fits.values()) else "posterior"
    runs = [set_folder(f) if use == "consistent" else samples_folder(f) for f in fits.values()]
    try:
        report = compare_runs(runs, out, labels, use=use, n_local=int(local))
    except UserError as err:
        return {"compared": use, "refused": str(err)}
    return {"compared": use, "labels": labels, "figures": report.get("figures", []),
            "pairs": {pair: {k: v[k] for k in ("separating_parameters", "principal_angles_deg")
                             if k in v}
                      for pair, v in report.get("pairs", {}).items()}}


def comparisons(rows: list[dict], s: dict, out: Path) -> dict:
    """``compare_fits`` over ``s['ages']`` and ``s['regions']`` (the ones fitted)."""
    by_label = {r["label"]: r for r in rows}
    found = {}
    for name in ("ages", "regions"):
        labels = [label for label in s.get(name, [])
                  if label in by_label and "stopped" not in by_label[label]["fit"]]
        if len(labels) >= 2:
            found[name] = compare_fits({a: by_label[a]["fit"] for a in labels},
                                       out / f"compare_{name}", s["min_set"], s["local"])
    return found


def burst_figure(stats: dict, out_of_range: list[str], path: Path, spread: dict | None = None) -> Path:
    """log10(simulated / target) of spike and burst statistics for the shown re-simulations
    (zeros drawn as triangles at the bottom), the recording's own spread over its windows in
    grey (5-95 %); features the fit's misspecification check flagged are named in red."""
    from ..plots import _pyplot

    plt = _pyplot()
    names, floor = list(stats), -3.0
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for k, name in enumerate(names):
        target = stats[name]["target"]
        values = np.array([v for v in stats[name]["simulated"] if v is not None], float)
        if target is None or target <= 0:
            ax.text(k, 0, "n/a", ha="center", fontsize=7)
            continue
        low_mid_high = (spread or {}).get(name)
        if low_mid_high and low_mid_high[0] > 0:
            ax.bar(k, np.log10(low_mid_high[2] / low_mid_high[0]), 0.5,
                   bottom=np.log10(low_mid_high[0] / target), color="0.85", zorder=-1)
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(len(values))
        positive = values > 0
        ax.plot(k + jitter[positive], np.clip(np.log10(values[positive] / target), floor, None),
                "o", ms=4, color="tab:green", alpha=0.8)
        ax.plot(k + jitter[~positive], np.full((~positive).sum(), floor), "v", ms=5,
                color="tab:green")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylim(floor - 0.2, None)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    for tick, name in zip(ax.get_xticklabels(), names):
        tick.set_color("tab:red" if name in out_of_range else "k")
    ax.set(ylabel="log10(simulated / target)",
           title="closest final samples (green; ▼ zero) vs the target window; grey: the "
                 "recording's windows (5-95 %)")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def summary_figure(rows: list[dict], path: Path) -> Path:
    """Yield and the number of features outside the model's range, per recording."""
    from ..plots import _pyplot

    plt = _pyplot()
    labels = [f"{r['culture']}\nDIV {r['age_div']}" for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].bar(x, [r["fit"]["yield"] for r in rows], color="tab:green")
    axes[0].set(title="yield (consistent / final samples)")
    axes[1].bar(x, [len(r["fit"]["out_of_range_features"] or []) for r in rows], color="tab:red")
    axes[1].set(title="features outside the model's 99 % range")
    for ax in axes:
        ax.set_xticks(x, labels, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plain(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
