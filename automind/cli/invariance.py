"""``automind invariance``: the consistent set of a target and its geometry."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..progress import say
from .options import (add_engine_options, add_json, add_recording_options, count, positive_float,
                      recording_options, workers)


def path_points(text: str) -> int:
    value = 0 if text.strip() == "0" else count(text)
    if value in (1, 2):
        raise argparse.ArgumentTypeError(f"must be 0 (skip) or >= 3, got {text}")
    return value


def register(sub) -> None:
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
    p.add_argument("-n", type=count, default=500, help="posterior samples to re-simulate")
    p.add_argument("--threshold", type=positive_float, default=2.0,
                   help="acceptance: RMS feature distance in noise sd (default 2)")
    p.add_argument("--local", type=count, default=50,
                   help="configurations with a local (Hessian) analysis (default 50)")
    p.add_argument("--fisher", type=int, default=0, metavar="K",
                   help="Fisher information at K configurations ((2d+1)·4 simulations each)")
    p.add_argument("--path-points", type=path_points, default=9, metavar="K",
                   help="re-simulate K points along a high-probability path between the two "
                        "most distant consistent configurations, and along the straight line "
                        "and the orthogonal direction for contrast (3K simulations; 0 = skip; "
                        "default 9)")
    p.add_argument("--cheap", nargs="?", const="", metavar="TABLE",
                   help="also compare the cheap model's predicted iso-rate normals (docs/cheap.md) "
                        "at the --local configurations with the posterior's stiffest directions "
                        "and the consistent set's thinnest ones (geometry_cheap.png); TABLE: a "
                        "cheap table folder, 'analytic' (the Siegert transfer function), or the "
                        "built table in the cache when omitted")
    p.add_argument("--seed", type=int, default=0)
    add_engine_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="folder of the run (created, or resumed with the same settings)")
    add_recording_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..inference import load_posterior
    from ..inference.targets import target_features
    from ..invariance.analysis import analyse_set
    from ..invariance.consistent import (find_consistent_set, load_consistent_set,
                                         simulated_features)
    from ..invariance.paths import analyse_path

    posterior = load_posterior(args.posterior)
    cheap = _cheap_model(posterior, args.cheap) if args.cheap is not None else None
    x, truth = target_features(posterior, args.target, **recording_options(args))
    n_workers = workers(args)
    found = find_consistent_set(posterior, x, args.out, args.n, truth=truth, target=args.target,
                                seed=args.seed, threshold=args.threshold, workers=n_workers,
                                dask=args.dask, progress=not args.json,
                                posterior_path=str(Path(args.posterior).resolve()))
    if not args.json:
        say(f"{found['n_consistent']} of {found['n_simulated']} samples reproduce "
            f"{args.target} (yield {found['yield']:.2f}); {found['consistent_set']}")
    features = simulated_features(posterior, n_workers, args.dask)
    geometry = analyse_set(posterior, x, load_consistent_set(args.out), args.out,
                           n_local=args.local, fisher=features if args.fisher else None,
                           fisher_points=args.fisher, seed=args.seed, cheap=cheap)
    if args.path_points:
        path = analyse_path(posterior, x, args.out, features, args.path_points, args.seed)
        geometry["path"] = {k: path[k]["accepted_fraction"] for k in ("path", "straight", "orthogonal")}
        geometry["path"]["simulations"] = path["simulations"]
        if not args.json:
            say(f"re-simulated: {geometry['path']['path']:.0%} of the high-probability path "
                f"reproduces the target, {geometry['path']['straight']:.0%} of the straight "
                f"line, {geometry['path']['orthogonal']:.0%} of the orthogonal direction")
    if not args.json:
        local = geometry["local"]
        print(f"participation ratio {geometry['participation_ratio']:.2f} of "
              f"{len(geometry['parameters'])} parameters; local dimensionality (median) "
              f"{local['local_dimensionality_median']:.2f}; local sloppy vs global subspace "
              f"{local['angle_to_global_median_deg']:.0f}° (median); figures in {args.out}")
    if cheap is not None and not args.json:
        found_cheap = geometry["cheap"]
        say(f"cheap model: iso-rate normal vs stiffest direction |cos| "
            f"{_number(found_cheap['stiff_cosine_median'])} (median of "
            f"{found_cheap['n_predicted']}; a random direction "
            f"{found_cheap['random_direction_cosine']:.2f}), curvature along it "
            f"{_number(found_cheap['curvature_over_mean_median'])}x the mean; the consistent set's "
            f"variance along it {_number(found_cheap['set_variance_over_mean_median'])}x its mean "
            f"(|cos| with its thinnest direction "
            f"{_number(found_cheap['set_thinnest_cosine_median'])})")
        sub = found_cheap["rate_subspace"]
        if sub["n_predicted"] and len(sub["populations"]) > 1:
            say(f"cheap model: the subspace of every population's rate normal "
                f"({', '.join(sub['populations'])}; {sub['n_predicted']} configurations): "
                f"curvature in it {_number(sub['curvature_over_mean_median'])}x the mean, the "
                f"set's variance in it {_number(sub.get('set_variance_over_mean_median'))}x "
                "its mean (a random subspace: 1)")
    keep = ("participation_ratio", "explained_variance_ratio", "pc1", "local", "fisher", "path",
            "cheap", "figures")
    return found | {k: geometry[k] for k in keep if k in geometry}


def _cheap_model(posterior, table: str):
    """The cheap model of the posterior's simulator ('': the built table in the cache; raises
    a UserError naming the build command, or the model without a reduction)."""
    from ..cheap.screen import CheapModel
    from ..inference.validate import simulator_of

    return CheapModel.for_spec(simulator_of(posterior), posterior.prior,
                               table or None)


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"
