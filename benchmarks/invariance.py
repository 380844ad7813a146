"""Invariance geometry speed and Fisher stability (issue: invariance). Prints, as the last
line, one JSON object:

- geometry_s: the full geometry of a 1,000-configuration MK1 set, simulations excluded
  (``analyse_set``: PCA, marginal correlations, conditional correlations at 20
  configurations, Hessian local geometry at all 1,000, composite parameters, figures);
  target < 120 s on 2 cores;
- hessian_speedup: per-configuration time of the straightforward local Hessian
  (torch.autograd.functional.hessian, one configuration at a time, timed on 50) over ours
  (batched double-backward), measured in the same run;
- fisher_top_eigenvalue_rel_change: for each number of repeats (--repeats 2,4,8) and each
  Fisher configuration (valid bank θ, --fisher-points), |λ₁ − λ₁'| / mean(λ₁, λ₁') between
  two independent estimates (other seeds) with common random numbers; target < 0.1;
- fisher_simulations_per_configuration: (2d + 1) · the fewest repeats meeting the target
  at every configuration (null when none does);
- fisher_top_eigenvalue_rel_change_independent: the same at the most repeats for two
  estimates with a fresh seed for every simulation (no common random numbers), for
  contrast (--no-contrast skips it).

Without --posterior it builds what it needs: an MK1 bank (N=200, 2.6 s; --bank-size
simulations) and a posterior on the ``mk1_compact`` features; the 1,000 configurations are
posterior samples for a valid bank simulation (the geometry's cost does not depend on which
of them a re-simulation would accept). With --set, a real `automind invariance` folder.

    python benchmarks/invariance.py [--bank-size 400] [--fisher-points 1] [--repeats 2,4,8]
    python benchmarks/invariance.py --posterior POST --set RUN_FOLDER
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def build_posterior(root: Path, n: int, workers: int):
    from automind.bank import Bank, extend
    from automind.inference.train import train_on_bank
    from automind.prior import Prior
    from automind.simulators import SimulatorSpec

    spec = SimulatorSpec.load("mk1").with_overrides(N=200, duration=2.6, t_analysis_start=0.5)
    extend(root / "bank", spec, Prior.load("mk1"), n, seed=3, workers=workers, chunk_size=25,
           features=["mk1_compact"], progress=True)
    posterior = train_on_bank(root / "bank", "mk1_compact", seed=0, batch_size=32,
                              max_epochs=200, progress=False)
    data = Bank(root / "bank").arrays(features="mk1_compact", status="ok")
    usable = np.flatnonzero(posterior.conditionable(data["x"]))
    return posterior, data["x"][usable], data["theta"][usable]


def straightforward_hessian_seconds(posterior, x, u) -> float:
    """Per-configuration seconds of torch.autograd.functional.hessian, one at a time."""
    x_t = posterior.prepare_x(x)[:1]
    start = time.perf_counter()
    for point in u:
        torch.autograd.functional.hessian(
            lambda v: -posterior.standardised_log_prob(v[None], x_t)[0], torch.as_tensor(point))
    return (time.perf_counter() - start) / len(u)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank-size", type=int, default=400)
    parser.add_argument("--configurations", type=int, default=1000)
    parser.add_argument("--fisher-points", type=int, default=1)
    parser.add_argument("--repeats", default="2,4,8", help="comma-separated repeat counts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-contrast", action="store_true",
                        help="skip the two Fisher estimates without common random numbers")
    parser.add_argument("--posterior", type=Path, help="a trained MK1 posterior folder")
    parser.add_argument("--set", type=Path, help="an `automind invariance` folder (with --posterior)")
    args = parser.parse_args()
    from automind.inference import load_posterior
    from automind.invariance.analysis import analyse_set, local_geometry
    from automind.invariance.consistent import load_consistent_set, simulated_features
    from automind.invariance.geometry import fisher_information

    root = Path(tempfile.mkdtemp(prefix="automind-bench-invariance-"))
    if args.posterior:
        posterior = load_posterior(args.posterior)
        run = json.loads((args.set / "run.json").read_text())
        x, theta_valid = np.array(run["x"]), load_consistent_set(args.set)["theta"]
        configurations = load_consistent_set(args.set)
    else:
        posterior, xs, theta_valid = build_posterior(root, args.bank_size, args.workers)
        x = xs[0]
        theta = posterior.sample(args.configurations, x, seed=1)
        configurations = {"theta": theta, "u": posterior.prior.standardise(theta)}
    u = np.asarray(configurations["u"], float)
    print(f"geometry of {len(u)} configurations, {u.shape[1]} parameters", file=sys.stderr)

    start = time.perf_counter()
    report = analyse_set(posterior, x, configurations, root / "geometry", n_local=len(u))
    geometry_s = time.perf_counter() - start
    subset = u[:50]
    baseline = straightforward_hessian_seconds(posterior, x, subset)
    start = time.perf_counter()
    local_geometry(posterior, x, subset, 1)
    ours = (time.perf_counter() - start) / len(subset)

    features = simulated_features(posterior, workers=args.workers)
    repeats = sorted(int(r) for r in args.repeats.split(","))
    changes, independent, used = {r: [] for r in repeats}, [], 0
    for k, theta0 in enumerate(theta_valid[:args.fisher_points]):
        for r in repeats:
            print(f"Fisher information at configuration {k + 1}, {r} repeats", file=sys.stderr)
            estimates = [fisher_information(features, posterior.prior, theta0, repeats=r, seed=seed)
                         for seed in (10 + k, 20 + k)]
            used = estimates[0]["features_used"]
            changes[r].append(round(_relative_change(estimates), 3))
        if not args.no_contrast:
            fresh = _without_common_numbers(features)
            independent.append(_relative_change([
                fisher_information(fresh, posterior.prior, theta0, repeats=repeats[-1], seed=seed)
                for seed in (30 + k, 40 + k)]))
    enough = [r for r in repeats if max(changes[r], default=1.0) < 0.1]
    d = u.shape[1]
    print(json.dumps({
        "configurations": int(len(u)), "parameters": int(u.shape[1]),
        "geometry_s": round(geometry_s, 1), "target_geometry_s": 120,
        "participation_ratio": round(report["participation_ratio"], 2),
        "hessian_s_per_configuration": round(ours, 5),
        "hessian_straightforward_s_per_configuration": round(baseline, 5),
        "hessian_speedup": round(baseline / ours, 1),
        "fisher_points": len(theta_valid[:args.fisher_points]), "fisher_features_used": used,
        "fisher_top_eigenvalue_rel_change": changes,
        "fisher_simulations_per_configuration": (2 * d + 1) * enough[0] if enough else None,
        "fisher_top_eigenvalue_rel_change_independent": [round(c, 3) for c in independent],
        "target_fisher_rel_change": 0.1}))


def _relative_change(estimates) -> float:
    top = np.array([e["eigenvalues"][0] for e in estimates])
    return float(abs(top[0] - top[1]) / top.mean())


def _without_common_numbers(features):
    """The same simulator with a fresh seed for every simulation (no common random numbers)."""
    counter = iter(range(10**9, 2 * 10**9))
    return lambda thetas, seeds: features(thetas, np.array([next(counter) for _ in seeds]))


if __name__ == "__main__":
    main()
