"""Dataset-comparison study: several synthetic "recordings" (brain areas, organoid ages) are
simulated at documented parameters, written to disk as a lab would hand them over (one NWB
file, each dataset's units tagged with its area), read back, and compared with one
posterior (``automind compare --posterior``): does the comparison find the parameters that
were changed between datasets, in the right direction, and leave the others alone?

Config: ``[network]``/``[bank]``/``[compare]`` sizes, ``model`` (brunel), ``features``, and
``[datasets]``: name -> {parameter: value}; parameters not given take ``[baseline]``.
"""

from __future__ import annotations

import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np

from ..errors import UserError

#: a documented change smaller than this (prior sd) counts as "unchanged"
CHANGED = 0.05


def _settings(config: dict, quick: bool) -> dict:
    s = dict(config["network"]) | dict(config["bank"]) | dict(config["compare"])
    if quick:
        s |= dict(config.get("quick", {}))
    return s


def documented_thetas(config: dict, prior) -> dict[str, np.ndarray]:
    """{dataset: θ} from [datasets] over [baseline], checked against the prior."""
    baseline = dict(config.get("baseline", {}))
    thetas = {}
    for name, values in config["datasets"].items():
        values = baseline | dict(values)
        unknown = sorted(set(values) - set(prior.names))
        missing = [p for p in prior.names if p not in values]
        if unknown or missing:
            raise UserError(f"study.toml: dataset {name}: unknown parameters {unknown}, "
                            f"missing {missing} (give them in [baseline] or the dataset)")
        theta = np.array([float(values[p]) for p in prior.names])
        if ((theta < prior.low) | (theta > prior.high)).any():
            raise UserError(f"study.toml: dataset {name} = {values} lies outside the prior")
        thetas[name] = theta
    if len(thetas) < 2:
        raise UserError("study.toml: [datasets] needs at least two datasets to compare")
    return thetas


def _spec(config: dict, s: dict):
    if config.get("model", "brunel") != "brunel":
        raise UserError("study.toml: dataset_comparison supports model = 'brunel' so far")
    from ..simulators.brunel import reduced_spec

    return reduced_spec(s["N"], s["C_E"], s["duration"], s["t_analysis_start"])


def write_areas(runs: dict, t_start: float, path: Path) -> Path:
    """One NWB file holding every dataset's excitatory units (unlabelled, as sorted units of
    a probe; the population features of simulations use the E population too), each
    dataset's units in an electrode group named after it."""
    from ..features.spikedata import SpikeData
    from ..recordings.write import write_nwb

    times, ids, units, groups, offset, duration = [], [], [], {}, 0, None
    for name, run in runs.items():
        data = SpikeData.from_simulation(run).window(t_start).select("E")
        duration = data.duration
        times.append(data.times)
        ids.append(data.unit_ids + offset)
        units.append(data.units + offset)
        groups[name] = data.units + offset
        offset += int(data.units.max()) + 1
    combined = SpikeData(np.concatenate(times), np.concatenate(ids), duration,
                         np.concatenate(units), groups)
    return write_nwb(combined, path, description="automind dataset_comparison study: "
                                                 "one simulated network per area")


def run(config: dict, out: Path, workers: int, quick: bool, progress: bool) -> dict:
    from ..bank import extend
    from ..features.sets import get_feature_set
    from ..inference.train import train_on_bank
    from ..inference.validate import resimulate
    from ..invariance.compare import compare_posteriors
    from ..prior import Prior
    from ..recordings import read_recording

    start = time.perf_counter()
    s = _settings(config, quick)
    seed, feature_set = int(config.get("seed", 1)), config["features"]
    fs = get_feature_set(feature_set)
    prior = Prior.load(config.get("model", "brunel"))
    thetas = documented_thetas(config, prior)
    spec = _spec(config, s)

    def say(text):
        if progress:
            print(text, file=sys.stderr, flush=True)

    work = out / "work"
    say(f"simulating {s['n']} networks (N={s['N']}, {s['duration']:g} s) into {work / 'bank'}")
    extend(work / "bank", spec, prior, s["n"], seed, workers=workers, chunk_size=50,
           features=[feature_set], progress=progress)
    say("training the posterior")
    posterior = train_on_bank(work / "bank", feature_set, seed=seed, progress=progress,
                              **config.get("training", {}))
    posterior.save(work / "posterior")

    names = list(thetas)
    say(f"simulating the {len(names)} datasets and writing them to {out / 'recordings.nwb'}")
    runs = dict(zip(names, resimulate(spec, prior, np.array([thetas[n] for n in names]),
                                      seed + 1000, feature_set, workers=workers)))
    failed = {n: r.status for n, r in runs.items() if r.status != "ok"}
    if failed:
        raise UserError(f"datasets whose simulation did not run through: {failed}; change "
                        "their parameters in study.toml")
    recording = write_areas(runs, spec.t_analysis_start, work / "recordings.nwb")
    targets = {n: fs.compute(read_recording(recording, area=n)) for n in names}
    unusable = [n for n, x in targets.items() if not posterior.conditionable(x[None])[0]]
    if unusable:
        raise UserError(f"datasets with missing features ({feature_set}): {unusable}")

    say("comparing the datasets' posteriors")
    report = compare_posteriors(posterior, targets, out, n=s["samples"], n_local=s["local"],
                                seed=seed)
    found = _documented_vs_found(report, thetas, prior)
    figure = _plot_shifts(found, prior.names, out / "documented_vs_found.png")
    return {"settings": s, "features": feature_set, "recordings": str(recording),
            "n_valid": posterior.metrics["n_valid"], "n_invalid": posterior.metrics["n_invalid"],
            "datasets": {n: {"documented": dict(zip(prior.names, thetas[n].tolist()))}
                         for n in names},
            "pairs": found, "participation_ratio": report["participation_ratio"],
            "figures": report["figures"] + [str(figure)],
            "seconds": round(time.perf_counter() - start, 1)}


def _documented_vs_found(report: dict, thetas: dict, prior) -> dict:
    """Per pair: documented and inferred shifts (prior sd), the changed parameters, the
    separating ones, and whether every changed parameter moved in its documented direction."""
    found = {}
    for a, b in combinations(thetas, 2):
        pair = report["pairs"][f"{a} vs {b}"]
        documented = prior.standardise(thetas[b]) - prior.standardise(thetas[a])
        changed = [p for p, d in zip(prior.names, documented) if abs(d) > CHANGED]
        found[f"{a} vs {b}"] = {
            "documented_shift_prior_sd": dict(zip(prior.names, documented.tolist())),
            "inferred_shift_prior_sd": pair["shift_prior_sd"],
            "changed": changed, "separating": pair["separating_parameters"],
            "overlap": pair["overlap"],
            "direction_right": {p: bool(np.sign(pair["shift_prior_sd"][p]) ==
                                        np.sign(documented[prior.names.index(p)]))
                                for p in changed},
            "principal_angles_deg": pair["principal_angles_deg"],
            "local": pair.get("local")}
    return found


def _plot_shifts(found: dict, names: list[str], path: Path) -> Path:
    """Per pair, inferred shift (bars) against the documented one (diamonds), prior sd."""
    from ..plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(found), figsize=(3.2 * len(found) + 1, 0.35 * len(names) + 2),
                             sharey=True, squeeze=False)
    y = np.arange(len(names))[::-1]
    for ax, (pair, result) in zip(axes[0], found.items()):
        ax.barh(y, [result["inferred_shift_prior_sd"][n] for n in names], color="tab:blue",
                label="inferred (posterior means)")
        ax.plot([result["documented_shift_prior_sd"][n] for n in names], y, "kD",
                label="documented")
        ax.axvline(0, color="k", lw=0.6)
        ax.set_title(pair, fontsize=9)
        ax.set_xlabel("shift (prior sd)")
    axes[0, 0].set_yticks(y, names, fontsize=8)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
