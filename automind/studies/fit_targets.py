"""Fit held-out targets with `automind fit` and with one prior bank of the same size.

Targets are drawn from the prior and simulated at the study's size (a *pool* bank); they are
chosen by a written rule, in index order, never by hand:

- active: status ok, the E population's mean rate in [rate_low, rate_high] Hz, and
  *sustained*: the E rates of the analysed window's two halves within a factor
  1 / ``sustained`` of each other (``E_HALVES``, from the pool's kept spikes);
- asynchronous: active, no network burst detected, mean pairwise E correlation below
  ``async_corr``;
- synchronous (bursting or oscillating): active, and at least ``min_bursts`` network
  bursts or mean pairwise E correlation above ``sync_corr``.

All on the E population (the ``population`` feature set): until session 9 the rule read
``mk1_compact`` (rate and correlation over all units) without the sustained condition, and
of its six targets the three "asynchronous" ones had E rates of 0–0.2 Hz (their activity
was the I population's) and the three "synchronous" ones were E onset transients, silent
after the first 0.2 s of the analysed window (studies/mk1_targets/README.md).

Each target is written as an NWB recording (re-simulated with its pool seed: the same spikes)
and fitted with its budget; the baseline spends the same budget on one prior bank (the
current amortised method), trains one posterior and validates the same number of samples for
every target. Reported per target: yield, how often the truth's own re-simulations are
accepted, the truth's marginal posterior quantiles, information in nats (KL from the prior,
and log q(θ*) − log p(θ*) at the truth), for both methods side by side.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..progress import sayer


def _settings(config: dict, quick: bool) -> dict:
    s = (dict(config["network"]) | dict(config["targets"]) | dict(config["fit"])
         | dict(config.get("screen", {})))
    return s | (dict(config.get("quick", {})) if quick else {})


#: the feature set the rule reads (E population) and its sustained-activity measure
RULE_FEATURES = "population"


def e_halves(bank, data: dict, t_start: float) -> np.ndarray:
    """Per row of ``data`` (index, status) of a bank that kept spikes: the smaller over the
    larger of the E population's rates in the two halves of [t_start, t_end) (0 when silent
    or not ok)."""
    from ..features.spikedata import SpikeData

    out = np.zeros(len(data["index"]))
    for row, (index, status) in enumerate(zip(data["index"], data["status"])):
        if status != "ok":
            continue
        spikes = SpikeData.from_simulation(bank.spikes(int(index)))
        E = spikes.select("E") if "E" in spikes.groups else spikes
        middle = (t_start + E.duration) / 2
        counts = np.array([((E.times >= t_start) & (E.times < middle)).sum(),
                           (E.times >= middle).sum()], float)
        out[row] = counts.min() / counts.max() if counts.max() > 0 else 0.0
    return out


def select_targets(data: dict, names: list[str], s: dict,
                   sustained: np.ndarray | None = None) -> list[tuple[int, str]]:
    """(pool index, kind) of the targets by the module's rule, in index order."""
    col = {n: k for k, n in enumerate(names)}
    x = data["x"]
    rate, corr = x[:, col["rate_mean"]], x[:, col["corr_mean"]]
    n_bursts = x[:, col["burst_rate"]] * s["duration_analysed"] if "burst_rate" in col else 0 * rate
    ok = (data["status"] == "ok") & (rate >= s["rate_low"]) & (rate <= s["rate_high"])
    n_bursts = np.nan_to_num(n_bursts)
    if sustained is not None:
        ok = ok & (np.asarray(sustained) >= s.get("sustained", 0.5))
    asynchronous = ok & (n_bursts < 1) & (np.nan_to_num(corr, nan=1) < s["async_corr"])
    synchronous = ok & ((n_bursts >= s["min_bursts"]) | (np.nan_to_num(corr) > s["sync_corr"]))
    chosen = [(int(i), "asynchronous") for i in data["index"][asynchronous][:s["asynchronous"]]]
    chosen += [(int(i), "synchronous") for i in data["index"][synchronous][:s["synchronous"]]]
    return chosen


def run(config: dict, out: Path, workers: int, quick: bool, progress: bool) -> dict:
    from ..bank import Bank, extend
    from ..fit import fit
    from ..fit.plan import study_fit_options
    from ..fit.baseline import consistent_mass_gain, evaluate, prior_bank_posterior
    from ..inference.noise import NoiseModel
    from ..prior import Prior
    from ..simulators import SimulatorSpec

    start = time.perf_counter()
    s = _settings(config, quick)
    s["duration_analysed"] = s["duration"] - s["t_analysis_start"]
    seed, features = int(config.get("seed", 1)), config.get("features", "mk1_compact")
    model = config.get("model", "mk1")
    prior = Prior.load(config.get("prior", model))
    spec = SimulatorSpec.load(model).with_overrides(N=s["N"], duration=s["duration"],
                                                    t_analysis_start=s["t_analysis_start"])

    say = sayer(progress)

    work = out / "work"
    say(f"pool: {s['pool']} prior draws at N={s['N']}, {s['duration']:g} s, to choose targets from")
    extend(work / "pool", spec, prior, s["pool"], seed, workers=workers, chunk_size=25,
           features=[features, RULE_FEATURES], keep_spikes=True, progress=progress)
    pool = Bank(work / "pool")
    data = pool.arrays(features=features)
    rule_data = pool.arrays(features=RULE_FEATURES)
    targets = select_targets(rule_data, pool.feature_sets[RULE_FEATURES]["names"], s,
                             e_halves(pool, rule_data, s["t_analysis_start"]))
    if not targets:
        from ..errors import UserError

        raise UserError(f"no target in the pool of {s['pool']} satisfies the selection rule; "
                        "grow [targets] pool")
    say(f"targets: {targets}")
    recordings = {k: _write_target(spec, prior, data, k, seed, work) for k, _ in targets}

    fit_options = study_fit_options(s)
    rows = []
    for k, kind in targets:
        theta = data["theta"][data["index"] == k][0]
        say(f"target {k} ({kind}): fit with a budget of {s['budget']}")
        t0 = time.perf_counter()
        summary = fit(recordings[k], work / f"fit_{k}", simulator=spec, features=features,
                      budget=s["budget"], workers=workers, progress=progress, truth=theta,
                      seed=seed + k, report=not quick, **fit_options)
        fit_seconds = time.perf_counter() - t0
        x = np.array(_load_x(work / f"fit_{k}"))
        say(f"target {k}: one prior bank of {s['budget']} simulations (shared by all targets)")
        baseline = prior_bank_posterior(work / "baseline_bank", spec, prior, features, s["budget"],
                                        seed + 7, x, workers, progress)
        bank = evaluate(baseline, x, work / f"baseline_{k}", summary["n_simulated_final"],
                        truth=theta, seed=seed + k, workers=workers, progress=progress,
                        noise=NoiseModel.load(work / f"fit_{k}" / "final"))
        explored = _explore(work, k, x, summary, s, theta, seed + k, workers, progress)
        rows.append({"index": k, "kind": kind, "truth": dict(zip(prior.names, theta.tolist())),
                     "fit": {key: summary.get(key) for key in (
                         "yield", "n_consistent", "simulations", "nats", "truth_log_ratio_nats",
                         "truth_resimulations_accepted", "truth_in_90pct_intervals",
                         "probe_region_nats", "posterior_yield", "set_sd_over_prior_sd",
                         "truth_in_set_5_95")} | {
                         "refinement_yields": [g["yield"] for g in summary["refinement"]],
                         "seconds": round(fit_seconds, 1)},
                     "explored": explored,
                     "baseline": bank | {"simulations": int(s["budget"])},
                     # validated: the fit's consistent share over the bank posterior's, in nats
                     "consistent_mass_gain_nats": consistent_mass_gain(
                         summary["n_consistent"], summary["n_simulated_final"],
                         bank["n_consistent"], bank["n_simulated_final"])})
        if s.get("screen_half_width"):
            say(f"target {k}: the same fit with the cheap target-rate screen "
                f"({s['screen_half_width']:g} decades)")
            rows[-1]["screen"] = _screened_fit(recordings[k], work, k, spec, prior, features, s,
                                               theta, seed, summary, bank, workers, progress,
                                               quick)
    figures = [_plot(rows, out / "fit_vs_bank.png")]
    result = {"settings": s, "targets": rows}
    if s.get("screen_half_width"):
        from .screen_compare import plot, summarise

        result["screen"] = summarise([r["screen"] for r in rows])
        figures.append(plot([r["screen"] for r in rows], [r["index"] for r in rows],
                            out / "screen_compare.png"))
    return result | {"figures": [str(f) for f in figures],
                     "seconds": round(time.perf_counter() - start, 1)}


def _screened_fit(recording: Path, work: Path, k: int, spec, prior, features: str, s: dict,
                  theta, seed: int, unscreened: dict, bank: dict, workers: int, progress: bool,
                  quick: bool) -> dict:
    """Target ``k`` fitted again, same seed and settings, with the cheap target-rate screen in
    its first probe round (studies/screen_compare.py), into work/fit_K_screened."""
    from ..fit import fit
    from ..fit.baseline import consistent_mass_gain
    from ..fit.plan import study_fit_options
    from .screen_compare import compare

    half_width, table = float(s["screen_half_width"]), s.get("screen_table")
    t0 = time.perf_counter()
    summary = fit(recording, work / f"fit_{k}_screened", simulator=spec, features=features,
                  budget=s["budget"], workers=workers, progress=progress, truth=theta,
                  seed=seed + k, report=not quick, cheap_screen=half_width, cheap_table=table,
                  **study_fit_options(s))
    row = compare(unscreened, summary, spec, prior, half_width, table)
    row["screened"] |= {"seconds": round(time.perf_counter() - t0, 1),
                        "consistent_mass_gain_nats": consistent_mass_gain(
                            summary["n_consistent"], summary["n_simulated_final"],
                            bank["n_consistent"], bank["n_simulated_final"])}
    return row


def _explore(work: Path, k: int, x, summary: dict, s: dict, theta, seed: int, workers: int,
             progress: bool) -> dict | None:
    """``explore`` generations (fit/explore.py) from the fit's consistent set, beyond the fit's
    budget, into work/explore_K: how far the consistent set reaches past the refined one
    (stepping in the refinement's coordinates)."""
    from ..fit.explore import explore
    from ..inference.posterior import load_posterior
    from ..invariance.consistent import set_spread

    generations = int(s.get("explore", 0))
    if not generations or summary["n_consistent"] < 2:
        return None
    posterior = load_posterior(summary["posterior"])
    rows, found = explore(posterior, x, work / f"explore_{k}",
                          Path(summary["consistent_set_folder"]), generations,
                          summary["n_simulated_final"], seed=seed + 13, workers=workers,
                          progress=progress, posterior_path=summary["posterior"],
                          space=s.get("refine_space", "prior"))
    folder = Path(found["consistent_set"]).parent
    return {"generations": rows, "simulations": sum(r["simulations"] for r in rows),
            "set_size": found["set_size"]} | set_spread(folder, posterior.prior, theta)


def _write_target(spec, prior, data: dict, index: int, seed: int, work: Path) -> Path:
    """The pool simulation ``index`` re-run with its pool seed (the same spikes), as NWB."""
    path = work / f"target_{index}.nwb"
    if not path.is_file():
        write_target(spec, prior, data["theta"][data["index"] == index][0], seed, index, path,
                     f"fit_targets study: pool simulation {index}")
    return path


def write_target(spec, prior, theta, seed: int, index: int, path: Path, description: str):
    """Simulate θ with the seed bank ``seed`` gave its row ``index`` (so a pool row's own
    spikes) and write it from ``t_analysis_start`` on as an NWB recording; returns the run."""
    from ..features.spikedata import SpikeData
    from ..recordings.write import write_nwb
    from ..simulators import Simulator
    from ..simulators.execution import simulation_seed

    result = Simulator(spec).run(prior.to_simulator(theta), simulation_seed(seed, index), index)
    write_nwb(SpikeData.from_simulation(result).window(spec.t_analysis_start), path,
              description=description)
    return result


def _load_x(run: Path) -> list:
    import json

    return [np.nan if v is None else v for v in json.loads((run / "fit.json").read_text())["target"]["x"]]


def _plot(rows: list[dict], path: Path) -> Path:
    """Yield of both methods, the fit's yield per refinement generation, the posteriors' own
    information (flow KL from the prior: a claim, not validated by re-simulation), and how
    many parameters' truth the consistent set holds before and after exploration (dotted: 90 %,
    what a set covering the consistent configurations would reach)."""
    from ..plots import _pyplot

    plt = _pyplot()
    labels = [f"{r['index']}\n{r['kind'][:5]}" for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.6))
    for ax, key, title in ((axes[0], "yield", "yield at equal simulations"),
                           (axes[2], "nats", "posterior information (nats, not validated)")):
        ax.bar(x - 0.2, [r["fit"][key] for r in rows], 0.4, label="automind fit")
        ax.bar(x + 0.2, [r["baseline"][key] for r in rows], 0.4, label="one prior bank")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set(title=title)
    axes[0].set_ylim(0, 1.2)  # room for the legend above the bars
    axes[0].legend(fontsize=8, loc="upper center", ncol=2)
    for r in rows:
        yields = [r["fit"].get("posterior_yield") or 0.0] + r["fit"].get("refinement_yields", [])
        axes[1].plot(range(len(yields)), yields, "o-", ms=3, label=f"{r['index']} {r['kind'][:5]}")
    axes[1].set(title="fit: yield per refinement generation", xlabel="generation (0: posterior)",
                ylabel="yield")
    axes[1].legend(fontsize=7)
    refined = [r["fit"].get("truth_in_set_5_95") or 0 for r in rows]
    explored = [(r.get("explored") or {}).get("truth_in_set_5_95") or 0 for r in rows]
    axes[3].bar(x - 0.2, refined, 0.4, label="refined set")
    axes[3].bar(x + 0.2, explored, 0.4, label="after exploration")
    axes[3].axhline(0.9 * len(rows[0]["truth"]), color="k", ls=":", lw=1)
    axes[3].set_xticks(x, labels, fontsize=8)
    axes[3].set(title="truth inside the set's 5–95 % range", ylabel="parameters")
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
