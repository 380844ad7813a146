"""Probe-areas study: real Neuropixels recordings, one posterior per brain area, the areas of
each recording compared (``automind compare --posterior``), every answer checked by
re-simulation.

Per area of each ``[recordings]`` file (units selected with ``area=`` and ``quality``, line
noise masked, ``recordings.prepare``), the target is the per-feature median of the feature
vectors of consecutive windows as long as the simulations' analysed part (a simulation
lasts seconds, the recording minutes; per-unit ISI and count statistics depend on the
window). Then, against one prior bank of ``model`` and its NPE posterior:

- the misspecification check of the target against the bank (``inference.misspecification``);
- posterior samples and their comparison between the areas of each recording;
- a posterior predictive check: ``ppc`` samples re-simulated and accepted as ``validate``
  does (within 2 simulation-noise sd), the yield, and per feature how far the
  re-simulations land from the target (median z in noise sd): which features miss;
- where both areas of a recording have ``min_consistent`` accepted samples, their
  consistent sets compared as well.

An optional ``[mk1]`` section (``enabled = true``) also runs ``automind fit`` with MK1 per
area and compares the two areas' fits of each recording (``fit_mk1``): about 12 min per area
on 2 cores; `--quick` leaves it out.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..progress import sayer


def _settings(config: dict, quick: bool) -> dict:
    s = dict(config["network"]) | dict(config["bank"]) | dict(config["compare"])
    return s | (dict(config.get("quick", {})) if quick else {})


def data_folder(config: dict) -> Path:
    """The recordings' folder: ``data`` in study.toml, relative to the study folder (or
    ``AUTOMIND_PROBE_DATA``); a clear error when it is absent."""
    import os

    folder = Path(os.environ.get("AUTOMIND_PROBE_DATA") or config.get("data", ""))
    if not folder.is_absolute():
        folder = Path(config.get("study_folder", ".")) / folder
    if not folder.is_dir():
        raise UserError(f"the probe recordings are not in {folder} (set data in study.toml or "
                        "AUTOMIND_PROBE_DATA); this study reads real files and downloads nothing")
    return folder.resolve()


def recordings_of(config: dict, folder: Path) -> dict[str, tuple[Path, list[str]]]:
    """{recording: (file, [areas])} from [recordings], files checked to exist."""
    out = {}
    for name, entry in config.get("recordings", {}).items():
        path = folder / entry["file"]
        if not path.is_file():
            raise UserError(f"study.toml: recording {name}: {path} not found")
        if len(entry["areas"]) < 2:
            raise UserError(f"study.toml: recording {name} needs two areas to compare")
        out[name] = (path, list(entry["areas"]))
    if not out:
        raise UserError("study.toml: [recordings] names no recording")
    return out


def area_target(path: Path, area: str, quality: list[str], window: float, feature_set,
                max_windows: int | None = None) -> dict:
    """One area's units, prepared (line noise masked), cut into windows of ``window`` s; the
    target is the per-feature median of the windows' raw features."""
    from ..recordings import read_recording
    from ..recordings.prepare import prepare_recording

    data, notes = prepare_recording(read_recording(path, area=area, quality=quality or None))
    n = int(data.duration // window)
    if n < 1:
        raise UserError(f"{path} {area}: {data.duration:g} s is shorter than one {window:g} s window")
    starts = np.arange(n) * window
    if max_windows is not None and n > max_windows:  # evenly spread over the recording
        starts = starts[np.linspace(0, n - 1, max_windows).round().astype(int)]
    x = np.array([feature_set.compute(data.window(t, t + window)) for t in starts])
    with warnings.catch_warnings():  # all-NaN columns (e.g. no ISIs) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        target = np.nanmedian(x, axis=0)
        spread = np.nanstd(feature_set.transform(x), axis=0)
    return {"data": data, "x": target, "window_spread": spread, "notes": notes,
            "info": {"units": int(data.n_units), "spikes": int(data.n_spikes),
                     "duration_s": float(data.duration),
                     "rate_hz": float(data.n_spikes / data.n_units / data.duration),
                     "windows": int(len(starts)), "window_s": float(window),
                     "masked_lines_hz": data.metadata.get("masked_lines_hz", [])}}


def run(config: dict, out: Path, workers: int, quick: bool, progress: bool) -> dict:
    from ..bank import extend
    from ..features.sets import get_feature_set
    from ..inference.train import train_on_bank
    from ..simulators.brunel import reduced_spec

    start = time.perf_counter()
    s = _settings(config, quick)
    seed, feature_set = int(config.get("seed", 1)), config.get("features", "spikes")
    if config.get("model", "brunel") != "brunel":
        raise UserError("study.toml: the bank model of probe_areas is brunel (MK1: the [mk1] section)")
    fs = get_feature_set(feature_set)
    recordings = recordings_of(config, data_folder(config))
    quality = list(config.get("quality", []))

    say = sayer(progress)

    window = s["duration"] - s["t_analysis_start"]
    targets = {}
    for rec, (path, areas) in recordings.items():
        for area in areas:
            t = area_target(path, area, quality, window, fs, s.get("max_windows"))
            targets[f"{rec} {area}"] = t
            say(f"{rec} {area}: {t['info']['units']} units, {t['info']['rate_hz']:.2f} Hz; "
                + ("; ".join(t["notes"]) or "no line noise found"))

    from ..prior import Prior

    prior = Prior.load("brunel")
    spec = reduced_spec(s["N"], s["C_E"], s["duration"], s["t_analysis_start"])
    work = out / "work"
    say(f"simulating {s['n']} networks (N={s['N']}, {s['duration']:g} s) into {work / 'bank'}")
    extend(work / "bank", spec, prior, s["n"], seed, workers=workers, chunk_size=50,
           features=[feature_set], progress=progress)
    say("training the posterior")
    posterior = train_on_bank(work / "bank", feature_set, seed=seed, progress=progress,
                              **config.get("training", {}))
    posterior.save(work / "posterior")

    areas, pairs, figures = analyse(posterior, targets, recordings, s, out, seed, workers, say)
    summary = {"settings": s, "features": feature_set, "quality": quality,
               "data": str(data_folder(config)),
               "n_valid": posterior.metrics["n_valid"], "n_invalid": posterior.metrics["n_invalid"],
               "features_dropped": posterior.metrics["features_dropped"],
               "areas": areas, "pairs": pairs, "figures": figures}
    drop = list(config.get("restricted", {}).get("drop", []))
    if drop:
        say(f"training the restricted posterior (without {', '.join(drop)})")
        restricted = train_without(work / "bank", feature_set, drop, seed, progress,
                                   config.get("training", {}))
        restricted.save(work / "posterior_restricted")
        s_r = s | {"ppc": s.get("ppc_restricted", s["ppc"])}
        areas_r, pairs_r, figures_r = analyse(restricted, targets, recordings, s_r,
                                              out / "restricted", seed, workers, say)
        summary["restricted"] = {"dropped": drop, "features": [
            restricted.features["names"][c] for c in restricted.config["feature_columns"]],
                                 "areas": areas_r, "pairs": pairs_r}
        summary["figures"] += figures_r
    if config.get("mk1", {}).get("enabled", False) and not quick:  # ~12 min per area
        summary["mk1"] = fit_mk1(config["mk1"], recordings, quality, work, out, workers,
                                 progress, seed)
    return summary | {"seconds": round(time.perf_counter() - start, 1)}


def analyse(posterior, targets: dict, recordings: dict, s: dict, out: Path, seed: int,
            workers: int, say) -> tuple[dict, dict, list[str]]:
    """Per area: misspecification, nearest bank simulations, posterior samples and their
    predictive check; per recording: the comparison. (areas, pairs, figures) in ``out``."""
    from ..inference.misspecification import check_posterior_target
    from .dataset_comparison import dataset_posterior

    out.mkdir(parents=True, exist_ok=True)
    areas, samples, ppcs = {}, {}, {}
    for k, (label, t) in enumerate(targets.items()):
        if not posterior.conditionable(t["x"][None])[0]:
            raise UserError(f"{label}: features the posterior needs are missing: "
                            f"{_missing(posterior, t['x'])}")
        miss = check_posterior_target(posterior, t["x"], seed=seed)
        near = nearest_simulations(posterior, t["x"], s.get("nearest", 20), seed)
        samples[label] = posterior.sample(s["samples"], t["x"], seed=seed + k)
        say(f"{label}: re-simulating {s['ppc']} posterior samples")
        ppcs[label] = posterior_check(posterior, samples[label], t["x"], s, seed + 100 * (k + 1),
                                      workers)
        areas[label] = (t["info"] | {"misspecification": miss.to_dict() if miss else None,
                                     "nearest_bank": near}
                        | dataset_posterior(posterior.prior, samples[label])
                        | _ppc_summary(posterior, ppcs[label], t)
                        | {"target": _named(posterior, posterior.prepare_x(t["x"])[0].numpy())})
    pairs = compare_recordings(posterior, recordings, targets, samples, ppcs, s, out, seed)
    figures = [str(plot_ppc(targets, ppcs, areas, out / "ppc.png", s["t_analysis_start"]))]
    figures += [f for p in pairs.values() for f in p.pop("figures", [])]
    return areas, pairs, list(dict.fromkeys(figures))


def train_without(bank_path: Path, feature_set: str, drop: list[str], seed: int, progress: bool,
                  training: dict):
    """A posterior on the bank that ignores the ``drop`` features (the ones the model cannot
    reach): they are blanked, so training leaves their columns out (``train``'s rule for
    features missing in most simulations); acceptance then uses the others only."""
    from ..bank import Bank
    from ..inference.train import bank_hash, train
    from ..prior import Prior

    bank = Bank(bank_path)
    info = bank.feature_sets[feature_set]
    unknown = sorted(set(drop) - set(info["names"]))
    if unknown:
        raise UserError(f"study.toml: [restricted] drop names unknown features {unknown}")
    data = bank.arrays(features=feature_set)
    x = data["x"].copy()
    x[:, [info["names"].index(n) for n in drop]] = np.nan
    feature_info = {"set": feature_set, "version": info["version"], "names": info["names"],
                    "transforms": info.get("transforms", ["none"] * len(info["names"]))}
    provenance = {"bank": str(bank.path), "bank_sha256": bank_hash(bank),
                  "simulator": bank.meta["simulator"], "bank_seed": bank.meta["seed"],
                  "bank_rows": int(len(data["index"])), "features_left_out": drop}
    prior = Prior.from_dict(bank.meta["prior"], source=f"{bank.path} (bank prior)")
    return train(data["theta"], x, prior, valid=data["status"] == "ok", feature_info=feature_info,
                 provenance=provenance, progress=progress, seed=seed, **training)


def _missing(posterior, x) -> list[str]:
    names = posterior.features["names"]
    return [names[c] for c in posterior.config["feature_columns"] if not np.isfinite(x[c])]


def _named(posterior, values) -> dict:
    names = posterior.features["names"]
    return {names[c]: float(v) for c, v in zip(posterior.config["feature_columns"], values)}


def nearest_simulations(posterior, x: np.ndarray, k: int = 20, seed: int = 0) -> dict:
    """How near the bank comes to the target: distances (RMS over the posterior's features,
    transformed, in the bank's robust sd) of the ``k`` nearest valid simulations, their θ,
    the nearest one's per-feature z, and the yardstick: a bank simulation's distance to its
    own nearest neighbour (median over up to 300 of them)."""
    from ..bank import Bank

    bank = Bank(posterior.provenance["bank"])
    data = bank.arrays(features=posterior.features["set"], status="ok")
    columns = posterior.config["feature_columns"]
    from ..features.sets import transform_features
    from ..inference.runs import feature_distances

    xs = transform_features(data["x"], posterior.features["transforms"])[:, columns]
    ok = np.isfinite(xs).all(1)
    xs, theta = xs[ok], data["theta"][ok]
    target = posterior.prepare_x(x)[0].numpy().astype(float)
    d, scale = feature_distances(xs, target)
    nearest = np.argsort(d)[:k]
    probe = np.random.default_rng(seed).permutation(len(xs))[:300]
    own = np.sqrt(np.mean(((xs[probe, None] - xs[None]) / scale) ** 2, axis=2))
    own[np.arange(len(probe)), probe] = np.inf
    names = posterior.prior.names
    return {"distance_nearest": float(d[nearest[0]]), "distance_kth": float(d[nearest[-1]]),
            "bank_nearest_neighbour_median": float(np.median(own.min(1))),
            "theta_nearest_median": dict(zip(names, np.median(theta[nearest], 0).tolist())),
            "theta_nearest_range": {n: [float(theta[nearest, i].min()), float(theta[nearest, i].max())]
                                    for i, n in enumerate(names)},
            "nearest_feature_z": _named(posterior, (xs[nearest[0]] - target) / scale)}


def posterior_check(posterior, theta: np.ndarray, x: np.ndarray, s: dict, seed: int,
                    workers: int) -> dict:
    """``validate`` on the first ``ppc`` samples, the most probable of them first (it sets the
    noise scale); threshold 2 noise sd as everywhere."""
    from ..inference.validate import validate

    chosen = theta[: s["ppc"]]
    chosen = chosen[np.argsort(-posterior.log_prob(chosen, x), kind="stable")]
    return validate(posterior, chosen, x, threshold=s.get("threshold", 2.0),
                    noise_repeats=s["noise_repeats"], seed=seed, workers=workers) | {"theta": chosen}


def _ppc_summary(posterior, ppc: dict, target: dict) -> dict:
    """Yield, statuses, distances and per-feature misses (median z of the re-simulations in
    noise sd), with the recording's own window-to-window spread in the same units."""
    z = (np.asarray(ppc["features"]) - np.asarray(ppc["target"])) / np.asarray(ppc["sigma"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median_z = np.nanmedian(z, axis=0)
    columns = posterior.config["feature_columns"]
    spread = np.asarray(target["window_spread"])[columns] / np.asarray(ppc["sigma"])
    status, counts = np.unique(ppc["status"], return_counts=True)
    distance = np.asarray(ppc["distance"], float)
    finite = distance[np.isfinite(distance)]
    return {"yield": ppc["yield"], "n_simulated": ppc["n_simulated"],
            "n_accepted": ppc["n_accepted"], "status": dict(zip(status.tolist(), counts.tolist())),
            "distance_median": float(np.median(finite)) if len(finite) else None,
            "distance_min": float(finite.min()) if len(finite) else None,
            "feature_median_z": _named(posterior, median_z),
            "window_spread_noise_sd": _named(posterior, spread),
            "worst_features": [n for n, v in sorted(_named(posterior, median_z).items(),
                                                    key=lambda kv: -abs(np.nan_to_num(kv[1], nan=1e9)))
                               if not abs(v) <= 2][:5]}


def compare_recordings(posterior, recordings, targets, samples, ppcs, s, out, seed) -> dict:
    """Per recording: ``compare_posteriors`` between its areas (figures in out/RECORDING),
    and the consistent sets compared where both areas have ``min_consistent`` of them."""
    from ..invariance.compare import compare_posteriors, compare_sets

    pairs = {}
    prior = posterior.prior
    for rec, (_, names) in recordings.items():
        labels = [f"{rec} {a}" for a in names]
        report = compare_posteriors(posterior, {a: targets[l]["x"] for a, l in zip(names, labels)},
                                    out / rec, n_local=s["local"], seed=seed,
                                    samples={a: samples[l] for a, l in zip(names, labels)})
        for pair, result in report["pairs"].items():
            entry = {k: result[k] for k in ("shift_prior_sd", "separation", "overlap",
                                            "separating_parameters", "principal_angles_deg")}
            entry["local"] = result.get("local")
            entry["figures"] = report["figures"]
            accepted = {a: np.asarray(ppcs[l]["accepted"]) for a, l in zip(names, labels)}
            if min(v.sum() for v in accepted.values()) >= s.get("min_consistent", 10):
                sets = {a: prior.standardise(ppcs[l]["theta"][accepted[a]])
                        for a, l in zip(names, labels)}
                entry["consistent"] = compare_sets(sets, prior.names)["pairs"][pair]
            else:
                entry["consistent"] = None
            pairs[f"{rec}: {pair}"] = entry
    return pairs


#: [mk1] settings of the per-area checks and comparison (not passed to `fit`)
MK1_CHECK_DEFAULTS = {"min_set": 56, "local": 20, "conditional": 10, "shown": 4}


def fit_mk1(settings: dict, recordings, quality, work: Path, out: Path, workers: int,
            progress: bool, seed: int) -> dict:
    """``automind fit`` with MK1 per area (``[mk1]``: N, duration, features, budget, fit
    options; ``min_set``, ``local`` for the comparison), then the two areas of each recording
    compared (``compare_fits``: consistent sets when both hold ``min_set``, else their last
    re-simulated samples) into ``out/mk1/REC``. Each area's summary, or its error."""
    from ..fit import fit
    from ..simulators import SimulatorSpec
    from .culture_checks import FIT_SUMMARY_KEYS, compare_fits

    checks = {k: settings.get(k, v) for k, v in MK1_CHECK_DEFAULTS.items()}
    reserved = ("enabled", "N", "duration", "t_analysis_start", "features", "budget",
                *MK1_CHECK_DEFAULTS)
    options = {k: v for k, v in settings.items() if k not in reserved}
    spec = SimulatorSpec.load("mk1").with_overrides(
        **{k: settings[k] for k in ("N", "duration", "t_analysis_start") if k in settings})
    areas, pairs = {}, {}
    for rec, (path, names) in recordings.items():
        fitted = {}
        for area in names:
            start = time.perf_counter()
            try:
                summary = fit(path, work / f"mk1_{rec}_{area}", simulator=spec,
                              features=settings.get("features", "mk1_compact"),
                              budget=int(settings.get("budget", 5000)), workers=workers,
                              progress=progress, seed=seed,
                              recording_options={"area": area, "quality": quality or None,
                                                 "mask_lines": True}, **options)
            except UserError as err:  # e.g. the model never comes near the area
                areas[f"{rec} {area}"] = {"error": str(err)}
                continue
            fitted[area] = summary
            areas[f"{rec} {area}"] = {k: summary.get(k) for k in FIT_SUMMARY_KEYS} | {
                "run": summary.get("run"), "seconds": round(time.perf_counter() - start, 1)} | \
                area_checks(path, summary, area, quality, spec, out / "mk1" / rec / area, checks,
                            workers)
        if len(fitted) >= 2:
            pairs[f"{rec}: {' vs '.join(fitted)}"] = compare_fits(
                fitted, out / "mk1" / rec, checks["min_set"], checks["local"])
    return {"areas": areas, "pairs": pairs}


def area_checks(path, summary: dict, area: str, quality, spec, folder: Path, s: dict,
                workers: int) -> dict:
    """The culture study's posterior predictive check and set geometry (``fit_checks``) for one
    area's MK1 fit: its closest re-simulations beside the window it was fitted to."""
    from .culture_checks import fit_checks

    folder.mkdir(parents=True, exist_ok=True)
    run = Path(summary["run"])
    data, fs = fitted_window(path, run, area, quality)
    return fit_checks(run, summary, data, spec, fs, folder, s, workers)


def fitted_window(path, run: Path, area: str, quality):
    """The area's units over the window its fit compared with (fit.json), and the fit's feature
    set: what the posterior predictive check sets the re-simulations beside."""
    import json

    from ..features.sets import get_feature_set
    from ..inference.targets import read_target

    record = json.loads((run / "fit.json").read_text())
    data = read_target(str(path), area=area, quality=quality or None, mask_lines=True)
    window = record["target"].get("window_s")
    if window:
        data = data.window(*window)
    return data, get_feature_set(record["settings"]["features"])


def plot_ppc(targets: dict, ppcs: dict, areas: dict, path: Path, t_start: float,
             seconds: float = 3.0) -> Path:
    """Per area: the recording's raster (first ``seconds``), the closest re-simulation's E
    raster (same number of units), and each feature's re-simulations in noise sd from the
    target (boxes) beside the recording's own window-to-window spread (diamonds)."""
    from ..features.spikedata import SpikeData
    from ..plots import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(len(targets), 3, figsize=(15, 2.3 * len(targets)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.6]})
    for row, (label, t) in zip(axes, targets.items()):
        info, ppc = areas[label], ppcs[label]
        n = info["units"]
        _raster(row[0], t["data"], n, seconds, "k", f"{label}: {n} units, {info['rate_hz']:.2f} Hz")
        distance = np.where(np.isfinite(ppc["distance"]), ppc["distance"], np.inf)
        best = int(np.argmin(distance))
        result = ppc["results"][best]
        if result.status == "ok" and result.spikes:
            sim = SpikeData.from_simulation(result).select("E").window(t_start)
            _raster(row[1], sim, n, seconds, "tab:green" if ppc["accepted"][best] else "tab:red",
                    f"closest re-simulation (d = {distance[best]:.1f}, "
                    f"{'accepted' if ppc['accepted'][best] else 'rejected'}); "
                    f"yield {info['n_accepted']}/{info['n_simulated']}")
        else:
            row[1].text(0.5, 0.5, "no re-simulation ran through", ha="center", va="center")
            row[1].axis("off")
        names = list(info["feature_median_z"])
        z = (np.asarray(ppc["features"]) - np.asarray(ppc["target"])) / np.asarray(ppc["sigma"])
        boxes = [np.clip(col[np.isfinite(col)], -50, 50) for col in z.T]
        row[2].boxplot(boxes, showfliers=False, widths=0.6)
        row[2].plot(np.arange(1, len(names) + 1),
                    np.clip(list(info["window_spread_noise_sd"].values()), 0, 50), "D",
                    color="tab:orange", ms=4, label="recording's window sd")
        row[2].axhspan(-2, 2, color="tab:green", alpha=0.15)
        row[2].set_xticks(np.arange(1, len(names) + 1), names, rotation=60, fontsize=6)
        row[2].set_ylabel("re-sim − target\n(noise sd, clipped ±50)", fontsize=7)
    axes[0, 2].legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _raster(ax, data, n_units: int, seconds: float, colour: str, title: str) -> None:
    units = data.units[:n_units]
    stop = min(seconds, data.duration)
    keep = np.isin(data.unit_ids, units) & (data.times < stop)
    ax.plot(data.times[keep], np.searchsorted(units, data.unit_ids[keep]), ".", ms=1, color=colour)
    ax.set_title(title, fontsize=8)
    ax.set(xlim=(0, stop), xlabel="time (s)", ylabel="unit")
