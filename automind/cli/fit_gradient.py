"""The options and the run of ``automind fit --method gradient`` (a part of the ``fit`` command)."""

from __future__ import annotations

from pathlib import Path

from .options import count, positive_float, recording_options, whole, workers

def add_gradient_options(p) -> None:
    g = p.add_argument_group("--method gradient (docs/fit.md)")
    g.add_argument("--starts", type=count, default=8, help="K starts fitted in one batch (8)")
    g.add_argument("--steps", type=whole, default=100,
                   help="gradient steps (100; 0 with --gauss-newton: refine the starts as given)")
    g.add_argument("--lr", type=positive_float, default=0.05,
                   help="Adam learning rate on the prior box's logit coordinates (0.05)")
    g.add_argument("--starts-from", type=Path, metavar="POSTERIOR",
                   help="start from this posterior's samples at the recording (default: the prior)")
    g.add_argument("--screen", type=int, default=0, metavar="M",
                   help="draw M starts (prior or --starts-from), run each forward once in torch "
                        "without gradients, and fit the --starts with the lowest d² (0: off)")
    g.add_argument("--gauss-newton", type=whole, default=0, metavar="S",
                   help="then S derivative-free Gauss–Newton steps from each fit: the residuals "
                        "at θ and θ ± --gauss-newton-step sd per parameter on one seed per step "
                        "(2d + 1 forward runs), a damped step, the mean of the last half of the "
                        "iterates (0: off). Near the recording the surrogate gradient stops "
                        "descending; these steps still do (docs/fit.md)")
    g.add_argument("--gauss-newton-step", type=positive_float, default=0.3, metavar="SD",
                   help="--gauss-newton's central differences' half-width, in prior sd (0.3)")
    g.add_argument("--gauss-newton-seeds", type=count, default=1, metavar="N",
                   help="average each Gauss–Newton step's residuals over N seeds (1): their noise "
                        "falls by √N, at N times the step's runs")
    g.add_argument("--loss", action="append", choices=("d2", "rate_quantiles", "fano_curve"),
                   help="loss terms (repeatable; d2, validate's distance, is always included)")
    g.add_argument("--fit-features", nargs="+", metavar="NAME",
                   help="the d² features (default: every differentiable one the recording has)")
    g.add_argument("--band", type=positive_float, nargs=2, metavar=("F1", "F2"),
                   help="maximise the E rate's power in F1..F2 Hz (needs --rate-range)")
    g.add_argument("--rate-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="hinge holding the E rate inside LO..HI Hz")
    g.add_argument("--fit", choices=("theta", "weights"), default="theta", dest="fit_mode",
                   help="theta (default): fit θ; weights: θ stays at each start and the per-"
                        "synapse weights of its realised graph are fitted with exponentiated "
                        "Adam (Dale's law kept, zeros stay zero), re-simulated in Brian2 on each "
                        "fitted graph")
    g.add_argument("--start-theta", type=Path, metavar="NPY_OR_CSV",
                   help="the starts: θ rows (prior units) from a .npy, or a CSV with the prior's "
                        "columns (fits.csv, consistent_set.csv); instead of prior samples")
    g.add_argument("--compare", type=Path, metavar="POSTERIOR",
                   help="each fit's HPD level under this posterior, beside its Brian2 distance")
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    g.add_argument("--device", default="cpu", metavar="cpu|cuda[:K]",
                   help="where the torch networks run (cpu); cuda needs a CUDA device and is "
                        "refused before anything is written where there is none")
    g.add_argument("--memory-limit", type=positive_float, default=4.0, metavar="GIB",
                   help="autograd memory ceiling of the dense differentiable run (4 GiB)")
    g.add_argument("--recurrent-grad", type=float, default=1.0, metavar="G",
                   help="factor on the gradient through presynaptic spikes per synaptic hop, "
                        "0-1 (1: the full surrogate gradient; 0: each neuron's direct effect "
                        "only). Through the whole recurrent loop the gradient grows with the "
                        "number of hops and overflows on long windows (N = 500, 2.6 s: NaN in "
                        "float32); give 0 there (docs/rsnn.md)")


def read_start_theta(path: Path):
    """θ rows from a .npy, or {"names", "rows"} from a CSV with "name [unit]" θ columns (as
    fits.csv and consistent_set.csv write them; ``fit_gradient`` picks the prior's)."""
    import numpy as np

    from ..errors import UserError

    if not path.is_file():
        raise UserError(f"--start-theta: {path} does not exist")
    if path.suffix == ".npy":
        return np.atleast_2d(np.load(path))
    import csv

    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    columns = [k for k, h in enumerate(rows[0]) if k > 0 and " [" in h]  # θ: "name [unit]"
    names = [rows[0][k].split(" [")[0] for k in columns]
    try:
        return {"names": names, "rows": np.array([[float(r[k]) for k in columns]
                                                  for r in rows[1:] if r])}
    except ValueError:
        raise UserError(f"--start-theta: {path} is not a θ table (sample, θ columns...)") from None


def run_gradient(args) -> dict:
    from ..fit.gradient import fit_gradient

    summary = fit_gradient(
        args.recording, args.out, simulator=args.simulator, prior=args.prior, workers=workers(args),
        progress=not args.json, spec_overrides={"N": args.N} if args.N else None,
        compare_with=args.compare, recording_options=recording_options(args),
        start_theta=read_start_theta(args.start_theta) if args.start_theta else None,
        features=args.features, starts=args.starts, steps=args.steps, lr=args.lr, seed=args.seed,
        threshold=args.threshold, loss=tuple(t for t in (args.loss or ()) if t != "d2"),
        band=tuple(args.band) if args.band else None,
        rate_range=tuple(args.rate_range) if args.rate_range else None,
        starts_from=str(args.starts_from) if args.starts_from else None,
        fit_features=tuple(args.fit_features) if args.fit_features else None,
        dtype=args.dtype, memory_limit_gib=args.memory_limit, fit=args.fit_mode,
        recurrent_grad=args.recurrent_grad, screen=args.screen, gauss_newton=args.gauss_newton,
        gauss_newton_step=args.gauss_newton_step, gauss_newton_seeds=args.gauss_newton_seeds,
        device=args.device)
    engine = "Brian2 (fitted graphs)" if summary.get("fit") == "weights" else "Brian2"
    if not args.json:
        print(f"yield {summary['yield']:.2f}: {summary['n_consistent']} of {summary['n_starts']} "
              f"gradient fits reproduce {args.recording} when re-simulated in {engine} "
              f"({summary['n_failed']} failed); fit {summary['fit_seconds']:.0f} s; "
              f"{summary['consistent_set']}")
        if summary.get("screen"):
            sc = summary["screen"]
            kept = [v for v in sc["kept_d2"] if v is not None] or [float("nan")]
            median = float("nan") if sc["median_d2"] is None else sc["median_d2"]
            print(f"screened {sc['draws']} draws in {sc['seconds']:.0f} s: the starts' d² "
                  f"{min(kept):.3g}-{max(kept):.3g} (median of all draws {median:.3g})")
        if summary.get("gauss_newton"):
            r = summary["gauss_newton"]
            first, final = (float("nan") if v is None else v
                            for v in (r["median_d2_first"], r["median_d2_final"]))
            print(f"refined in {r['seconds']:.0f} s ({r['steps']} Gauss–Newton steps, "
                  f"{r['seeds']} seed(s) each): median d² "
                  f"{first:.3g} at the first step, {final:.3g} over the averaged iterates")
        if summary.get("best_start") is not None:
            print(f"best start: {summary['best_start']} (lowest median distance over its Brian2 runs "
                  "on new seeds)")
        for row in summary["fits"]:
            d = row["brian2_distance"]
            print(f"  start {row['start']}: {row['status']}, {engine} d = "
                  f"{'-' if d is None else f'{d:.2f}'}, {'accepted' if row['accepted'] else 'rejected'}"
                  + (", DEGENERATE (E silent or the band's share did not rise)"
                     if row.get("degenerate") else ""))
        if "compare" in summary:
            c = summary["compare"]
            print(f"under {c['posterior']}: {c['inside_90pct_hpd']} of {len(c['fits'])} fits "
                  "inside the 90 % HPD region")
            for row in c["fits"]:
                print(f"  start {row['start']}: HPD level {row['hpd_level']:.3f}")
            ref = c["reference"]
            print("  reference: " + (ref["note"] if "note" in ref else
                  f"{ref['n_within']} of the training bank's {ref['n']} runs reproduce the "
                  f"recording (d <= {ref['threshold']:g}); {ref['inside_90pct_hpd']} of them lie "
                  "inside the 90 % HPD region"))
    return summary
