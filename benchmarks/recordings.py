"""Real recordings (issue #13): reader + features on the 13 MEA culture files beside the
repository (../shared/data/mea-cultures), against the 30 s target. Prints, as the last
line, one JSON object:

- total_s: reading all 13 files and computing the `mk1` set (spikes + 990-value PSD +
  bursts) and the independent population-event count of each; target_s 30;
- raw_read_s: the same files' arrays read with plain h5py (the I/O floor, same run), and
  read_ratio = our reader's time over it;
- files: per file the units, spikes, seconds, burst count, independent event count and
  their ratio; burst_agreement_ok: every DIV >= 11 file within 25 %.

    python benchmarks/recordings.py [--features-out FILE.json] [--figures DIR] [--probes]

``--features-out`` writes each recording's `population` feature vector (mk1_compact on all
units: spike statistics, 25 PSD bands, bursts; the set MK1 fits on unlabelled recordings
use) with the feature-set version and the metadata, for later studies. ``--figures`` draws
one figure per recording (raster, population rate with bursts, PSD); they stay outside the
repository (the MEA data is GPL). ``--probes`` adds the Neuropixels areas (with their line
noise masked).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from automind.features import get_feature_set
from automind.features.bursts import detect_bursts
from automind.io import atomic_write_text
from automind.provenance import package_versions
from automind.recordings import read_recording
from automind.recordings.events import population_events

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PROBE_AREAS = {"T224_2019_12_18_bank0.nwb": ("PrL", "Cg1"), "T209_2019_05_10.nwb": ("aIC", "SC"),
               "T182_2018_06_06_idle_bank1.nwb": ("Str", "M2")}


def raw_read(path: Path) -> float:
    import h5py

    start = time.perf_counter()
    with h5py.File(path, "r") as handle:
        handle["spikes"][()], handle["sCount"][()], handle["names"][()]
    return time.perf_counter() - start


def vector(data, name: str = "population") -> dict:
    fs = get_feature_set(name)
    values = fs.compute(data)
    return {"set": name, "version": fs.version,
            "values": {k: (None if not np.isfinite(v) else float(v)) for k, v in zip(fs.names, values)}}


def summary_metadata(data) -> dict:
    return {k: v for k, v in data.metadata.items() if k not in ("unit_names",)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features-out", type=Path)
    parser.add_argument("--figures", type=Path)
    parser.add_argument("--probes", action="store_true")
    args = parser.parse_args(argv)
    folder = DATA / "mea-cultures"
    files = sorted(folder.glob("*.h5"))
    if not files:
        sys.exit(f"no MEA recordings in {folder}")
    mk1 = get_feature_set("mk1")
    rows, vectors = [], {}
    raw_total = sum(raw_read(path) for path in files)
    for path in files:
        start = time.perf_counter()
        data = read_recording(path)
        read_s = time.perf_counter() - start
        values = dict(zip(mk1.names, mk1.compute(data)))
        events = len(population_events(data))
        seconds = time.perf_counter() - start
        bursts = int(values["burst_num"]) if values["burst_valid"] else len(
            detect_bursts(data.population_rate(1e-3))["peaks"])
        rows.append({"file": path.name, "age_div": data.metadata.get("age_div"),
                     "region": data.metadata.get("region"), "units": data.n_units,
                     "spikes": data.n_spikes, "read_s": round(read_s, 3),
                     "read_and_features_s": round(seconds, 3), "bursts": bursts,
                     "events": events, "ratio": round(bursts / events, 3) if events else None})
        if args.features_out:
            vectors[path.name] = {"metadata": summary_metadata(data), **vector(data),
                                  "population_events": events}
        if args.figures:
            from automind.plots import plot_spikes

            args.figures.mkdir(parents=True, exist_ok=True)
            plot_spikes(data, args.figures / f"{path.stem}.png", t_window=(100.0, 220.0))
    total = sum(r["read_and_features_s"] for r in rows)  # figures and vectors not counted
    checked = [r for r in rows if (r["age_div"] or 0) >= 11]
    result = {"n_files": len(rows), "total_s": round(total, 2), "target_s": 30.0,
              "within_target": total < 30.0, "raw_read_s": round(raw_total, 3),
              "read_ratio": round(sum(r["read_s"] for r in rows) / raw_total, 2),
              "burst_agreement_ok": all(r["ratio"] and abs(r["ratio"] - 1) <= 0.25 for r in checked),
              "worst_ratio_div11_plus": max(checked, key=lambda r: abs(r["ratio"] - 1))["ratio"],
              "files": rows}
    if args.probes:
        result["probes"] = probes(vectors if args.features_out else None, args.figures)
    if args.features_out:
        out = {"about": "feature vectors of the real recordings beside the repository "
                        "(benchmarks/recordings.py --features-out); values raw (log10 is applied "
                        "by inference)", "versions": package_versions(), "recordings": vectors}
        atomic_write_text(args.features_out, json.dumps(out, indent=1) + "\n")
    print(json.dumps(result))
    return result


def probes(vectors: dict | None, figures: Path | None) -> list[dict]:
    from automind.features.line_noise import with_line_mask

    rows = []
    for name, areas in PROBE_AREAS.items():
        for area in areas:
            start = time.perf_counter()
            data = with_line_mask(read_recording(DATA / "neuropixels-rat" / name, area=area))
            features = dict(zip(get_feature_set("mk1").names, get_feature_set("mk1").compute(data)))
            rows.append({"file": name, "area": area, "units": data.n_units,
                         "spikes": data.n_spikes, "seconds": round(time.perf_counter() - start, 2),
                         "lines_masked": len(data.metadata["masked_lines_hz"]),
                         "bursts": None if not features["burst_valid"] else int(features["burst_num"]),
                         "events": len(population_events(data))})
            if vectors is not None:
                vectors[f"{name}:{area}"] = {"metadata": summary_metadata(data) | {"area": area},
                                             **vector(data)}
            if figures:
                from automind.plots import plot_spikes

                plot_spikes(data, figures / f"{Path(name).stem}_{area}.png", t_window=(100.0, 160.0))
    return rows


if __name__ == "__main__":
    main()
