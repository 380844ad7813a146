"""``automind demo``: the whole method in one command (see automind/demo.py)."""

from __future__ import annotations

from pathlib import Path

from .options import add_json, count


def register(sub) -> None:
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
    p.add_argument("--workers", type=count, help="local worker processes (default: all cores)")
    p.add_argument("--seed", type=int, default=1, help="seed of the banks and the training")
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from datetime import datetime

    from ..demo import run_demo

    out = args.out or Path("demo-output") / datetime.now().strftime("%Y%m%d-%H%M%S")
    summary = run_demo(out, quick=args.quick, workers=args.workers, seed=args.seed,
                       progress=not args.json)
    if not args.json:
        print(f"yield {summary['yield']:.2f} ({summary['n_accepted']} of {summary['n_simulated']} "
              f"re-simulated samples reproduce the recording); max |coverage error| "
              f"{summary['coverage_max_abs_error']:.3f}; {summary['seconds']['total']:.0f} s")
        print(f"report: {summary['report']}")
    return summary
