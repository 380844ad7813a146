"""Option types and option groups shared by several commands."""

from __future__ import annotations

import argparse

from ..progress import say


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _integer_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {text}")
    return value


def count(text: str) -> int:
    """A whole number >= 1."""
    return _integer_at_least(text, 1)


def whole(text: str) -> int:
    """A whole number >= 0."""
    return _integer_at_least(text, 0)


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON object as the last line")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Where simulations run: local processes or a Dask cluster."""
    p.add_argument("--workers", type=count, help="local worker processes (default: all cores)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on Dask instead of local processes: local, local:K (start a "
                        "LocalCluster with K workers) or tcp://HOST:PORT (a running scheduler)")


def add_simulation_options(p: argparse.ArgumentParser, default_simulator: str) -> None:
    p.add_argument("--simulator", default=default_simulator,
                   help="simulator spec: short name (mk1, brunel) or path to a .toml "
                        f"(default: {default_simulator})")
    p.add_argument("--prior", help="prior spec: short name or path (default: the simulator's own)")
    p.add_argument("--seed", type=int, default=0,
                   help="global seed; simulation k's seed derives from it and k (default: 0)")
    p.add_argument("--duration", type=positive_float, metavar="SECONDS",
                   help="biological time per simulation (default: the spec's)")
    p.add_argument("--N", type=int, help="number of neurons (default: the spec's; recompiles once)")
    p.add_argument("--dt", type=positive_float, metavar="MS",
                   help="time step in ms (default: the spec's; recompiles once)")
    add_engine_options(p)
    p.add_argument("--chunk-size", type=count,
                   help="simulations per shard (fixed when the bank is created; default 8)")
    p.add_argument("--reference-quirks", action="store_true",
                   help="MK1: reproduce the public reference code's slot-wise clusters, frozen "
                        "v_cut, shared ΔT and first-block igniters")


def load_setup(args):
    """(simulator spec, prior) from the simulation options, checked against each other."""
    from ..prior import Prior
    from ..simulators import SimulatorSpec
    from ..simulators.simulator import check_prior_fits

    spec = SimulatorSpec.load(args.simulator)
    if args.reference_quirks:
        spec = spec.with_overrides(reference_quirks=True)
    spec = spec.with_overrides(duration=args.duration, N=args.N,
                               dt=None if args.dt is None else args.dt * 1e-3)
    prior = Prior.load(args.prior or spec.prior)
    check_prior_fits(spec, prior)
    return spec, prior


def add_recording_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("npz", "csv", "nwb", "h5"),
                   help="file format (default: the content or extension; h5 = MEA spike list)")
    p.add_argument("--duration", type=positive_float, metavar="SECONDS",
                   help="recording length (default: from the file, else the last spike)")
    p.add_argument("--fs", type=positive_float, help="sampling rate (Hz) of electrode,sample CSVs")
    p.add_argument("--area", help="NWB: only units of this brain area (electrode location)")
    p.add_argument("--quality", action="append", metavar="EXPR",
                   help="NWB: keep units passing COLUMN OP VALUE, e.g. 'isi_violations<0.5' "
                        "(repeatable)")
    p.add_argument("--min-rate", type=float, metavar="HZ",
                   help="drop electrodes / units firing below HZ (reported; default: keep all)")
    p.add_argument("--keep-lines", action="store_true",
                   help="do not mask line-noise peaks from the spectral features")


def recording_options(args) -> dict:
    """The recording options of ``args`` as keyword arguments of ``read_target``: those of
    ``read_recording``, then ``--min-rate`` and line masking, each step noted on stderr."""
    return {"fmt": args.format, "duration": args.duration, "fs": args.fs, "area": args.area,
            "quality": args.quality, "min_rate": args.min_rate,
            "mask_lines": not args.keep_lines, "report": lambda note: say(f"note: {note}")}


def workers(args) -> int:
    from ..simulators.execution import default_workers

    return args.workers or default_workers()


