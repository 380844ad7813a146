"""``automind compare``: compare the consistent sets (or posteriors) of several datasets."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .options import add_json, add_recording_options, count, recording_options


def register(sub) -> None:
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
    p.add_argument("-n", type=count, default=2000, help="posterior samples per target (default 2000)")
    p.add_argument("--local", type=int, default=50, metavar="K",
                   help="configurations per dataset with a local Hessian analysis (0 = skip; "
                        "needs the posterior; default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", help="comma-separated names of the datasets (default: folder or "
                                    "target names)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    add_recording_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..invariance.compare import compare_posteriors, compare_runs

    labels = args.labels.split(",") if args.labels else None
    if args.posterior is not None:
        from ..inference import load_posterior
        from ..inference.targets import target_features
        from ..invariance.compare import dataset_labels

        if args.runs:
            raise UserError("pass either run folders or --posterior with --target, not both")
        posterior = load_posterior(args.posterior)
        targets = args.target or []
        names = dataset_labels(labels, [Path(t).name for t in targets])
        options = recording_options(args)
        report = compare_posteriors(posterior, {name: target_features(posterior, t, **options)[0]
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
