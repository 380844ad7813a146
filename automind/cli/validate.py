"""``automind validate``: re-simulate posterior samples; yield and consistent set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .options import (add_engine_options, add_json, add_recording_options, count, positive_float,
                      recording_options, workers)


def register(sub) -> None:
    p = sub.add_parser("validate", help="re-simulate posterior samples: yield and consistent set",
                       description="Re-simulate the samples of `automind infer` with the bank's "
                                   "simulator, compute the posterior's features, and accept samples "
                                   "whose features lie within the target's simulation noise "
                                   "(RMS over features of the difference in noise sd <= "
                                   "--threshold). Writes consistent_set.csv, validation.json and "
                                   "figures into SAMPLES.")
    p.add_argument("samples", type=Path, metavar="SAMPLES", help="folder written by automind infer")
    p.add_argument("--target", help="recording or BANK:INDEX (default: the one sampled for)")
    p.add_argument("--threshold", type=positive_float, default=2.0,
                   help="acceptance distance in noise sd (default 2)")
    p.add_argument("--limit", type=count, help="validate only the first N samples")
    add_engine_options(p)
    add_recording_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..inference import load_posterior
    from ..inference.runs import read_samples, validate_samples
    from ..inference.targets import target_features

    meta, _ = read_samples(args.samples)
    posterior = load_posterior(meta["posterior"])
    x, truth = np.array(meta["x"], dtype=float), meta.get("truth")
    if args.target is not None and args.target != meta["target"]:
        x, truth = target_features(posterior, args.target, **recording_options(args))
    summary = validate_samples(args.samples, posterior, x, truth, threshold=args.threshold,
                               workers=workers(args), dask=args.dask, limit=args.limit)
    summary = {k: v for k, v in summary.items()
               if k not in ("results", "samples", "accepted", "distance")}
    if not args.json:
        print(f"yield {summary['yield']:.2f}: {summary['n_accepted']} of {summary['n_simulated']} "
              f"samples reproduce the target (distance <= {args.threshold} noise sd); "
              f"consistent set {summary['consistent_set']}")
    return summary
