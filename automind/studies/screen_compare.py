"""The same fit with and without the cheap model's target-rate screen (``fit --cheap-screen``,
docs/cheap.md; issue 16): probe simulations saved, and the fit's quality either way.

The screened fit runs with the unscreened one's seed, so its first probe round draws the same
θ and simulates the subset the screen keeps; everything after depends on what was learned.
Beside the two fits, the window is applied offline to the unscreened first round: the share of
its near-target runs the screen would have kept (its recall on the very draws it screens).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: the fit summary's quality figures compared with and without the screen
QUALITY = ("yield", "n_consistent", "simulations", "truth_resimulations_accepted",
           "truth_in_90pct_intervals", "probe_region_nats", "nats")


def probe_cost(run: Path) -> dict:
    """A fit's probe rounds: rows drawn, simulated, screened, and the simulated runs' summed
    engine time (``run_time``, seconds)."""
    from ..bank import Bank

    drawn = simulated = 0
    seconds = 0.0
    for folder in sorted((Path(run) / "probe").glob("r[0-9]*")):
        table = Bank(folder).table()
        ran = table["status"] != "screened"
        drawn += len(ran)
        simulated += int(ran.sum())
        seconds += float(np.nansum(table["run_time"].astype(float)[ran]))
    return {"drawn": drawn, "simulated": simulated, "screened": drawn - simulated,
            "run_seconds": round(seconds, 1)}


def window_recall(run: Path, spec, prior, half_width: float, table=None) -> dict:
    """The target-rate window (``half_width`` decades, ``table``) applied to the first probe
    round of an unscreened fit ``run`` of ``spec`` and ``prior``: the share of its draws it
    keeps and of its near-target runs (as the fit labels them) it keeps."""
    from ..bank import Bank
    from ..cheap.screen import RateWindowScreen
    from ..features.sets import get_feature_set
    from ..fit.plan import FitSettings
    from ..fit.target import near_target, probe_statistics
    record = json.loads((Path(run) / "fit.json").read_text())
    settings = FitSettings(**record["settings"])
    spec = spec.with_overrides(duration=settings.probe_duration)
    fs = get_feature_set(settings.features)
    data = Bank(Path(run) / "probe" / "r1").arrays(features=fs.name)
    windows = json.loads((Path(run) / "probe" / "windows.json").read_text()) or None
    near, _ = near_target(data["status"], probe_statistics(data["x"], fs.names),
                          record["target"], settings, windows)
    screen = RateWindowScreen.for_spec(spec, prior, record["target"]["rate_mean"], half_width,
                                       table, getattr(fs, "units", "all"))
    keep = screen.keep(data["theta"])
    return {"draws": int(len(keep)), "kept": float(keep.mean()), "near": int(near.sum()),
            "near_kept": int((near & keep).sum()),
            "near_recall": float((near & keep).sum() / max(int(near.sum()), 1))}


def compare(unscreened: dict, screened: dict, spec, prior, half_width: float,
            table=None) -> dict:
    """One target's row: both fits' probe costs and quality figures (their summaries), and the
    window's recall on the unscreened first round."""
    def side(summary):
        return {"probe": probe_cost(Path(summary["run"]))} | {k: summary.get(k) for k in QUALITY}

    return {"half_width_decades": half_width, "unscreened": side(unscreened),
            "screened": side(screened),
            "window_on_unscreened_round_1": window_recall(Path(unscreened["run"]), spec, prior,
                                                          half_width, table)}


def summarise(rows: list[dict]) -> dict:
    """Over targets: probe simulations and engine time with / without the screen, and the
    quality figures side by side."""
    def total(which, key):
        return sum(r[which]["probe"][key] for r in rows)

    out = {"targets": len(rows),
           "probe_simulations": {w: total(w, "simulated") for w in ("unscreened", "screened")},
           "probe_run_seconds": {w: round(total(w, "run_seconds"), 1)
                                 for w in ("unscreened", "screened")}}
    out["probe_simulations_saved"] = 1 - (out["probe_simulations"]["screened"]
                                          / max(out["probe_simulations"]["unscreened"], 1))
    out["probe_seconds_saved"] = 1 - (out["probe_run_seconds"]["screened"]
                                      / max(out["probe_run_seconds"]["unscreened"], 1e-9))
    for key in ("yield", "truth_resimulations_accepted", "truth_in_90pct_intervals"):
        out[f"median_{key}"] = {w: _median([r[w][key] for r in rows])
                                for w in ("unscreened", "screened")}
    out["median_window_near_recall"] = _median(
        [r["window_on_unscreened_round_1"]["near_recall"] for r in rows])
    return out


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def plot(rows: list[dict], indices: list, path: Path) -> Path:
    """Probe simulations, probe engine time and yield per target, with and without the
    screen."""
    from ..plots import _pyplot

    plt = _pyplot()
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    panels = ((lambda r, w: r[w]["probe"]["simulated"], "probe simulations run"),
              (lambda r, w: r[w]["probe"]["run_seconds"], "probe engine time (s)"),
              (lambda r, w: r[w]["yield"], "yield of the fit"))
    for ax, (value, title) in zip(axes, panels):
        for shift, which in ((-0.2, "unscreened"), (0.2, "screened")):
            ax.bar(x + shift, [value(r, which) or 0 for r in rows], 0.4, label=which)
        ax.set_xticks(x, [str(k) for k in indices], fontsize=8)
        ax.set(title=title, xlabel="target")
    axes[0].set_ylim(0, 1.3 * max(r["unscreened"]["probe"]["drawn"] for r in rows))
    axes[2].set_ylim(0, 1.15)
    axes[0].legend(fontsize=8, loc="upper center", ncol=2)  # above the bars
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
