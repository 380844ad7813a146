"""The ``automind`` command. User mistakes print one line and exit with status 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from .errors import UserError


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
    p.add_argument("--reference-quirks", action="store_true",
                   help="MK1: reproduce the public reference code's slot-wise clusters, frozen "
                        "v_cut, shared ΔT and first-block igniters")


def _load_setup(args):
    import dataclasses

    from .prior import Prior
    from .simulators import MODELS, SimulatorSpec

    spec = SimulatorSpec.load(args.simulator)
    if args.reference_quirks:
        spec = dataclasses.replace(spec, reference_quirks=True)
    spec = spec.with_overrides(duration=args.duration, N=args.N,
                               dt=None if args.dt is None else args.dt * 1e-3)
    prior = Prior.load(args.prior or spec.prior)
    missing = [n for n in MODELS[spec.model].theta_names if n not in prior.names]
    if missing:
        raise UserError(f"prior {prior.name!r} lacks parameters {missing} needed by the "
                        f"{spec.model} model")
    return spec, prior


def _run_simulations(args, spec, prior, out: Path | None, progress: bool):
    """Simulate args.n θ from the prior; write the output folder if ``out``; return results."""
    from .simulators.output import write_provenance, write_simulation, write_table
    from .simulators.simulator import Simulator, default_workers, run_batch, simulation_seed

    thetas = prior.sample(args.n, seed=args.seed)
    print(f"compiling or loading the {spec.model} simulator (N={spec.N}, dt={spec.dt * 1e3:g} ms)"
          " ...", file=sys.stderr, flush=True)
    sim = Simulator(spec)
    if out is not None:
        write_provenance(out, spec, prior, args.seed, args.n, sim.compiled)
    jobs = [(prior.to_simulator(row), simulation_seed(args.seed, k), k, spec.duration, row)
            for k, row in enumerate(thetas)]
    results = []
    for result in run_batch(sim, jobs, min(args.workers or default_workers(), len(jobs)), progress):
        results.append(result)
        if out is not None:
            write_simulation(out, result)
    results.sort(key=lambda r: r.index)
    if out is not None:
        write_table(out, results, prior)
    return sim, results


def cmd_simulate(args) -> dict:
    from .simulators.output import prepare_out_dir

    spec, prior = _load_setup(args)
    out = prepare_out_dir(args.out)
    _, results = _run_simulations(args, spec, prior, out, progress=not args.json)
    counts = Counter(r.status for r in results)
    summary = {"out": str(out), "total": len(results), "by_status": dict(counts),
               "bio_seconds": sum(r.t_end for r in results),
               "wall_seconds": sum(r.wall_time for r in results)}
    if not args.json:
        print(f"{len(results)} simulations in {out}: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return summary


def cmd_demo(args) -> dict:
    """Short MK1 run: simulate θ from the prior, plot the most active valid one."""
    from .plots import plot_simulation
    from .simulators.output import prepare_out_dir

    args.reference_quirks = False
    spec, prior = _load_setup(args)
    out = prepare_out_dir(args.out)
    _, results = _run_simulations(args, spec, prior, out, progress=not args.json)
    counts = Counter(r.status for r in results)
    valid = [r for r in results if r.status == "ok"] or [r for r in results if r.spikes]
    figure = None
    if valid:
        best = max(valid, key=lambda r: r.rate("E"))
        figure = plot_simulation(best, out / "demo_simulation.png",
                                 t_window=(max(0.0, best.t_end - 2.0), best.t_end))
    summary = {"out": str(out), "total": len(results), "by_status": dict(counts),
               "figure": str(figure) if figure else None}
    if not args.json:
        print(f"{len(results)} MK1 simulations: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        print(f"figure: {figure}" if figure else "no simulation produced spikes to plot")
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="automind",
        description="Find all spiking-circuit configurations consistent with a recording: "
                    "simulate, featurise, train, infer, validate.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="simulate n parameter sets drawn from a prior",
                       description="Draw n θ from the prior and simulate each on the compiled "
                                   "model (compiled once, cached on disk). Every simulation gets a "
                                   "status: ok, silent, runaway, timeout or failed.")
    _add_simulation_options(p, "mk1")
    p.add_argument("-n", type=_count, required=True, help="number of simulations")
    p.add_argument("--out", type=Path, required=True, help="new output folder")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="run a short MK1 simulation batch and plot it",
                       description="Simulate 16 MK1 θ from the prior (5 s each) and write a "
                                   "raster / population rate / PSD figure of the most active "
                                   "valid one.")
    _add_simulation_options(p, "mk1")
    p.set_defaults(duration=5.0)
    p.add_argument("-n", type=_count, default=16, help="number of simulations (default: 16)")
    p.add_argument("--out", type=Path, default=Path("demo-output"),
                   help="new output folder (default: ./demo-output)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        summary = args.func(args)
    except UserError as err:
        print(f"automind: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("automind: interrupted", file=sys.stderr)
        return 130
    if getattr(args, "json", False):
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
