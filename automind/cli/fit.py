"""``automind fit``: consistent configurations for a recording (probe, restrict, truncate, validate)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..fit.refine import REFINE_UNTIL, STEPS
from .options import (add_engine_options, add_json, add_recording_options, count, positive_float,
                      recording_options, workers)


def yield_or_never(text: str) -> float | None:
    """A yield in (0, 1], or 'never' (None)."""
    if text == "never":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a yield in (0, 1] or 'never', got {text!r}")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "fit", help="fit a model to a recording: probe, restrict, truncated rounds, consistent set",
        description="Spend simulations where the target is. Probe rounds run short simulations "
                    "from the prior and learn the region where the model is valid and comes near "
                    "the recording's rate and ISI CV; truncated rounds (TSNPE) run full-length "
                    "simulations from the prior truncated to that region and then to the latest "
                    "posterior's highest-probability region, training NPE on all rounds; finally "
                    "posterior samples are re-simulated and moved onto the recording by ensemble-"
                    "Kalman refinement generations (--refine); those that reproduce the recording "
                    "form the consistent set. Every round is a bank: run the same command again to "
                    "resume an interrupted fit. Writes RUN/summary.json and RUN/report/index.html.")
    p.add_argument("recording", help="recording file (NPZ, MEA, CSV, NWB) or BANK:INDEX")
    p.add_argument("--simulator", default="mk1", help="simulator spec: name or .toml (default mk1)")
    p.add_argument("--prior", help="prior spec: name or path (default: the simulator's own)")
    p.add_argument("--features", default="mk1_compact", metavar="SET",
                   help="feature set the posterior conditions on (default mk1_compact; must "
                        "contain rate_mean and isi_cv_mean for the probes); mea: a virtual MEA, as "
                        "many simulated neurons as the recording keeps electrodes (meaxM: M "
                        "pooled per electrode; docs/features.md)")
    p.add_argument("--budget", type=count,
                   help="total simulations: probes, truncated rounds, the final validation and "
                        "refinement and exploration (required by --method sbi)")
    p.add_argument("--out", type=Path, required=True, metavar="RUN",
                   help="run folder (created, or resumed with the same settings)")
    p.add_argument("--method", choices=("sbi", "gradient"), default="sbi",
                   help="sbi (default), or gradient: θ by gradient descent through the torch "
                        "MK1 from K starts, every result re-simulated in Brian2 (docs/fit.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--N", type=int, help="network size (default: the spec's; recompiles once)")
    p.add_argument("--probe-rounds", type=count, default=2, help="probe rounds (default 2)")
    p.add_argument("--rounds", type=count, default=3, help="truncated rounds (default 3)")
    p.add_argument("--probe-duration", type=positive_float, default=1.0, metavar="SECONDS",
                   help="biological time of a probe run (default 1 s)")
    p.add_argument("--sim-duration", type=positive_float, metavar="SECONDS",
                   help="biological time of a truncated-round run (default: the spec's)")
    p.add_argument("--rate-tolerance", type=positive_float, default=0.2, metavar="DECADES",
                   help="a probe is near the target within this many decades of its rate (0.2)")
    p.add_argument("--cv-tolerance", type=positive_float, default=0.5,
                   help="... and within this of its mean ISI CV where both have one (0.5)")
    p.add_argument("--final-samples", type=count,
                   help="posterior samples re-simulated at the end (default 6 %% of the budget, "
                        "at most 400)")
    p.add_argument("--refine", type=int, default=6, metavar="GENERATIONS",
                   help="refinement generations after the final validation, each re-simulating "
                        "as many moved samples (at most; default 6; 0 = off)")
    p.add_argument("--refine-until", type=yield_or_never, default=REFINE_UNTIL, metavar="YIELD",
                   help=f"stop refining after the first generation with this yield: its samples "
                        f"then reproduce the recording, and the generations left are not "
                        f"simulated (default {REFINE_UNTIL:g}; 'never' runs them all)")
    p.add_argument("--refine-step", choices=STEPS, default="full",
                   help="full (default): every member takes the whole ensemble-Kalman step; "
                        "adaptive: a member's step is halved after a move that did not bring it "
                        "closer and doubled (up to full) after one that did; select: adaptive, and "
                        "before each move the farther half of the members restarts from copies of "
                        "the nearest quarter (more yield, less spread); hold: full steps, but "
                        "members kept at an accepted configuration stay and are re-simulated "
                        "(fewer distinct configurations; more yield on a very thin set once "
                        "full steps reached it, less from the start; docs/fit.md)")
    p.add_argument("--refine-space", choices=("prior", "log"), default="log",
                   help="where refinement and exploration move θ: log (default): standardised "
                        "over the prior box, with positive parameters whose bounds span a decade "
                        "or more (time constants, conductances, rates) on a log scale, so a "
                        "rhythm set by a 0.2 s time constant in a 5 ms - 20 s prior can be "
                        "resolved; prior: on the prior's own scale (docs/fit.md)")
    p.add_argument("--explore", type=int, default=0, metavar="GENERATIONS",
                   help="exploration generations after refinement: grow the consistent set "
                        "outwards (steps away from other members, mirrored into the prior), each "
                        "re-simulating as many proposals; the set then maps how far consistent "
                        "configurations reach, not their density (default 0 = off; docs/fit.md)")
    p.add_argument("--target-window", choices=("auto", "whole"), default="auto",
                   help="auto (default): a recording >= 3 simulated runs long is fitted on one "
                        "window of their analysed length (the one with the median number of "
                        "population events) and its window-to-window spread is added to the "
                        "acceptance noise; whole: the whole recording against shorter runs")
    p.add_argument("--threshold", type=positive_float, default=2.0,
                   help="acceptance distance in noise sd, as automind validate (default 2)")
    p.add_argument("--cheap-screen", type=positive_float, metavar="DECADES",
                   help="first probe round: simulate only draws the cheap model (docs/cheap.md) "
                        "predicts ok within this many decades of the target's rate (off by "
                        "default; needs the cheap table: automind cheap build). 1.5 saved 29 %% "
                        "of the probe simulations of six MK1 fits, as good on five of them")
    p.add_argument("--cheap-table", metavar="FOLDER|analytic",
                   help="the cheap screen's table: a built table's folder, or analytic (the "
                        "Siegert transfer function, no table needed); default: the built table "
                        "in the cache")
    from .fit_gradient import add_gradient_options

    add_gradient_options(p)
    add_engine_options(p)
    add_recording_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..fit import fit

    if args.method == "gradient":
        from .fit_gradient import run_gradient

        return run_gradient(args)
    if args.budget is None:
        raise UserError("--method sbi needs --budget (total simulations)")
    if args.device != "cpu":
        raise UserError("--device applies to --method gradient (the sbi method simulates in "
                        "Brian2 on the CPU)")
    summary = fit(args.recording, args.out, simulator=args.simulator, prior=args.prior,
                  features=args.features, budget=args.budget, workers=workers(args),
                  dask=args.dask, progress=not args.json,
                  recording_options=recording_options(args),
                  spec_overrides={"N": args.N} if args.N else None, seed=args.seed,
                  probe_rounds=args.probe_rounds, rounds=args.rounds,
                  probe_duration=args.probe_duration, duration=args.sim_duration,
                  rate_tolerance=args.rate_tolerance, cv_tolerance=args.cv_tolerance,
                  final_samples=args.final_samples, threshold=args.threshold,
                  cheap_screen=args.cheap_screen,
                  cheap_table=args.cheap_table, refine=args.refine,
                  refine_step=args.refine_step, refine_space=args.refine_space,
                  refine_until=args.refine_until,
                  explore=args.explore, target_window=args.target_window)
    if not args.json:
        print(f"yield {summary['yield']:.2f}: {summary['n_consistent']} of "
              f"{summary['n_simulated_final']} {'refined' if summary['refinement'] else 'posterior'} "
              f"samples reproduce {args.recording}; "
              f"{summary['simulations']} simulations; posterior {summary['nats']:.2f} nats from "
              f"the prior; report {summary.get('report')}")
        if "set_sd_over_prior_sd" in summary:
            print(f"the consistent set ({summary['set_size']} configurations) spans "
                  f"{summary['set_sd_over_prior_sd']:.2f} of the prior's spread (median over "
                  "parameters); refined sets cover part of the consistent configurations, not "
                  "all; --explore maps more (docs/fit.md)")
    return summary
