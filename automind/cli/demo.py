"""``automind demo``: the main job in one command (automind/demo_mk1.py), or the Brunel
walk-through of the amortised method (automind/demo.py)."""

from __future__ import annotations

from pathlib import Path

from .options import add_json, count


def register(sub) -> None:
    p = sub.add_parser("demo", help="the main job in one command: MK1 fitted to a held-out MK1 "
                                     "recording with `automind fit` (--model brunel: the amortised "
                                     "walk-through on a reduced Brunel network)",
                       description="Default (--model mk1): draw a target from the MK1 prior by a "
                                   "written rule (the first asynchronous network firing at "
                                   "1-30 Hz), simulate it, write it as an NWB recording, fit MK1 "
                                   "to it with `automind fit` (probe rounds, truncated rounds, "
                                   "refinement) and report the consistent set, its yield and "
                                   "whether the truth's own re-simulations are accepted. "
                                   "--model brunel: on a reduced Brunel (2000) network, simulate a "
                                   "bank from the prior, train a posterior, infer for a held-out "
                                   "NWB recording, re-simulate the samples, check calibration. "
                                   "Both write an HTML report; about 15-20 minutes on 2 cores, "
                                   "--quick runs toy sizes in a few minutes.")
    p.add_argument("--model", choices=("mk1", "brunel"), default="mk1",
                   help="mk1 (default): `automind fit` on a held-out MK1 recording; brunel: the "
                        "amortised walk-through on a reduced Brunel network")
    p.add_argument("--out", type=Path, help="new output folder (default: demo-output/TIMESTAMP)")
    p.add_argument("--quick", action="store_true", help="toy sizes: checks the pipeline in minutes")
    p.add_argument("--workers", type=count, help="local worker processes (default: all cores)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the simulations and the training (mk1: also of the target draw)")
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from datetime import datetime

    out = args.out or Path("demo-output") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.model == "brunel":
        from ..demo import run_demo

        summary = run_demo(out, quick=args.quick, workers=args.workers, seed=args.seed,
                           progress=not args.json)
        if not args.json:
            print_brunel_summary(summary)
        return summary
    from ..demo_mk1 import run_mk1_demo

    summary = run_mk1_demo(out, quick=args.quick, workers=args.workers, seed=args.seed,
                           progress=not args.json)
    if not args.json:
        print_mk1_summary(summary)
    return summary


def print_brunel_summary(summary: dict) -> None:
    print(f"yield {summary['yield']:.2f} ({summary['n_accepted']} of "
          f"{summary['n_simulated']} re-simulated samples reproduce the recording); max "
          f"|coverage error| {summary['coverage_max_abs_error']:.3f}; "
          f"{summary['seconds']['total']:.0f} s")
    print(f"report: {summary['report']}")


def print_mk1_summary(summary: dict) -> None:
    truth = summary["truth_resimulations_accepted"]
    print(f"target: MK1 prior draw {summary['target']['pool_index']} "
          f"({summary['target']['recording_rate_mean']:.2f} Hz); yield {summary['yield']:.3f} "
          f"({summary['n_consistent']} of {summary['n_simulated_final']} refined samples "
          f"reproduce the recording); the truth's own re-simulations accepted "
          + ("(not measured)" if truth is None else f"{truth:.0%}")
          + f"; {summary['simulations']} simulations; {summary['seconds']['total']:.0f} s")
    inside = summary["truth_in_set_5_95"]  # None below 10 consistent configurations
    if inside is not None:
        print(f"the truth lies inside the consistent set's 5-95 % range for {inside} of "
              f"{len(summary['truth'])} parameters")
    print(f"overview: {summary['index']}")
    print(f"report: {summary['report']}")
