"""Dataset-comparison study: several synthetic "recordings" (brain areas, organoid ages) are
simulated at documented parameters, written to disk as a lab would hand them over, read
back, and compared with one posterior (``automind compare --posterior``): does the
comparison find the parameters that were changed between datasets, in the right direction,
and leave the others alone?

Config: ``model`` (brunel or mk1), ``features``, ``format`` ("nwb": one file, each dataset's
units in an electrode group named after it, like areas on a Neuropixels probe; "mea": one
``electrode,sample`` CSV per dataset at ``fs`` Hz, like an MEA spike list),
``[network]``/``[bank]``/``[compare]`` sizes, an optional local prior around ``[baseline]``
(``[prior] free`` parameters, the others fixed; ``fraction`` of each range), and ``[datasets]``: name -> {parameter: value}; parameters a dataset
does not give take ``[baseline]``.
"""

from __future__ import annotations

import time
from itertools import combinations
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..progress import sayer

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
    constants = {c.name for c in prior.constants}
    thetas = {}
    for name, values in config["datasets"].items():
        fixed = sorted(set(values) & constants)
        if fixed:
            raise UserError(f"study.toml: dataset {name} changes {fixed}, which the local prior "
                            "holds fixed (add them to [prior] free)")
        values = {k: v for k, v in (baseline | dict(values)).items() if k not in constants}
        unknown = sorted(set(values) - set(prior.names))
        missing = [p for p in prior.names if p not in values]
        if unknown or missing:
            raise UserError(f"study.toml: dataset {name}: unknown parameters {unknown}, "
                            f"missing {missing} (give them in [baseline] or the dataset)")
        theta = np.array([float(values[p]) for p in prior.names])
        outside = [f"{p} = {v:g} not in [{lo:g}, {hi:g}]" for p, v, lo, hi
                   in zip(prior.names, theta, prior.low, prior.high) if not lo <= v <= hi]
        if outside:
            raise UserError(f"study.toml: dataset {name} lies outside the prior: {'; '.join(outside)}")
        thetas[name] = theta
    if len(thetas) < 2:
        raise UserError("study.toml: [datasets] needs at least two datasets to compare")
    return thetas


def study_prior(config: dict, prior):
    """The model's prior, or a local one around [baseline]: ``[prior] free`` lists the
    parameters to infer (the others become constants at the baseline), ``fraction`` keeps
    each free parameter within ±fraction of its range around the baseline (clipped)."""
    import math

    from ..prior import Prior

    local = config.get("prior")
    if not local:
        return prior
    free = list(local.get("free", prior.names))
    fraction = float(local.get("fraction", 1.0))
    baseline = dict(config.get("baseline", {}))
    missing = [p for p in prior.names if p not in baseline]
    unknown = [p for p in free if p not in prior.names]
    if missing or unknown or not 0 < fraction <= 1:
        raise UserError(f"study.toml: a local prior needs 0 < fraction <= 1, free parameters "
                        f"of the model (unknown: {unknown}) and a complete [baseline] "
                        f"(missing: {missing})")
    data = prior.to_dict() | {"name": f"{prior.name}_local",
                              "description": f"{prior.name}: {len(free)} parameters within "
                                             f"±{fraction:g} of each range around the study's "
                                             "baseline, the others fixed there"}
    parameters, constants = [], []
    for entry, par in zip(data["parameter"], prior.parameters):
        value = float(baseline[entry["name"]])
        if entry["name"] not in free:
            value = math.floor(value) if par.discrete == "floor" else value
            constants.append({"name": entry["name"], "value": value, "unit": entry["unit"]})
            continue
        width = fraction * (entry["high"] - entry["low"])
        entry["low"], entry["high"] = max(entry["low"], value - width), min(entry["high"], value + width)
        parameters.append(entry)
    return Prior.from_dict(data | {"parameter": parameters, "constant": constants})


def _spec(config: dict, s: dict):
    model = config.get("model", "brunel")
    if model == "brunel":
        from ..simulators.brunel import reduced_spec

        return reduced_spec(s["N"], s["C_E"], s["duration"], s["t_analysis_start"])
    if model == "mk1":
        from ..simulators import SimulatorSpec

        return SimulatorSpec.load("mk1").with_overrides(N=s["N"], duration=s["duration"],
                                                        t_analysis_start=s["t_analysis_start"])
    raise UserError(f"study.toml: model must be 'brunel' or 'mk1', not {model!r}")


def _excitatory(run, t_start: float):
    from ..features.spikedata import SpikeData

    return SpikeData.from_simulation(run).window(t_start).select("E")


def write_mea(runs: dict, t_start: float, fs: float, folder: Path) -> dict[str, Path]:
    """One ``electrode,sample`` CSV per dataset (an MEA spike list at ``fs`` Hz): each
    excitatory neuron an electrode; electrodes without spikes do not appear, as in a list
    exported from an MEA."""
    paths = {}
    for name, run in runs.items():
        data = _excitatory(run, t_start)
        electrode = np.searchsorted(data.units, data.unit_ids)
        samples = np.floor(data.times * fs).astype(np.int64)
        path = folder / f"{name}.csv"
        np.savetxt(path, np.c_[electrode, samples], fmt="%d", delimiter=",",
                   header="electrode,sample", comments="")
        paths[name] = path
    return paths


def write_areas(runs: dict, t_start: float, path: Path) -> Path:
    """One NWB file holding every dataset's excitatory units (unlabelled, as sorted units of
    a probe; the population features of simulations use the E population too), each
    dataset's units in an electrode group named after it."""
    from ..features.spikedata import SpikeData
    from ..recordings.write import write_nwb

    times, ids, units, groups, offset, duration = [], [], [], {}, 0, None
    for name, run in runs.items():
        data = _excitatory(run, t_start)
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
    prior = study_prior(config, Prior.load(config.get("model", "brunel")))
    thetas = documented_thetas(config, prior)
    spec = _spec(config, s)

    say = sayer(progress)

    fmt = config.get("format", "nwb")
    if fmt not in ("nwb", "mea"):
        raise UserError(f"study.toml: format must be 'nwb' or 'mea', not {fmt!r}")
    work = out / "work"
    bank = work / "bank"
    say(f"simulating {s['n']} networks (N={s['N']}, {s['duration']:g} s) into {bank}")
    extend(bank, spec, prior, s["n"], seed, workers=workers, chunk_size=50,
           features=[feature_set], progress=progress)
    say("training the posterior")
    posterior = train_on_bank(bank, feature_set, seed=seed, progress=progress,
                              **config.get("training", {}))
    posterior.save(work / "posterior")

    names = list(thetas)
    say(f"simulating the {len(names)} datasets and writing them as {fmt} recordings")
    runs = dict(zip(names, resimulate(spec, prior, np.array([thetas[n] for n in names]),
                                      seed + 1000, feature_set, workers=workers)))
    failed = {n: r.status for n, r in runs.items() if r.status != "ok"}
    if failed:
        raise UserError(f"datasets whose simulation did not run through: {failed}; change "
                        "their parameters in study.toml")
    if fmt == "nwb":
        recording = write_areas(runs, spec.t_analysis_start, work / "recordings.nwb")
        targets = {n: fs.compute(read_recording(recording, area=n)) for n in names}
    else:
        files = write_mea(runs, spec.t_analysis_start, float(config["fs"]), work)
        recording, duration = work, spec.duration - spec.t_analysis_start
        targets = {n: fs.compute(read_recording(files[n], fs=float(config["fs"]), duration=duration))
                   for n in names}
    unusable = [n for n, x in targets.items() if not posterior.conditionable(x[None])[0]]
    if unusable:
        raise UserError(f"datasets with missing features ({feature_set}): {unusable}")

    say("comparing the datasets' posteriors")
    samples = {n: posterior.sample(s["samples"], x, seed=seed) for n, x in targets.items()}
    report = compare_posteriors(posterior, targets, out, n_local=s["local"], seed=seed,
                                samples=samples)
    found = _documented_vs_found(report, thetas, prior)
    figure = _plot_shifts(found, prior.names, out / "documented_vs_found.png")
    return {"settings": s, "features": feature_set, "recordings": str(recording),
            "n_valid": posterior.metrics["n_valid"], "n_invalid": posterior.metrics["n_invalid"],
            "datasets": {n: {"documented": dict(zip(prior.names, thetas[n].tolist()))}
                         | dataset_posterior(prior, samples[n])
                         for n in names},
            "pairs": found, "participation_ratio": report["participation_ratio"],
            "figures": report["figures"] + [str(figure)],
            "seconds": round(time.perf_counter() - start, 1)}


def dataset_posterior(prior, theta: np.ndarray, top: int = 3) -> dict:
    """Posterior mean and sd (prior units) of one dataset's samples θ, and their strongest
    pairwise correlations (Pearson, standardised): the compensations within the dataset."""
    names = prior.names
    corr = np.corrcoef(prior.standardise(theta), rowvar=False)
    pairs = sorted(((names[i], names[j], float(corr[i, j])) for i in range(len(names))
                    for j in range(i + 1, len(names))), key=lambda t: -abs(t[2]))[:top]
    return {"posterior_mean": dict(zip(names, theta.mean(0).tolist())),
            "posterior_sd": dict(zip(names, theta.std(0).tolist())),
            "strongest_correlations": [{"pair": [a, b], "pearson": r} for a, b, r in pairs]}


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
