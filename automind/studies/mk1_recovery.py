"""MK1 recovery study: train a posterior on a laptop-sized MK1 bank and measure, on
held-out simulations, per-parameter contraction (prior sd / posterior sd) and recovery
error, the information in nats (against shuffled x and validity), contraction along the
posterior's principal directions, and the calibration (marginal and latent-space coverage,
TARP) — which parameters the features identify and which stay free."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..progress import sayer


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
    trained = _as_list(config["features"])
    stored = list(dict.fromkeys(trained + _as_list(config.get("also_compute", []))))
    for name in stored:
        get_feature_set(name)  # unknown set -> UserError before any simulation
    seed, prior = int(config.get("seed", 1)), Prior.load("mk1")
    spec = SimulatorSpec.load("mk1").with_overrides(N=s["N"], duration=s["duration"],
                                                    t_analysis_start=s["t_analysis_start"])

    say = sayer(progress)

    work = out / "work"
    say(f"simulating {s['n']} + {s['heldout']} MK1 networks (N={s['N']}, {s['duration']:g} s)")
    extend(work / "bank", spec, prior, s["n"], seed, workers=workers, chunk_size=50,
           features=stored, progress=progress)
    extend(work / "heldout", spec, prior, s["heldout"], seed + 1, workers=workers,
           chunk_size=50, features=stored, progress=progress)
    results, figures = [], []
    for name in trained:
        say(f"training and diagnosing the posterior on feature set {name!r}")
        folder = out / name
        folder.mkdir(exist_ok=True)
        posterior = train_on_bank(work / "bank", name, seed=seed, progress=progress,
                                  **config.get("training", {}))
        posterior.save(work / f"posterior_{name}")
        report = diagnose_on_bank(posterior, work / "heldout", s["cases"], s["samples"], seed,
                                  figure=folder / "coverage.png")
        figures += report["figures"] + [str(training_curve(
            posterior.metrics["training_curves"], folder / "training_curve.png"))]
        ranking = sorted(prior.names, key=lambda n: -report["contraction"][n])
        latent = report["latent_coverage"]
        results.append({
            "features": name, "n_features": len(posterior.config["feature_columns"]),
            "n_valid": posterior.metrics["n_valid"], "n_invalid": posterior.metrics["n_invalid"],
            "n_cases": report["n_cases"],
            # the headline: marginal / latent coverage, TARP, nats, principal contraction
            "coverage_max_abs_error": report["coverage_max_abs_error"],
            "coverage_noise_95": report["coverage_noise_95"],
            "marginal_coverage_max_abs_error": report["marginal_coverage"]["max_abs_error"],
            "latent_coverage_max_abs_error": latent["max_abs_error"] if latent else None,
            "tarp_atc": report["tarp_atc"], "information_nats": report["information"],
            "principal_contraction": report["principal_contraction"],
            "hpd_coverage_max_abs_error": report["hpd_coverage"]["max_abs_error"],
            "ranking": [{"parameter": n, "contraction": report["contraction"][n],
                         "recovery_nrmse": report["recovery_nrmse"][n]} for n in ranking]})
    bursts = _burst_presence(Bank(work / "bank")) if "bursts" in stored else None
    figures.insert(0, str(_plot_contraction(results, out / "contraction.png")))
    return {"settings": s, "results": results, "bursts_detected_fraction": bursts,
            "figures": figures, "seconds": round(time.perf_counter() - start, 1)}


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _burst_presence(bank) -> float:
    """Fraction of valid simulations with at least two network bursts (finite features)."""
    data = bank.arrays(features="bursts", status="ok")
    return float(np.isfinite(data["x"]).all(1).mean()) if len(data["x"]) else 0.0


def _plot_contraction(results: list[dict], path: Path) -> Path:
    """Contraction and recovery error per parameter, one bar colour per feature set; the
    parameters in the order the last (richest) feature set ranks them."""
    from ..plots import _pyplot

    plt = _pyplot()
    order = [r["parameter"] for r in results[-1]["ranking"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.32 * len(order) + 1.8), sharey=True)
    y = np.arange(len(order))[::-1]
    height = 0.8 / len(results)
    for k, result in enumerate(results):
        by_name = {r["parameter"]: r for r in result["ranking"]}
        offset = y + 0.4 - height * (k + 0.5)
        label = f"{result['features']} ({result['n_features']} features)"
        axes[0].barh(offset, [by_name[n]["contraction"] for n in order], height, label=label,
                     color=f"C{k}")
        axes[1].barh(offset, [by_name[n]["recovery_nrmse"] for n in order], height, color=f"C{k}")
    axes[0].axvline(1, color="k", lw=0.8)
    axes[0].set(xlabel="contraction (prior sd / posterior sd; 1 = nothing learned)")
    axes[0].set_yticks(y, order, fontsize=8)
    axes[0].legend(fontsize=8, loc="lower right")
    axes[1].axvline(1 / np.sqrt(12), color="k", lw=0.8, ls="--")
    axes[1].set(xlabel="recovery NRMSE (posterior mean; dashed: prior guess)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
