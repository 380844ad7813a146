"""Fit MK1 to real MEA cultures through development, then compare ages and regions.

Each ``[recordings]`` entry (a file of the ``data`` folder, read in place and never copied; its
age and region checked against the file's own metadata) is read like ``automind fit`` reads a
recording (units below ``min_rate`` Hz dropped), written as NPZ under ``out/work`` (not
checked in) and fitted with ``automind.fit.fit`` through its public signature; the fit cuts
it to one window as long as a simulated run's analysed part and adds the recording's
window-to-window spread to the acceptance noise (``recordings.windows``), and the ``mea``
feature set pools the simulated neurons into as many electrodes as the recording keeps
(``features.electrodes``). Per recording: the fit's
misspecification check and yield, the spread of the features over all windows of the
recording, a figure of the recording, posterior-predictive figures (target vs the closest
final samples' rasters and rates; their spike and burst statistics against the target) and
the set's geometry (``invariance.analyse_set``). Then ``compare_runs`` across the
``[compare] ages`` and between the ``[compare] regions`` recorded at a matched age. Sets
smaller than ``min_set`` are replaced by the fit's last re-simulated samples, and the results
say so. The null: ``[compare] replicate`` is fitted a second time with another seed and
compared with its first fit like two recordings (``compare.replicate``).

``--quick`` keeps ``electrodes`` electrodes of each recording, at a tiny network and budget.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..progress import sayer

#: the project root: relative ``data`` folders are resolved against it
ROOT = Path(__file__).resolve().parents[2]


#: the replicate fit's seed offset: a recording fitted twice, compared like two recordings
REPLICATE_SEED = 100
#: what results.json keeps of each fit round
ROUND_KEYS = ("stage", "round", "simulations", "duration_s", "valid_fraction", "near_fraction",
              "nats", "posterior_nats", "posterior_on_bounds", "degenerate")


def _settings(config: dict, quick: bool) -> dict:
    s = dict(config["network"]) | dict(config["fit"]) | dict(config.get("compare", {}))
    s |= {"electrodes": None}
    return s | (dict(config.get("quick", {})) if quick else {})


def data_folder(config: dict) -> Path:
    """The recordings' folder (``data``, relative to the project root); a UserError naming it
    when it is absent."""
    folder = Path(config.get("data", "../shared/data/mea-cultures"))
    folder = folder if folder.is_absolute() else (ROOT / folder).resolve()
    if not folder.is_dir():
        raise UserError(f"the MEA recordings are not at {folder} (the study reads them from "
                        "../shared/data/mea-cultures; see its PROVENANCE.md)")
    return folder


def recordings(config: dict, labels: list[str] | None = None) -> list[dict]:
    """The study's recordings ({label, path, region, age}), by culture then age (DIV)."""
    folder, table = data_folder(config), config.get("recordings", {})
    unknown = sorted(set(labels or ()) - set(table))
    if unknown:
        raise UserError(f"study.toml: unknown recordings {unknown}; known: {sorted(table)}")
    entries = []
    for label, entry in table.items():
        if labels is not None and label not in labels:
            continue
        path = folder / entry["file"]
        if not path.is_file():
            raise UserError(f"recording {label}: {path} not found")
        entries.append({"label": label, "path": path, "culture": label.split("_")[0],
                        "region": entry["region"], "age": int(entry["age"])})
    return sorted(entries, key=lambda e: (e["culture"], e["age"]))


def read_target_data(entry: dict, s: dict, min_rate: float, whole: bool = False):
    """The recording as the fit reads it (``read_target`` with ``min_rate``, its metadata
    checked against study.toml), cut to ``target_window`` (unless ``whole``); in quick mode
    only the first ``electrodes`` kept electrodes."""
    from ..inference.targets import read_target

    data = read_target(str(entry["path"]), min_rate=min_rate)
    age, region = data.metadata.get("age_div"), data.metadata.get("region")
    if age is not None and int(round(float(age))) != entry["age"] or \
            region is not None and str(region) != entry["region"]:
        raise UserError(f"recording {entry['label']}: the file says DIV {age}, region {region}; "
                        f"study.toml says DIV {entry['age']}, region {entry['region']}")
    if s.get("electrodes"):
        from ..features.spikedata import SpikeData

        keep = data.units[:int(s["electrodes"])]
        mask = np.isin(data.unit_ids, keep)
        data = SpikeData(data.times[mask], data.unit_ids[mask], data.duration, keep, {},
                         data.source, None, data.metadata)
    if whole:
        return data
    from ..recordings.windows import target_window

    start, stop = target_window(data, s["duration"] - s["t_analysis_start"])
    data = data.window(start, stop)
    data.metadata = dict(data.metadata) | {"target_window_s": [start, stop]}
    return data


def window_spread(data, fs, length: float) -> dict:
    """5th, 50th and 95th percentiles of the shown features over the recording's windows
    (``recordings.windows.window_features``): how much one window of the culture varies."""
    from ..recordings.windows import window_features
    from .culture_checks import SHOWN_FEATURES

    rows = window_features(data, fs, length)
    names = list(fs.names)
    spread = {}
    for name in SHOWN_FEATURES:
        column = rows[:, names.index(name)]
        column = column[np.isfinite(column)]
        spread[name] = np.percentile(column, [5, 50, 95]).round(4).tolist() if len(column) else None
    return {"n": int(len(rows)), "length_s": length, "p5_p50_p95": spread}


def _target_file(entry: dict, data, work: Path) -> Path:
    """The recording (its electrodes already selected) as NPZ under ``work`` (not checked in:
    the data are GPL), for the fit to read and cut to its target window."""
    path = work / "targets" / f"{entry['label']}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, spike_times=data.times, unit_ids=data.unit_ids, units=data.units,
             duration=data.duration)
    return path


def run(config: dict, out: Path, workers: int, quick: bool, progress: bool) -> dict:
    from ..features.sets import get_feature_set, resolve_feature_set
    from ..fit import FitSettings, fit
    from ..fit.plan import study_fit_options
    from ..plots import plot_spikes
    from ..simulators import SimulatorSpec
    from .culture_checks import (FIT_SUMMARY_KEYS, compare_fits, comparisons, fit_checks,
                                 summary_figure)

    start = time.perf_counter()
    s = _settings(config, quick) | {"min_rate": float(config.get("min_rate", 0.1))}
    seed, features = int(config.get("seed", 1)), config.get("features", "population")
    prior = config.get("prior", "mk1_culture")
    spec = SimulatorSpec.load(config.get("model", "mk1")).with_overrides(
        N=s["N"], duration=s["duration"], t_analysis_start=s["t_analysis_start"])
    entries = recordings(config, s.get("recordings"))
    fit_options = study_fit_options(s)
    FitSettings(budget=s["budget"], features=features, **fit_options).split()  # bad settings: now
    work = out / "work"

    say = sayer(progress)

    rows, order = [], list(config["recordings"])  # a recording's seed: its place in study.toml
    targets = {}

    def fit_one(label, target, folder, seed_offset, report=False):
        return fit(target, work / folder, simulator=spec, prior=prior, features=features,
                   budget=s["budget"], workers=workers, progress=progress, report=report,
                   recording_options={}, seed=seed + order.index(label) + seed_offset,
                   **fit_options)

    for entry in entries:
        label, folder = entry["label"], out / "ages" / entry["label"]
        folder.mkdir(parents=True, exist_ok=True)
        whole = read_target_data(entry, s, s["min_rate"], whole=True)
        data = read_target_data(entry, s, s["min_rate"])
        fs = get_feature_set(resolve_feature_set(features, data))  # mea: K = its electrodes
        x = fs.compute(data)
        figure = plot_spikes(whole, folder / "recording.png", t_window=(0.0, min(60.0, whole.duration)))
        target = _target_file(entry, whole, work)
        say(f"{label}: {data.n_units} electrodes; target {data.metadata['target_window_s']} s "
            f"of {whole.duration:g} s ({data.n_spikes} spikes); fit with a budget of {s['budget']}")
        t0 = time.perf_counter()
        row = {"label": label, "culture": entry["culture"], "region": entry["region"],
               "age_div": entry["age"], "file": entry["path"].name, "electrodes": data.n_units,
               "spikes": data.n_spikes, "duration_s": data.duration,
               "target_window_s": data.metadata["target_window_s"],
               "recording_duration_s": whole.duration,
               "windows": window_spread(whole, fs, data.duration),
               "dropped_electrodes": data.metadata.get("dropped_units"),
               "target": {n: _plain(v) for n, v in zip(fs.names, x)}, "figures": [str(figure)]}
        targets[label] = target
        try:
            summary = fit_one(label, target, f"fit_{label}", 0, report=not quick)
        except UserError as err:  # no probe came near: the model cannot reach this recording
            say(f"{label}: the fit stopped: {err}")
            rows.append(row | {"fit": {"stopped": str(err), "yield": 0.0, "n_consistent": 0,
                                       "out_of_range_features": None,
                                       "run": str(work / f"fit_{label}")}})
            continue
        seconds = time.perf_counter() - t0
        checks = fit_checks(work / f"fit_{label}", summary, data, spec, fs, folder, s, workers,
                            row["windows"]["p5_p50_p95"])
        row["figures"] += checks.pop("figures")
        rows.append(row | {"fit": {key: summary.get(key) for key in FIT_SUMMARY_KEYS}
            | {"rounds": [{k: e.get(k) for k in ROUND_KEYS} for e in summary["rounds"]],
               "seconds": round(seconds, 1), "run": str(work / f"fit_{label}")}} | checks)
    compared = comparisons(rows, s, out)
    fitted = {r["label"]: r["fit"] for r in rows if "stopped" not in r["fit"]}
    label = s.get("replicate")
    if label in fitted:  # the null: the same recording fitted again with another seed
        say(f"{label}: fitted again with another seed (the comparisons' null)")
        try:
            again = fit_one(label, targets[label], f"fit_{label}_replicate", REPLICATE_SEED)
        except UserError as err:
            compared["replicate"] = {"refused": str(err)}
        else:
            compared["replicate"] = compare_fits({label: fitted[label], f"{label} replicate": again},
                                                 out / "compare_replicate", s["min_set"],
                                                 s["local"])
    figure = summary_figure(rows, out / "yield_by_age.png")
    return {"settings": s, "prior": prior, "features": features, "recordings": rows,
            "compare": compared, "figures": [str(figure)],
            "seconds": round(time.perf_counter() - start, 1)}


def _plain(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None

