"""``automind features`` and ``automind plot``: features and figures of a recording or bank."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .options import add_json, add_recording_options, count, recording_options, workers


def register(sub) -> None:
    p = sub.add_parser("features", help="summary features of a recording, or compute a set for a bank",
                       description="For a recording (NPZ, MEA, CSV, NWB) or BANK:INDEX: compute "
                                   "the feature set and print it (--json: one JSON object mapping "
                                   "names to values, null = missing). For a bank folder: compute "
                                   "the set for every simulation that kept spikes, in parallel "
                                   "and resumably, without re-simulating.")
    p.add_argument("target", help="recording file, BANK:INDEX, or a bank folder")
    p.add_argument("--set", default="mk1", help="feature set: spikes, psd, bursts or mk1 "
                                                 "(default: mk1)")
    p.add_argument("--workers", type=count, help="processes for a bank (default: all cores)")
    add_json(p)
    add_recording_options(p)
    p.set_defaults(func=run_features)

    p = sub.add_parser("plot", help="raster, population rate with bursts, and PSD figure",
                       description="Plot a recording or BANK:INDEX: raster, population rate with "
                                   "detected network bursts shaded, and the PSD.")
    p.add_argument("target", help="recording file or BANK:INDEX")
    p.add_argument("--out", type=Path, required=True, help="figure file (.png or .pdf)")
    p.add_argument("--window", type=float, nargs=2, metavar=("START", "STOP"),
                   help="time window to show (s)")
    add_json(p)
    add_recording_options(p)
    p.set_defaults(func=run_plot)


def run_features(args) -> dict:
    from ..features.sets import PSD_FREQS, get_feature_set
    from ..inference.targets import bank_target, is_bank, read_target
    from ..recordings.prepare import recording_summary

    fs = get_feature_set(args.set)
    if is_bank(args.target):
        from ..bank.featurise import featurise

        report = featurise(args.target, args.set, workers=workers(args), progress=not args.json)
        if not args.json:
            print(f"feature set {args.set} ({report['dim']} values): computed for "
                  f"{report['shards_computed']} shards; bank has {report['shards_total']} shards")
        return report
    data = read_target(args.target, **recording_options(args))
    values = fs.compute(data)

    def plain(v):
        return None if np.isnan(v) else float(v)

    is_psd = np.array([n.startswith("psd_") for n in fs.names], dtype=bool)
    features = {name: plain(v) for name, v, p in zip(fs.names, values, is_psd) if not p}
    if is_psd.any():  # the spectrum as arrays, not 990 keys
        features["psd"] = [plain(v) for v in values[is_psd]]
        features["psd_freqs"] = PSD_FREQS.tolist()
    if bank_target(args.target) is None:
        features["recording"] = recording_summary(data)
    if not args.json:
        print(f"{data.source.get('path', args.target)}: {data.n_units} units, {data.n_spikes} "
              f"spikes, {data.duration:g} s; feature set {fs.name} v{fs.version}")
        for name, value in features.items():
            if not name.startswith("psd") and name != "recording":
                print(f"  {name:24s} {'missing' if value is None else f'{value:.6g}'}")
        psd = values[is_psd]
        if len(psd) and np.isfinite(psd).any():
            print(f"  psd: {len(psd)} values, 0.5-495 Hz; peak at "
                  f"{PSD_FREQS[int(np.nanargmax(psd))]:g} Hz")
    return features


def run_plot(args) -> dict:
    from ..inference.targets import read_target
    from ..plots import plot_spikes

    data = read_target(args.target, **recording_options(args))
    window = None if args.window is None else tuple(args.window)
    figure = plot_spikes(data, args.out, t_window=window)
    if not args.json:
        print(f"figure: {figure}")
    return {"figure": str(figure)}
