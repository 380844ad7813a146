"""MK1 recovery study: train a posterior on a laptop-sized MK1 bank and measure, on
held-out simulations, per-parameter contraction (prior sd / posterior sd) and recovery
error, and the calibration — which parameters the features identify and which stay free."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np



def _settings(config: dict, quick: bool) -> dict:
    settings = dict(config["network"]) | dict(config["bank"]) | dict(config["diagnose"])
    if quick:
        settings |= {k: v for k, v in config.get("quick", {}).items()}
    return settings


def run(config: dict, out: Path, workers: int, quick: bool, progress: bool) -> dict:
    from ..bank import Bank, extend
    from ..features.sets import get_feature_set
    from ..inference.figures import training_curve
    from ..inference.runs import diagnose_on_bank
    from ..inference.train import train_on_bank
    from ..prior import Prior
    from ..simulators import SimulatorSpec

    start = time.perf_counter()
    s = _settings(config, quick)
    sets = [config["features"]] + list(config.get("also_compute", []))
    for name in sets:
        get_feature_set(name)  # unknown set -> UserError before any simulation
    seed, prior = int(config.get("seed", 1)), Prior.load("mk1")
    spec = SimulatorSpec.load("mk1").with_overrides(N=s["N"], duration=s["duration"],
                                                    t_analysis_start=s["t_analysis_start"])

    def say(text):
        if progress:
            print(text, file=sys.stderr, flush=True)

    work = out / "work"
    say(f"simulating {s['n']} + {s['heldout']} MK1 networks (N={s['N']}, {s['duration']:g} s)")
    extend(work / "bank", spec, prior, s["n"], seed, workers=workers, chunk_size=50,
           features=sets, progress=progress)
    extend(work / "heldout", spec, prior, s["heldout"], seed + 1, workers=workers,
           chunk_size=50, features=sets, progress=progress)
    say("training the posterior")
    posterior = train_on_bank(work / "bank", config["features"], seed=seed, progress=progress,
                              **config.get("training", {}))
    posterior.save(work / "posterior")
    say("diagnosing on held-out simulations")
    report = diagnose_on_bank(posterior, work / "heldout", s["cases"], s["samples"], seed,
                              figure=out / "coverage.png")
    ranking = sorted(prior.names, key=lambda n: -report["contraction"][n])
    bursts = _burst_presence(Bank(work / "bank")) if "bursts" in sets else None
    figures = [str(_plot_contraction(report, ranking, out / "contraction.png")),
               str(out / "coverage.png"),
               str(training_curve(posterior.metrics["training_curves"], out / "training_curve.png"))]
    return {"settings": s, "features": config["features"],
            "n_valid": posterior.metrics["n_valid"], "n_invalid": posterior.metrics["n_invalid"],
            "n_cases": report["n_cases"],
            "coverage_max_abs_error": report["coverage_max_abs_error"],
            "tarp_atc": report["tarp_atc"],
            "ranking": [{"parameter": n, "contraction": report["contraction"][n],
                         "recovery_nrmse": report["recovery_nrmse"][n]} for n in ranking],
            "bursts_detected_fraction": bursts, "figures": figures,
            "seconds": round(time.perf_counter() - start, 1)}


def _burst_presence(bank) -> float:
    """Fraction of valid simulations with at least two network bursts (finite features)."""
    data = bank.arrays(features="bursts", status="ok")
    return float(np.isfinite(data["x"]).all(1).mean()) if len(data["x"]) else 0.0


def _plot_contraction(report: dict, ranking: list[str], path: Path) -> Path:
    from ..plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.28 * len(ranking) + 1.5), sharey=True)
    y = np.arange(len(ranking))[::-1]
    axes[0].barh(y, [report["contraction"][n] for n in ranking], color="tab:blue")
    axes[0].axvline(1, color="k", lw=0.8)
    axes[0].set(xlabel="contraction (prior sd / posterior sd; 1 = nothing learned)")
    axes[0].set_yticks(y, ranking, fontsize=8)
    axes[1].barh(y, [report["recovery_nrmse"][n] for n in ranking], color="tab:orange")
    axes[1].axvline(1 / np.sqrt(12), color="k", lw=0.8, ls="--")
    axes[1].set(xlabel="recovery NRMSE (posterior mean; dashed: prior guess)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
