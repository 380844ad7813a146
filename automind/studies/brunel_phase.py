"""Brunel phase study: posteriors for targets in the four regimes of Brunel (2000) —
do they concentrate in the right region of (g, ν_ext)?

Simulates a bank from the prior, trains a posterior, simulates each regime's example
point as a target (new seeds), samples the posterior, and reports per target the
posterior mean / sd and the fraction of posterior mass inside each regime's region.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..progress import sayer

REGIME_COLOURS = {"SR": "tab:red", "AI": "tab:green", "SI_fast": "tab:purple",
                  "SI_slow": "tab:blue"}


def _settings(config: dict, quick: bool) -> dict:
    net = dict(config["network"])
    n_bank, n_samples = config["bank"]["n"], config["posterior"]["samples"]
    if quick:
        q = config.get("quick", {})
        net |= {k: q[k] for k in ("N", "C_E", "duration", "t_analysis_start") if k in q}
        n_bank, n_samples = q.get("n", n_bank), q.get("samples", n_samples)
    return {"network": net, "n_bank": n_bank, "n_samples": n_samples}


def _check(config: dict, prior) -> None:
    for name, theta in config["targets"].items():
        if name not in config["regions"]:
            raise UserError(f"study.toml: target {name!r} has no [regions] entry")
        inside = (np.asarray(theta) >= prior.low) & (np.asarray(theta) <= prior.high)
        if len(theta) != prior.dim or not inside.all():
            raise UserError(f"study.toml: target {name} = {theta} is not a (g, nu_ext) point "
                            f"inside the prior {list(zip(prior.low, prior.high))}")


def in_region(samples: np.ndarray, box) -> np.ndarray:
    g_lo, g_hi, nu_lo, nu_hi = box
    return ((samples[:, 0] >= g_lo) & (samples[:, 0] < g_hi)
            & (samples[:, 1] >= nu_lo) & (samples[:, 1] < nu_hi))


def run(config: dict, out: Path, workers: int, quick: bool, progress: bool) -> dict:
    from ..bank import extend
    from ..inference.train import train_on_bank
    from ..inference.validate import resimulate
    from ..prior import Prior
    from ..simulators.brunel import reduced_spec

    start = time.perf_counter()
    settings = _settings(config, quick)
    net, seed, feature_set = settings["network"], int(config.get("seed", 1)), config["features"]
    prior = Prior.load("brunel")
    _check(config, prior)
    spec = reduced_spec(net["N"], net["C_E"], net["duration"], net["t_analysis_start"])

    say = sayer(progress)

    say(f"simulating {settings['n_bank']} networks (N={net['N']}, C_E={net['C_E']}, "
        f"{net['duration']:g} s) into {out / 'work' / 'bank'}")
    extend(out / "work" / "bank", spec, prior, settings["n_bank"], seed, workers=workers,
           chunk_size=50, features=[feature_set], progress=progress)
    say("training the posterior")
    posterior = train_on_bank(out / "work" / "bank", feature_set, seed=seed, progress=progress)
    names = list(config["targets"])
    truths = np.array([config["targets"][n] for n in names], float)
    say(f"simulating the {len(names)} regime targets and sampling their posteriors")
    runs = resimulate(spec, prior, truths, seed + 1000, feature_set, workers=workers)
    results, samples = {}, {}
    for name, truth, run_ in zip(names, truths, runs):
        if run_.status != "ok" or not posterior.conditionable(run_.features[feature_set][None])[0]:
            results[name] = {"truth": truth.tolist(), "status": run_.status,
                             "note": "target simulation unusable (silent / runaway / missing features)"}
            continue
        drawn = posterior.sample(settings["n_samples"], run_.features[feature_set], seed=seed)
        samples[name] = drawn
        mass = {region: float(in_region(drawn, box).mean())
                for region, box in config["regions"].items()}
        results[name] = {"truth": truth.tolist(), "status": run_.status,
                         "rate_E_hz": run_.rate("E"),
                         "posterior_mean": drawn.mean(0).tolist(),
                         "posterior_sd": drawn.std(0).tolist(),
                         "mass_in_own_region": mass[name], "mass_by_region": mass}
    figures = [str(_plot_posteriors(samples, truths, names, config["regions"], prior,
                                    out / "posteriors.png")),
               str(_plot_targets(runs, names, net["t_analysis_start"], out / "targets.png"))]
    return {"settings": settings, "targets": results, "figures": figures,
            "bank": {"n": settings["n_bank"], "n_valid": posterior.metrics["n_valid"]},
            "seconds": round(time.perf_counter() - start, 1)}


def _plot_posteriors(samples: dict, truths, names, regions: dict, prior, path: Path) -> Path:
    from matplotlib.patches import Rectangle

    from ..plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for region, (g0, g1, n0, n1) in regions.items():
        colour = REGIME_COLOURS.get(region, "0.5")
        ax.add_patch(Rectangle((g0, n0), g1 - g0, n1 - n0, color=colour, alpha=0.08, lw=0))
        ax.text(g0 + 0.1, n1 - 0.15, region.replace("_", " "), color=colour, fontsize=8,
                va="top")
    for name, truth in zip(names, truths):
        colour = REGIME_COLOURS.get(name, "k")
        if name in samples:
            ax.plot(samples[name][:, 0], samples[name][:, 1], ".", ms=1.5, alpha=0.3, color=colour)
        ax.plot(*truth, "x", color="k", ms=8, mew=2)
    ax.set(xlim=(prior.low[0], prior.high[0]), ylim=(prior.low[1], prior.high[1]),
           xlabel="g (relative inhibition)", ylabel="ν_ext / ν_thr",
           title="posterior samples per target (× = truth)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_targets(runs, names, t_start: float, path: Path) -> Path:
    from ..features.spikedata import SpikeData
    from ..plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.5 * len(names)), sharex=True)
    for ax, name, run_ in zip(np.atleast_1d(axes), names, runs):
        data = SpikeData.from_simulation(run_).window(t_start).select("E")
        shown = data.units[:80]
        keep = np.isin(data.unit_ids, shown) & (data.times < 0.5)
        ax.plot(data.times[keep], np.searchsorted(shown, data.unit_ids[keep]), ".", ms=1,
                color=REGIME_COLOURS.get(name, "k"))
        ax.set_ylabel(name.replace("_", " "), fontsize=8)
        ax.set_yticks([])
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.suptitle("target rasters (80 E units, first 0.5 s)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
