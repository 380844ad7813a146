"""The ``automind`` command. User mistakes print one line and exit with status 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .errors import UserError, require_new_folder


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _path_points(text: str) -> int:
    value = 0 if text.strip() == "0" else _count(text)
    if value in (1, 2):
        raise argparse.ArgumentTypeError(f"must be 0 (skip) or >= 3, got {text}")
    return value


def _add_simulation_options(p: argparse.ArgumentParser, default_simulator: str) -> None:
    p.add_argument("--simulator", default=default_simulator,
                   help="simulator spec: short name (mk1, brunel) or path to a .toml "
                        f"(default: {default_simulator})")
    p.add_argument("--prior", help="prior spec: short name or path (default: the simulator's own)")
    p.add_argument("--seed", type=int, default=0,
                   help="global seed; simulation k's seed derives from it and k (default: 0)")
    p.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                   help="biological time per simulation (default: the spec's)")
    p.add_argument("--N", type=int, help="number of neurons (default: the spec's; recompiles once)")
    p.add_argument("--dt", type=_positive_float, metavar="MS",
                   help="time step in ms (default: the spec's; recompiles once)")
    p.add_argument("--workers", type=_count, help="local worker processes (default: all cores)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on Dask instead of local processes: local, local:K (start a "
                        "LocalCluster with K workers) or tcp://HOST:PORT (a running scheduler)")
    p.add_argument("--chunk-size", type=_count,
                   help="simulations per shard (fixed when the bank is created; default 8)")
    p.add_argument("--reference-quirks", action="store_true",
                   help="MK1: reproduce the public reference code's slot-wise clusters, frozen "
                        "v_cut, shared ΔT and first-block igniters")


def _load_setup(args):
    from .prior import Prior
    from .simulators import SimulatorSpec
    from .simulators.simulator import check_prior_fits

    spec = SimulatorSpec.load(args.simulator)
    if args.reference_quirks:
        spec = spec.with_overrides(reference_quirks=True)
    spec = spec.with_overrides(duration=args.duration, N=args.N,
                               dt=None if args.dt is None else args.dt * 1e-3)
    prior = Prior.load(args.prior or spec.prior)
    check_prior_fits(spec, prior)
    return spec, prior


def _extend_bank(args, spec, prior, keep_spikes: bool | None, progress: bool) -> dict:
    from .bank import extend
    from .simulators.simulator import default_workers

    print(f"compiling or loading the {spec.model} simulator (N={spec.N}, dt={spec.dt * 1e3:g} ms)"
          " ...", file=sys.stderr, flush=True)
    return extend(args.out, spec, prior, args.n, args.seed,
                  workers=min(args.workers or default_workers(), args.n), dask=args.dask,
                  keep_spikes=keep_spikes, chunk_size=args.chunk_size,
                  features=getattr(args, "features", None), progress=progress)


def cmd_simulate(args) -> dict:
    from .bank import Bank

    spec, prior = _load_setup(args)
    report = _extend_bank(args, spec, prior, args.keep_spikes or None, progress=not args.json)
    info = Bank(args.out).info()
    summary = {"bank": str(args.out), "added": report["added"], "total": info["total"],
               "by_status": info["by_status"], "notes": report["notes"]}
    if not args.json:
        for note in report["notes"]:
            print(f"note: {note}", file=sys.stderr)
        print(f"bank {args.out}: {report['added']} simulations added, {info['total']} in total ("
              + ", ".join(f"{k} {v}" for k, v in info["by_status"].items()) + ")")
    return summary


def cmd_demo(args) -> dict:
    """The whole method end to end on a reduced Brunel network (see automind/demo.py)."""
    from datetime import datetime

    from .demo import run_demo

    out = args.out or Path("demo-output") / datetime.now().strftime("%Y%m%d-%H%M%S")
    summary = run_demo(out, quick=args.quick, workers=args.workers, seed=args.seed,
                       progress=not args.json)
    if not args.json:
        print(f"yield {summary['yield']:.2f} ({summary['n_accepted']} of {summary['n_simulated']} "
              f"re-simulated samples reproduce the recording); max |coverage error| "
              f"{summary['coverage_max_abs_error']:.3f}; {summary['seconds']['total']:.0f} s")
        print(f"report: {summary['report']}")
    return summary


def _is_bank(path: Path) -> bool:
    return (path / "bank.json").is_file()


def _bank_target(text: str) -> tuple[str, int] | None:
    """(bank folder, index) when ``text`` is BANK:INDEX, else None (a recording path)."""
    folder, _, index = str(text).rpartition(":")
    if not folder or not _is_bank(Path(folder)):
        return None
    try:
        return folder, int(index)
    except ValueError:
        raise UserError(f"{text}: write BANK:INDEX with an integer index") from None


def _read_target(target: str, args):
    """A recording file, or BANK:INDEX for one simulation of a bank that kept spikes."""
    from .features.spikedata import SpikeData
    from .recordings import read_recording

    hit = _bank_target(target)
    if hit is not None:
        from .bank import Bank

        bank = Bank(hit[0])
        data = SpikeData.from_simulation(bank.spikes(hit[1]), {"path": target, "format": "bank"})
        start = bank.meta["simulator"].get("t_analysis_start", 0.0)
        return data.window(start) if 0 < start < data.duration else data
    return read_recording(target, fmt=args.format, duration=args.duration, fs=args.fs,
                          area=args.area, quality=args.quality)


def cmd_features(args) -> dict:
    from .features.sets import PSD_FREQS, get_feature_set

    fs = get_feature_set(args.set)
    if _is_bank(Path(args.target)):
        from .bank.featurise import featurise
        from .simulators.simulator import default_workers

        report = featurise(args.target, args.set, workers=args.workers or default_workers(),
                           progress=not args.json)
        if not args.json:
            print(f"feature set {args.set} ({report['dim']} values): computed for "
                  f"{report['shards_computed']} shards; bank has {report['shards_total']} shards")
        return report
    data = _read_target(args.target, args)
    values = fs.compute(data)
    def plain(v):
        return None if np.isnan(v) else float(v)

    is_psd = np.array([n.startswith("psd_") for n in fs.names], dtype=bool)
    features = {name: plain(v) for name, v, p in zip(fs.names, values, is_psd) if not p}
    if is_psd.any():  # the spectrum as arrays, not 990 keys
        features["psd"] = [plain(v) for v in values[is_psd]]
        features["psd_freqs"] = PSD_FREQS.tolist()
    if not args.json:
        print(f"{data.source.get('path', args.target)}: {data.n_units} units, {data.n_spikes} "
              f"spikes, {data.duration:g} s; feature set {fs.name} v{fs.version}")
        shown = [(n, v) for n, v in features.items() if not n.startswith("psd")]
        for name, value in shown:
            print(f"  {name:24s} {'missing' if value is None else f'{value:.6g}'}")
        psd = values[is_psd]
        if len(psd) and np.isfinite(psd).any():
            print(f"  psd: {len(psd)} values, 0.5-495 Hz; peak at "
                  f"{PSD_FREQS[int(np.nanargmax(psd))]:g} Hz")
    return features


def cmd_plot(args) -> dict:
    from .plots import plot_spikes

    data = _read_target(args.target, args)
    window = None if args.window is None else tuple(args.window)
    figure = plot_spikes(data, args.out, t_window=window)
    if not args.json:
        print(f"figure: {figure}")
    return {"figure": str(figure)}


def cmd_train(args) -> dict:
    from .inference.figures import training_curve
    from .inference.train import train_on_bank

    require_new_folder(args.out)
    posterior = train_on_bank(args.bank, args.features, estimator=args.estimator,
                              embedding=args.embedding, ensemble=args.ensemble, seed=args.seed,
                              restriction=not args.no_restriction, max_epochs=args.max_epochs,
                              allowed_false_negatives=args.allowed_false_negatives,
                              stream=args.stream, progress=not args.json)
    posterior.save(args.out)
    figure = training_curve(posterior.metrics["training_curves"], args.out / "training_curve.png")
    m = posterior.metrics
    summary = {"posterior": str(args.out), "n_valid": m["n_valid"], "n_invalid": m["n_invalid"],
               "best_validation_loss": m["best_validation_loss"], "restriction": m["restriction"],
               "training_seconds": round(m["training_seconds"], 2), "figure": str(figure)}
    if not args.json:
        print(f"posterior {args.out}: trained on {m['n_valid']} valid simulations "
              f"({m['n_invalid']} invalid ones {'train the restriction classifier' if m['restriction'] else 'ignored'}); "
              f"validation loss {min(m['best_validation_loss']):.3f}; curve {figure}")
    return summary


def _target_features(posterior, target: str, args) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw features of the target (recording or BANK:INDEX) with the posterior's own set,
    and the true θ when the target is a simulation of a bank."""
    from .features.sets import get_feature_set

    name = posterior.features.get("set")
    if name is None or name == "imported":
        raise UserError("this posterior was trained on custom features; pass features from Python")
    fs = get_feature_set(name)
    truth = None
    hit = _bank_target(target)
    if hit is not None:
        from .bank import Bank

        bank, index = Bank(hit[0]), hit[1]
        table = bank.table(index_range=(index, index + 1))
        if not len(table["index"]):
            raise UserError(f"simulation {index} is not in bank {hit[0]}")
        truth = table["theta"][0]
        if name in bank.feature_sets:  # use the features stored with the simulation
            data = bank.arrays(features=name, index_range=(index, index + 1))
            if len(data["index"]):
                return data["x"][0].astype(np.float64), truth
    data = _read_target(target, args)
    if name in ("psd", "mk1") and data.duration < 2.0:
        raise UserError(f"{target} lasts {data.duration:g} s; the {name} feature set needs at "
                        "least 2 s (one Welch segment)")
    return fs.compute(data), truth


def cmd_infer(args) -> dict:
    from .inference import load_posterior
    from .inference.runs import write_samples

    if (args.recording is None) == (args.bank is None):
        raise UserError("give either --recording FILE or --bank BANK --index I")
    require_new_folder(args.out)
    posterior = load_posterior(args.posterior)
    if args.bank is not None and not _is_bank(Path(args.bank)):
        raise UserError(f"{args.bank} is not a bank (no bank.json)")
    target = f"{args.bank}:{args.index}" if args.bank is not None else args.recording
    x, truth = _target_features(posterior, target, args)
    summary = write_samples(posterior, x, truth, target, args.out, args.n, args.oversample,
                            args.seed, posterior_path=str(args.posterior))
    if not args.json:
        print(f"{args.n} samples for {target} in {summary['samples']} ({summary['note']}); "
              f"pairplot {summary['figure']}")
    return summary


def cmd_validate(args) -> dict:
    from .inference import load_posterior
    from .inference.runs import read_samples, validate_samples
    from .simulators.simulator import default_workers

    meta, _ = read_samples(args.samples)
    posterior = load_posterior(meta["posterior"])
    x, truth = np.array(meta["x"], dtype=float), meta.get("truth")
    if args.target is not None and args.target != meta["target"]:
        x, truth = _target_features(posterior, args.target, args)
    summary = validate_samples(args.samples, posterior, x, truth, threshold=args.threshold,
                               workers=args.workers or default_workers(), dask=args.dask,
                               limit=args.limit)
    summary = {k: v for k, v in summary.items()
               if k not in ("results", "samples", "accepted", "distance")}
    if not args.json:
        print(f"yield {summary['yield']:.2f}: {summary['n_accepted']} of {summary['n_simulated']} "
              f"samples reproduce the target (distance <= {args.threshold} noise sd); "
              f"consistent set {summary['consistent_set']}")
    return summary


def cmd_diagnose(args) -> dict:
    from .inference import load_posterior
    from .inference.runs import diagnose_on_bank

    posterior = load_posterior(args.posterior)
    report = diagnose_on_bank(posterior, args.bank, args.cases, args.samples, args.seed,
                              figure=args.out, posterior_path=args.posterior)
    if not args.json:
        print(f"{report['n_cases']} held-out simulations: max |coverage error| "
              f"{report['coverage_max_abs_error']:.3f}, TARP ATC {report['tarp_atc']:.3f}; "
              f"figure {report['figure']}")
        for p in posterior.prior.names:
            print(f"  {p:16s} contraction {report['contraction'][p]:6.2f}   recovery NRMSE "
                  f"{report['recovery_nrmse'][p]:.3f}")
    return {k: v for k, v in report.items() if k not in ("sbc_ranks",)}


def _add_recording_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("npz", "csv", "nwb"), help="file format (default: extension)")
    p.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                   help="recording length (default: from the file, else the last spike)")
    p.add_argument("--fs", type=_positive_float, help="sampling rate (Hz) of electrode,sample CSVs")
    p.add_argument("--area", help="NWB: only units of this brain area (electrode location)")
    p.add_argument("--quality", action="append", metavar="EXPR",
                   help="NWB: keep units passing COLUMN OP VALUE, e.g. 'isi_violations<0.5' "
                        "(repeatable)")


def cmd_bank_info(args) -> dict:
    from .bank import Bank

    info = Bank(args.bank).info()
    if not args.json:
        print(f"bank {info['path']}: {info['total']} simulations in {info['shards']} shards, "
              f"{info['disk_bytes'] / 1e6:.1f} MB")
        print("  by status: " + ", ".join(f"{k} {v}" for k, v in info["by_status"].items()))
        for pop, q in info["rates_ok_hz"].items():
            print(f"  {pop} rate of ok simulations: median {q['median']:.2f} Hz "
                  f"(5-95 %: {q['q05']:.2f}-{q['q95']:.2f})")
        print(f"  simulated {info['simulated_seconds']:.1f} s of biological time in "
              f"{info['wall_seconds']:.1f} s of worker time")
        for name, fs in info["feature_sets"].items():
            print(f"  feature set {name} v{fs['version']}: {fs['dim']} values, computed for "
                  f"{fs['shards']} of {info['shards']} shards")
        print(f"  made by: simulator {info['simulator']}, prior {info['prior']}, seed {info['seed']}, "
              f"created {info['created']}; automind {info['versions'].get('automind')}, "
              f"brian2 {info['versions'].get('brian2')}")
        for problem in info["problems"]:
            print(f"  problem: {problem}")
    return info


def cmd_bank_import(args) -> dict:
    from .bank.importer import import_table
    from .prior import Prior

    report = import_table(args.csv, args.out, Prior.load(args.prior), progress=not args.json)
    if not args.json:
        print(f"imported {report['imported']} simulations with {report['features']} features into "
              f"{report['bank']}" + (f"; {report['outside_prior']} rows outside the prior were "
                                     "skipped" if report["outside_prior"] else ""))
        if report["ignored_columns"]:
            print(f"ignored settings columns: {', '.join(report['ignored_columns'])}")
    return report


def cmd_invariance(args) -> dict:
    from .inference import load_posterior
    from .invariance.analysis import analyse_set
    from .invariance.consistent import (find_consistent_set, load_consistent_set,
                                        simulated_features)
    from .invariance.paths import analyse_path
    from .simulators.simulator import default_workers

    posterior = load_posterior(args.posterior)
    x, truth = _target_features(posterior, args.target, args)
    workers = args.workers or default_workers()
    found = find_consistent_set(posterior, x, args.out, args.n, truth=truth, target=args.target,
                                seed=args.seed, threshold=args.threshold, workers=workers,
                                dask=args.dask, progress=not args.json,
                                posterior_path=str(Path(args.posterior).resolve()))
    if not args.json:
        print(f"{found['n_consistent']} of {found['n_simulated']} samples reproduce "
              f"{args.target} (yield {found['yield']:.2f}); {found['consistent_set']}",
              file=sys.stderr)
    features = simulated_features(posterior, workers, args.dask)
    geometry = analyse_set(posterior, x, load_consistent_set(args.out), args.out,
                           n_local=args.local, fisher=features if args.fisher else None,
                           fisher_points=args.fisher, seed=args.seed)
    if args.path_points:
        path = analyse_path(posterior, x, args.out, features, args.path_points, args.seed)
        geometry["path"] = {k: path[k]["accepted_fraction"] for k in ("path", "straight", "orthogonal")}
        geometry["path"]["simulations"] = path["simulations"]
        if not args.json:
            print(f"re-simulated: {geometry['path']['path']:.0%} of the high-probability path "
                  f"reproduces the target, {geometry['path']['straight']:.0%} of the straight "
                  f"line, {geometry['path']['orthogonal']:.0%} of the orthogonal direction",
                  file=sys.stderr)
    if not args.json:
        local = geometry["local"]
        print(f"participation ratio {geometry['participation_ratio']:.2f} of "
              f"{len(geometry['parameters'])} parameters; local dimensionality (median) "
              f"{local['local_dimensionality_median']:.2f}; local sloppy vs global subspace "
              f"{local['angle_to_global_median_deg']:.0f}° (median); figures in {args.out}")
    keep = ("participation_ratio", "explained_variance_ratio", "pc1", "local", "fisher", "path",
            "figures")
    return found | {k: geometry[k] for k in keep if k in geometry}


def cmd_compare(args) -> dict:
    from .invariance.compare import compare_posteriors, compare_runs

    labels = args.labels.split(",") if args.labels else None
    if args.posterior is not None:
        from .inference import load_posterior
        from .invariance.compare import dataset_labels

        if args.runs:
            raise UserError("pass either run folders or --posterior with --target, not both")
        posterior = load_posterior(args.posterior)
        targets = args.target or []
        names = dataset_labels(labels, [Path(t).name for t in targets])
        report = compare_posteriors(posterior, {name: _target_features(posterior, t, args)[0]
                                                for name, t in zip(names, targets)},
                                    args.out, n=args.n, n_local=args.local, seed=args.seed)
    else:
        if args.target:
            raise UserError("--target needs --posterior")
        report = compare_runs(args.runs, args.out, labels, use=args.use, n_local=args.local)
    if not args.json:
        for pair, result in report["pairs"].items():
            angles = ", ".join(f"{a:.0f}°" for a in result["principal_angles_deg"])
            print(f"{pair}: separating {result['separating_parameters'] or 'none'}; "
                  f"principal angles of the {report['subspace_dimension']}-d invariant "
                  f"subspaces {angles}")
            if "local" in result:
                local = result["local"]
                print(f"  local dimensionality {local['local_dimensionality_median'][0]:.2f} vs "
                      f"{local['local_dimensionality_median'][1]:.2f} (Mann-Whitney p "
                      f"{local['local_dimensionality_p_value']:.2g}); mean local sloppy "
                      f"subspaces {max(local['sloppy_subspace_angles_deg']):.0f}° apart")
        print(f"figures and compare.json in {args.out}")
    return report


def cmd_study_run(args) -> dict:
    from .studies import run_study

    summary = run_study(args.folder, out=args.out, workers=args.workers, quick=args.quick,
                        progress=not args.json)
    if not args.json:
        print(f"study {args.folder} ({summary['kind']}): results in {summary['out']}")
    return summary


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    """Where re-simulations run: local processes or a Dask cluster."""
    p.add_argument("--workers", type=_count, help="local worker processes (default: all cores)")
    p.add_argument("--dask", metavar="ADDRESS", help="local, local:K or tcp://HOST:PORT")


def _add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON object as the last line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="automind",
        description="Find all spiking-circuit configurations consistent with a recording: "
                    "simulate, featurise, train, infer, validate.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="create, extend or resume a simulation bank",
                       description="Make the bank BANK hold simulations 0..n-1 of θ drawn from the "
                                   "prior: creates it, adds what is missing, or resumes after a "
                                   "crash (re-run the same command). Simulation k's θ and seed "
                                   "derive from --seed and k. The model is compiled once and "
                                   "cached. Every simulation gets a status: ok, silent, runaway, "
                                   "timeout or failed.")
    _add_simulation_options(p, "mk1")
    p.add_argument("-n", type=_count, required=True,
                   help="the bank's target size: simulations 0..n-1")
    p.add_argument("--out", type=Path, required=True, metavar="BANK", help="bank folder")
    p.add_argument("--keep-spikes", action="store_true",
                   help="also store compact spike trains (needed to compute new feature sets)")
    p.add_argument("--features", action="append", metavar="SET",
                   help="compute this feature set while simulating (repeatable: spikes, psd, "
                        "bursts, mk1)")
    _add_json(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="the whole method in one command: bank, posterior, recording, "
                                     "consistent set, diagnostics, HTML report",
                       description="On a reduced Brunel (2000) network: simulate a bank from the "
                                   "prior, train a posterior, write a held-out simulation as an NWB "
                                   "recording and read it back, infer, re-simulate the samples "
                                   "(yield, consistent set), check calibration on held-out "
                                   "simulations, and write an HTML report. About 15 minutes on 2 "
                                   "cores; --quick runs toy sizes in about 2 minutes.")
    p.add_argument("--out", type=Path, help="new output folder (default: demo-output/TIMESTAMP)")
    p.add_argument("--quick", action="store_true", help="toy sizes: checks the pipeline in minutes")
    p.add_argument("--workers", type=_count, help="local worker processes (default: all cores)")
    p.add_argument("--seed", type=int, default=1, help="seed of the banks and the training")
    _add_json(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("features", help="summary features of a recording, or compute a set for a bank",
                       description="For a recording (NPZ, MEA, CSV, NWB) or BANK:INDEX: compute "
                                   "the feature set and print it (--json: one JSON object mapping "
                                   "names to values, null = missing). For a bank folder: compute "
                                   "the set for every simulation that kept spikes, in parallel "
                                   "and resumably, without re-simulating.")
    p.add_argument("target", help="recording file, BANK:INDEX, or a bank folder")
    p.add_argument("--set", default="mk1", help="feature set: spikes, psd, bursts or mk1 "
                                                 "(default: mk1)")
    p.add_argument("--workers", type=_count, help="processes for a bank (default: all cores)")
    _add_json(p)
    _add_recording_options(p)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("plot", help="raster, population rate with bursts, and PSD figure",
                       description="Plot a recording or BANK:INDEX: raster, population rate with "
                                   "detected network bursts shaded, and the PSD.")
    p.add_argument("target", help="recording file or BANK:INDEX")
    p.add_argument("--out", type=Path, required=True, help="figure file (.png or .pdf)")
    p.add_argument("--window", type=float, nargs=2, metavar=("START", "STOP"),
                   help="time window to show (s)")
    _add_json(p)
    _add_recording_options(p)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("train", help="train a neural posterior estimator on a bank",
                       description="Train p(θ | x) on a bank's feature set (sbi estimators, our "
                                   "loop; θ in the prior box mapped to R^d). Invalid simulations "
                                   "train a restriction classifier. Writes a posterior artifact "
                                   "(weights + JSON, never pickle) with its training curve.")
    p.add_argument("bank", type=Path, help="bank folder")
    p.add_argument("--features", required=True, metavar="SET", help="feature set to condition on")
    p.add_argument("--out", type=Path, required=True, metavar="POSTERIOR", help="new artifact folder")
    p.add_argument("--estimator", default="zuko_maf",
                   help="zuko_maf (default), maf, nsf, zuko_nsf, mdn (see docs/inference.md)")
    p.add_argument("--embedding", default="auto", choices=("auto", "none", "mlp", "cnn"),
                   help="embedding net for x (auto: an MLP above 64 features)")
    p.add_argument("--ensemble", type=_count, default=1, help="number of estimators (default 1)")
    p.add_argument("--max-epochs", type=_count, default=300)
    p.add_argument("--no-restriction", action="store_true",
                   help="do not learn where the prior gives invalid simulations")
    p.add_argument("--allowed-false-negatives", type=float, default=0.1, metavar="F",
                   help="restriction: fraction of θ with valid bank simulations that sampling "
                        "may still reject (sets the classifier threshold; default 0.1)")
    p.add_argument("--stream", action="store_true",
                   help="stream shards instead of loading the bank (banks larger than memory)")
    p.add_argument("--seed", type=int, default=0)
    _add_json(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("infer", help="sample a posterior for a recording or a bank simulation",
                       description="Compute the target's features with the posterior's own feature "
                                   "set and transforms, sample, and write samples.csv (names, units, "
                                   "log-probs), samples.json and a pairplot. --oversample K draws "
                                   "K·n samples and keeps the n most probable (the published trick).")
    p.add_argument("posterior", type=Path)
    p.add_argument("--recording", help="recording file (NPZ, MEA, CSV, NWB)")
    p.add_argument("--bank", help="bank holding the target simulation")
    p.add_argument("--index", type=int, default=0, help="the target simulation's index in --bank")
    p.add_argument("-n", type=_count, default=1000, help="samples to keep (default 1000)")
    p.add_argument("--oversample", type=_count, default=1, help="draw this many times more")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, metavar="SAMPLES", help="new folder")
    _add_recording_options(p)
    _add_json(p)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("validate", help="re-simulate posterior samples: yield and consistent set",
                       description="Re-simulate the samples of `automind infer` with the bank's "
                                   "simulator, compute the posterior's features, and accept samples "
                                   "whose features lie within the target's simulation noise "
                                   "(RMS over features of the difference in noise sd <= "
                                   "--threshold). Writes consistent_set.csv, validation.json and "
                                   "figures into SAMPLES.")
    p.add_argument("samples", type=Path, metavar="SAMPLES", help="folder written by automind infer")
    p.add_argument("--target", help="recording or BANK:INDEX (default: the one sampled for)")
    p.add_argument("--threshold", type=_positive_float, default=2.0,
                   help="acceptance distance in noise sd (default 2)")
    p.add_argument("--limit", type=_count, help="validate only the first N samples")
    _add_engine_options(p)
    _add_recording_options(p)
    _add_json(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("diagnose", help="calibration and recovery on held-out simulations",
                       description="SBC ranks, expected coverage (HPD), TARP, per-parameter "
                                   "contraction and recovery error on a held-out bank.")
    p.add_argument("posterior", type=Path)
    p.add_argument("--bank", type=Path, required=True, help="held-out bank with the feature set")
    p.add_argument("--cases", type=_count, default=300, help="held-out simulations to use")
    p.add_argument("--samples", type=_count, default=200, help="posterior samples per case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="coverage figure (default: in the posterior folder)")
    _add_json(p)
    p.set_defaults(func=cmd_diagnose)

    bank = sub.add_parser("bank", help="inspect and import simulation banks").add_subparsers(
        dest="bank_command", required=True, metavar="ACTION")
    p = bank.add_parser("info", help="counts per status, rates, time, size, provenance, problems")
    p.add_argument("bank", type=Path, help="bank folder")
    _add_json(p)
    p.set_defaults(func=cmd_bank_info)
    p = bank.add_parser("import", help="import a published AutoMIND summary table (CSV)",
                        description="Read a CSV with θ columns named params_<group>.<name> "
                                    "(params_net.*, params_Epop.*, params_Ipop.*) and feature "
                                    "columns into a new bank with the feature set 'imported'.")
    p.add_argument("csv", type=Path, help="summary table (CSV)")
    p.add_argument("--out", type=Path, required=True, metavar="BANK", help="new bank folder")
    p.add_argument("--prior", default="mk1", help="prior the θ columns map to (default: mk1)")
    _add_json(p)
    p.set_defaults(func=cmd_bank_import)

    p = sub.add_parser("invariance", help="find the consistent set for a target and its geometry",
                       description="Sample the posterior for the target, re-simulate the samples "
                                   "(resumable: re-run the same command after an interruption), "
                                   "keep those that reproduce the target (within --threshold noise "
                                   "sd), and analyse the set in prior-standardised coordinates: "
                                   "PCA and participation ratio, marginal and conditional "
                                   "correlations, local stiff / sloppy directions from the "
                                   "posterior Hessian (and, with --fisher K, from the features' "
                                   "Fisher information at K configurations), and a re-simulated "
                                   "high-probability path through the set. Writes "
                                   "consistent_set.csv, consistent.npz, geometry.json, path.json "
                                   "and figures.")
    p.add_argument("posterior", type=Path)
    p.add_argument("--target", required=True, help="recording file or BANK:INDEX")
    p.add_argument("-n", type=_count, default=500, help="posterior samples to re-simulate")
    p.add_argument("--threshold", type=_positive_float, default=2.0,
                   help="acceptance: RMS feature distance in noise sd (default 2)")
    p.add_argument("--local", type=_count, default=50,
                   help="configurations with a local (Hessian) analysis (default 50)")
    p.add_argument("--fisher", type=int, default=0, metavar="K",
                   help="Fisher information at K configurations ((2d+1)·4 simulations each)")
    p.add_argument("--path-points", type=_path_points, default=9, metavar="K",
                   help="re-simulate K points along a high-probability path between the two "
                        "most distant consistent configurations, and along the straight line "
                        "and the orthogonal direction for contrast (3K simulations; 0 = skip; "
                        "default 9)")
    p.add_argument("--seed", type=int, default=0)
    _add_engine_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="folder of the run (created, or resumed with the same settings)")
    _add_recording_options(p)
    _add_json(p)
    p.set_defaults(func=cmd_invariance)

    p = sub.add_parser("compare", help="compare the consistent sets of several targets",
                       description="Compare datasets (e.g. organoid ages, brain areas): per-"
                                   "parameter shifts in prior sd, which parameters separate them "
                                   "(|shift| > pooled sd), overlap coefficients of the marginals, "
                                   "principal angles between their invariant (top principal) "
                                   "subspaces, global participation ratios, and local geometry "
                                   "(local dimensionality with a Mann-Whitney test, angles "
                                   "between mean local sloppy subspaces). Either folders of "
                                   "`automind invariance` (their consistent sets, or --use "
                                   "posterior for all their posterior samples), or one posterior "
                                   "sampled for several --target recordings (no simulation). "
                                   "Writes compare.json and figures.")
    p.add_argument("runs", nargs="*", type=Path, help="invariance run folders")
    p.add_argument("--use", choices=("consistent", "posterior"), default="consistent",
                   help="compare the runs' consistent sets (default) or posterior samples")
    p.add_argument("--posterior", type=Path, help="compare this posterior's samples for --target")
    p.add_argument("--target", action="append", metavar="T",
                   help="recording file or BANK:INDEX (repeat; with --posterior)")
    p.add_argument("-n", type=_count, default=2000, help="posterior samples per target (default 2000)")
    p.add_argument("--local", type=int, default=50, metavar="K",
                   help="configurations per dataset with a local Hessian analysis (0 = skip; "
                        "needs the posterior; default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", help="comma-separated names of the datasets (default: folder or "
                                    "target names)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    _add_recording_options(p)
    _add_json(p)
    p.set_defaults(func=cmd_compare)

    study = sub.add_parser("study", help="run a ready-made study from studies/").add_subparsers(
        dest="study_command", required=True, metavar="ACTION")
    p = study.add_parser("run", help="run studies/NAME: simulate, train, analyse, write figures",
                         description="Run the study whose study.toml is in FOLDER and write its "
                                     "figures and results.json to FOLDER/results (or --out).")
    p.add_argument("folder", type=Path, help="study folder, e.g. studies/brunel_phase")
    p.add_argument("--out", type=Path, help="results folder (default: FOLDER/results)")
    p.add_argument("--workers", type=_count, help="local worker processes (default: all cores)")
    p.add_argument("--quick", action="store_true",
                   help="toy sizes (minutes): check the pipeline, not the science")
    _add_json(p)
    p.set_defaults(func=cmd_study_run)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM (a scheduler's kill, `kill PID`) shuts down like Ctrl-C: worker pools are
    # closed on the way out instead of being left behind as orphans
    previous = (signal.signal(signal.SIGTERM, _interrupt)
                if threading.current_thread() is threading.main_thread() else None)
    try:
        summary = args.func(args)
    except UserError as err:
        print(f"automind: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("automind: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if getattr(args, "json", False):
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
