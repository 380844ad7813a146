"""The options and the run of ``automind fit --method gradient`` (a part of the ``fit`` command)."""

from __future__ import annotations

from pathlib import Path

from .options import count, positive_float, recording_options, workers

def add_gradient_options(p) -> None:
    g = p.add_argument_group("--method gradient (docs/fit.md)")
    g.add_argument("--starts", type=count, default=8, help="K starts fitted in one batch (8)")
    g.add_argument("--steps", type=count, default=100, help="gradient steps (100)")
    g.add_argument("--lr", type=positive_float, default=0.05,
                   help="Adam learning rate on the prior box's logit coordinates (0.05)")
    g.add_argument("--starts-from", type=Path, metavar="POSTERIOR",
                   help="start from this posterior's samples at the recording (default: the prior)")
    g.add_argument("--loss", action="append", choices=("d2", "rate_quantiles", "fano_curve"),
                   help="loss terms (repeatable; d2, validate's distance, is always included)")
    g.add_argument("--fit-features", nargs="+", metavar="NAME",
                   help="the d² features (default: every differentiable one the recording has)")
    g.add_argument("--band", type=positive_float, nargs=2, metavar=("F1", "F2"),
                   help="maximise the E rate's power in F1..F2 Hz (needs --rate-range)")
    g.add_argument("--rate-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="hinge holding the E rate inside LO..HI Hz")
    g.add_argument("--compare", type=Path, metavar="POSTERIOR",
                   help="each fit's HPD level under this posterior, beside its Brian2 distance")
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    g.add_argument("--memory-limit", type=positive_float, default=4.0, metavar="GIB",
                   help="autograd memory ceiling of the dense differentiable run (4 GiB)")


def run_gradient(args) -> dict:
    from ..fit.gradient import fit_gradient

    summary = fit_gradient(
        args.recording, args.out, simulator=args.simulator, prior=args.prior, workers=workers(args),
        progress=not args.json, spec_overrides={"N": args.N} if args.N else None,
        compare_with=args.compare, recording_options=recording_options(args),
        features=args.features, starts=args.starts, steps=args.steps, lr=args.lr, seed=args.seed,
        threshold=args.threshold, loss=tuple(t for t in (args.loss or ()) if t != "d2"),
        band=tuple(args.band) if args.band else None,
        rate_range=tuple(args.rate_range) if args.rate_range else None,
        starts_from=str(args.starts_from) if args.starts_from else None,
        fit_features=tuple(args.fit_features) if args.fit_features else None,
        dtype=args.dtype, memory_limit_gib=args.memory_limit)
    if not args.json:
        print(f"yield {summary['yield']:.2f}: {summary['n_consistent']} of {summary['n_starts']} "
              f"gradient fits reproduce {args.recording} when re-simulated in Brian2 "
              f"({summary['n_failed']} failed); fit {summary['fit_seconds']:.0f} s; "
              f"{summary['consistent_set']}")
        for row in summary["fits"]:
            d = row["brian2_distance"]
            print(f"  start {row['start']}: {row['status']}, Brian2 d = "
                  f"{'-' if d is None else f'{d:.2f}'}, {'accepted' if row['accepted'] else 'rejected'}")
        if "compare" in summary:
            c = summary["compare"]
            print(f"under {c['posterior']}: {c['inside_90pct_hpd']} of {len(c['fits'])} fits "
                  "inside the 90 % HPD region")
            for row in c["fits"]:
                print(f"  start {row['start']}: HPD level {row['hpd_level']:.3f}")
    return summary
