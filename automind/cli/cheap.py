"""``automind cheap build | predict | check | gradients | reduction``: the tabulated
local-equilibrium model."""

from __future__ import annotations

from pathlib import Path

from ..progress import say
from .options import add_engine_options, add_json, count, positive_float, workers


def register(sub) -> None:
    cheap = sub.add_parser("cheap", help="cheap forward model: rates and regimes in microseconds "
                                         "from a precomputed table").add_subparsers(
        dest="cheap_command", required=True, metavar="ACTION")
    p = cheap.add_parser("build", help="build (or resume) the table of the reduced neuron",
                         description="Simulate the reduced AdEx neuron on every grid node with a "
                                     "compiled Brian2 group, in chunks (resumable: re-run the same "
                                     "command), into $AUTOMIND_CACHE/cheap/<key>/. Full grid "
                                     "(384,000 nodes): ~2 CPU-hours; --grid reduced: ~6 CPU-min.")
    p.add_argument("--grid", choices=("full", "reduced"), default="full")
    p.add_argument("--workers", type=count, default=1, help="parallel chunks (default: 1)")
    add_json(p)
    p.set_defaults(func=run_build)

    p = cheap.add_parser("predict", help="predict status, regime and rates for prior draws",
                         description="θ k is the θ a bank with the same --seed holds at index k.")
    p.add_argument("--simulator", default="mk1", help="simulator spec (mk1, brunel or a path)")
    p.add_argument("--prior", help="prior spec (default: the simulator's own)")
    p.add_argument("-n", type=count, required=True, help="number of prior draws")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="new Parquet file")
    _slow_inhibition_option(p)
    _table_option(p)
    add_json(p)
    p.set_defaults(func=run_predict)

    p = cheap.add_parser("check", help="statuses and rates of the cheap model vs a bank's Brian2 runs",
                         description="Calibrate the status window and the status classifier on "
                                     "the first half of the bank (--calibration; ok-recall "
                                     "--recall), or on "
                                     "--calibrate-on BANK2, and score the rest; also the analytic "
                                     "transfer function, for comparison. Where the bank has "
                                     "population (or mk1_compact) features, the predicted "
                                     "regimes are scored against the runs' synchrony and "
                                     "whether they ended quiet, and the burst score against "
                                     "their network bursts (AUC); the rate error of the "
                                     "asynchronous runs (docs/cheap.md).")
    p.add_argument("bank", type=Path, help="bank folder")
    p.add_argument("--recall", type=float, default=0.95, help="ok-recall to calibrate for")
    p.add_argument("--calibration", type=float, default=0.5, metavar="SHARE",
                   help="share of the bank's finished runs (first in bank order) to calibrate on "
                        "(default 0.5; the spec's protocol: 1,000 of 3,000 draws, 0.333)")
    p.add_argument("--save-classifier", type=Path, metavar="FILE",
                   help="write the table's calibrated status classifier here (JSON), for "
                        "automind simulate --screen cheap:classifier=FILE")
    p.add_argument("--calibrate-on", type=Path, metavar="BANK2",
                   help="calibrate the window and the status classifier on this other bank "
                        "(same prior) and score all of BANK (held out by construction)")
    p.add_argument("--learned", action="store_true",
                   help="also train gradient boosting on θ alone (at growing numbers of "
                        "calibration runs: where does it match the cheap model's AUC?) and on "
                        "θ + the cheap model's status signals (the hybrid), scored on the same "
                        "held-out runs (~1 min on 4,000 runs)")
    p.add_argument("--saturation", type=float, metavar="A",
                   help="calibrate and score on a label where ok runs whose E activity over "
                        "the analysed window (rate x refractory period) exceeds A are runaway: "
                        "networks locked at the refractory limit that ignited a few ms too late "
                        "for the early stop (a fifth of the ok runs at N = 2000; "
                        "docs/cheap.md, \"Saturated ok runs\"); e.g. 0.9. A classifier saved "
                        "with it screens them out too")
    _slow_inhibition_option(p)
    _table_option(p)
    add_json(p)
    p.set_defaults(func=run_check)

    p = cheap.add_parser("gradients", help="the cheap model's rate gradient vs Brian2 finite "
                                           "differences (common random numbers)",
                         description="At up to --points of the BANK's ok, asynchronous runs (in "
                                     "bank order; those predicted ok and asynchronous and "
                                     "re-simulated ok with an E rate in --rate-range), move each "
                                     "parameter ± --step prior sd and simulate both sides with "
                                     "one seed per point, once per --seeds; compare the secant "
                                     "of log10 ν_E with the cheap model's over the same sides "
                                     "and its linear response. 2 × d simulations per point and "
                                     "seed (MK1: 56). Writes gradients.json and gradients.png "
                                     "to --out (docs/cheap.md, 'Gradients against Brian2').")
    p.add_argument("bank", type=Path, help="bank folder whose runs give the candidate points")
    p.add_argument("--out", type=Path, required=True, help="new folder for the report")
    p.add_argument("--simulator", help="simulate this spec instead of the bank's (same prior), "
                                       "e.g. mk1 for N = 2000, 10 s")
    p.add_argument("--points", type=count, default=20, help="points to check (default: 20)")
    p.add_argument("--step", type=positive_float, default=0.5,
                   help="half-step in prior sd (default: 0.5)")
    p.add_argument("--seeds", default="1,2", help="comma-separated seeds; two or more give the "
                                                  "seed-repeat noise floor (default: 1,2)")
    p.add_argument("--max-tau-w", type=positive_float, metavar="SECONDS",
                   help="only points whose adaptation time constants are below this (the "
                        "cheap model predicts the stationary state)")
    p.add_argument("--rate-range", type=positive_float, nargs=2, default=(1.0, 30.0),
                   metavar=("LOW", "HIGH"), help="simulated E rate of a point, Hz (default: 1 30)")
    p.add_argument("--analysed-from", type=float, metavar="SECONDS",
                   help="Brian2's rate from this time (default: where the cheap model's "
                        "rates start, the spec's analysis start but at most 0.1 s)")
    p.add_argument("--synchronous", action="store_true",
                   help="also take runs Brian2 calls synchronous (correlated or bursting; the "
                        "cheap model must still predict them asynchronous): the angle is "
                        "reported per Brian2 regime")
    add_engine_options(p)
    _table_option(p)
    add_json(p)
    p.set_defaults(func=run_gradients)
    _add_reduction(cheap)


def _add_reduction(cheap) -> None:
    p = cheap.add_parser("reduction", help="the single-neuron reduction vs Brian2 neurons under "
                                           "Poisson conductances",
                         description="Draw -n MK1 E neurons (intrinsics from the prior; no "
                                     "adaptation unless --adaptation), each under its own "
                                     "excitatory and inhibitory Poisson conductance inputs, "
                                     "simulate them in Brian2 with the simulator's equations and "
                                     "dt, and compare with the cheap model's rate for the same "
                                     "neuron: |Δlog10 ν| over the neurons firing ≥ 0.5 Hz by "
                                     "regime, and how many firing neurons it calls silent and "
                                     "silent ones active (docs/cheap.md, 'The reduction against "
                                     "single neurons'). 500 neurons × 20 s: ~20 CPU-s.")
    p.add_argument("-n", type=count, default=500, help="neurons (default: 500)")
    p.add_argument("--duration", type=positive_float, default=21.0,
                   help="simulated seconds per neuron, transient included (default: 21)")
    p.add_argument("--transient", type=float, default=1.0, help="seconds discarded (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--adaptation", action="store_true",
                   help="draw τ_w uniformly up to 0.5 s (default: a = b = 0)")
    _slow_inhibition_option(p)
    _table_option(p)
    add_json(p)
    p.set_defaults(func=run_reduction)


def run_reduction(args) -> dict:
    from ..cheap import reduction
    from ..cheap.screen import CheapModel, table_key
    from ..errors import UserError
    from ..simulators import SimulatorSpec

    if not 0 <= args.transient < args.duration:
        raise UserError(f"--transient {args.transient}: give 0 ≤ transient < --duration "
                        f"{args.duration}")
    spec = SimulatorSpec.load("mk1")
    model = CheapModel.for_spec(spec, None, args.table)
    found = reduction.check(spec, model.prior, model.table, args.n, args.seed, args.duration,
                            args.transient, args.adaptation, args.slow_inhibition)
    found["table"] = table_key(model.table)
    if not args.json:
        print(f"{args.n} neurons, {found['active']} firing ≥ 0.5 Hz; table {found['table']}"
              + (" with slow inhibition" if args.slow_inhibition else ""))
        for name, g in found.items():
            if isinstance(g, dict) and "n" in g:
                spread = ("" if g["n"] == 0 else f"median {g['median_abs_dlog10']:.3f}, 95th "
                          f"{g['p95_abs_dlog10']:.3f} decades (bias {g['median_dlog10']:+.3f}); ")
                print(f"  {name}: {g['n']} firing; {spread}firing called silent "
                      f"{g['fires_called_silent']}, silent called active "
                      f"{g['silent_called_active']}")
    return found


def _slow_inhibition_option(p) -> None:
    p.add_argument("--slow-inhibition", action="store_true",
                   help="blend the table's rates with the limit of slow, granular inhibition "
                        "(neurons firing between large inhibitory events; 8 more table lookups "
                        "per evaluation; MK1 only; docs/cheap.md, 'The asynchronous rate "
                        "error')")


def _table_option(p) -> None:
    p.add_argument("--table", help="table folder, or 'analytic' (default: the built table in the "
                                   "cache, full grid first)")


def run_build(args) -> dict:
    import time

    from ..cheap.grid import Grid
    from ..cheap.nodes import NodeSettings
    from ..cheap.table import Table, build_table

    grid = Grid.full() if args.grid == "full" else Grid.reduced()
    settings = NodeSettings() if args.grid == "full" else NodeSettings.reduced()
    say(f"cheap table: {grid.size} nodes ({args.grid} grid), chunks of {settings.group_size}")
    start = time.perf_counter()
    done = [0]

    def progress(k, n):
        done[0] += k
        if not args.json:
            say(f"\r  chunk {done[0]}/{n}", end="")

    folder = build_table(grid, settings, seed=0, workers=args.workers, progress=progress)
    table = Table(folder)
    summary = {"table": str(folder), "key": table.key, "grid": args.grid,
               "build": table.meta["build"], "wall_seconds": time.perf_counter() - start}
    if not args.json:
        say("")
        print(f"cheap table {table.key} at {folder}: {table.meta['build']}")
    return summary


def _model(args, spec=None, prior=None):
    from ..cheap.screen import CheapModel
    from ..prior import Prior
    from ..simulators import SimulatorSpec

    spec = spec or SimulatorSpec.load(args.simulator)
    prior = prior or Prior.load(args.prior or spec.prior)
    return CheapModel.for_spec(spec, prior, args.table,
                               getattr(args, "slow_inhibition", False))


def run_predict(args) -> dict:
    import time

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..errors import UserError
    from ..io import atomic_write_bytes

    if args.out.exists():
        raise UserError(f"{args.out} exists; choose a new --out")
    model = _model(args)
    theta = model.prior.sample_indexed(args.seed, range(args.n))
    start = time.process_time()
    pred = model.predict(theta)
    cpu = time.process_time() - start
    columns = {name: theta[:, j] for j, name in enumerate(model.prior.names)}
    columns |= {k: np.asarray(v, float if v.dtype != object else str)
                for k, v in pred.as_columns().items()}
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    atomic_write_bytes(args.out, sink.getvalue().to_pybytes())
    counts = {s: int(np.sum(pred.status == s)) for s in ("silent", "ok", "runaway", "undetermined")}
    summary = {"out": str(args.out), "n": args.n, "by_status": counts,
               "regimes": {r: int(np.sum(pred.regime == r)) for r in ("async", "bursting", "multistable")},
               "extrapolated_fraction": float(np.mean(pred.extrapolated)),
               "cpu_seconds": cpu, "predictions_per_cpu_second": args.n / max(cpu, 1e-9),
               "table": getattr(model.table, "key", "analytic")}
    if not args.json:
        print(f"{args.n} predictions in {cpu:.2f} CPU-s -> {args.out}: "
              + ", ".join(f"{k} {v}" for k, v in counts.items())
              + f"; extrapolated {summary['extrapolated_fraction']:.1%}")
    return summary


def _print_learned(name: str, report: dict) -> None:
    sizes = ", ".join(f"{s['n_train']} runs {s['auc_ok']:.3f}" for s in report["theta_only"])
    at = report["theta_only_matches_cheap_at"]
    print(f"  {name}: AUC of P(ok) {report['cheap_auc_ok']:.3f}; gradient boosting on θ alone: "
          f"{sizes} ({'matched at ' + str(at) + ' runs' if at else 'never matched'})")
    h = report["hybrid"]
    if h is not None:
        print(f"  {name} hybrid (θ + the model's signals): AUC {h['auc_ok']:.3f}; ok recall "
              f"{h['ok']['recall']:.2f} precision {h['ok']['precision']:.2f}; silent recall "
              f"{h['silent']['recall']:.2f}; runaway recall {h['runaway']['recall']:.2f} "
              f"(precision {h['runaway']['precision']:.2f})")


def run_check(args) -> dict:
    from ..bank import Bank
    from ..provenance import package_versions
    from ..errors import UserError
    from ..cheap.check import check_runs
    from ..cheap.regimes import bank_regime_features
    from ..prior import Prior
    from ..simulators import SimulatorSpec

    if args.saturation is not None and not args.saturation > 0:
        raise UserError(f"--saturation {args.saturation}: give an activity above 0 (e.g. 0.9)")
    if not 0 < args.calibration < 1:
        raise UserError(f"--calibration {args.calibration}: give a share between 0 and 1")
    if args.save_classifier is not None and args.save_classifier.exists():
        raise UserError(f"{args.save_classifier} exists; choose a new --save-classifier file")
    bank = Bank(args.bank)
    rows = bank.table()
    spec = SimulatorSpec.from_plain(bank.meta["simulator"])
    prior = Prior.from_dict(bank.meta["prior"])
    other = None
    if args.calibrate_on is not None:
        cal_bank = Bank(args.calibrate_on)
        if cal_bank.meta.get("prior_sha256") != bank.meta.get("prior_sha256"):
            raise UserError(f"--calibrate-on {args.calibrate_on}: its prior differs from {args.bank}'s")
        cal_rows = cal_bank.table()
        other = (cal_rows["theta"], cal_rows["status"], cal_rows["rate_E"])
    found = bank_regime_features(bank, rows["index"])
    report = check_runs(spec, prior, rows["theta"], rows["status"], rows["rate_E"],
                        table=args.table, recall=args.recall, calibration=args.calibration,
                        calibrate_on=other, learned=args.learned, saturation=args.saturation,
                        slow_inhibition=args.slow_inhibition,
                        regime_features=None if found is None else found[1])
    report["bank"] = str(args.bank)
    report["calibrated_on"] = None if args.calibrate_on is None else str(args.calibrate_on)
    report["versions"] = package_versions()
    report["regime_features"] = None if found is None else found[0]
    if args.save_classifier is not None:
        from ..cheap.screen import save_classifier

        name = "table" if "table" in report["models"] else "analytic"
        model = report["models"][name]
        save_classifier(args.save_classifier, model["classifier"]["classifier"], model["table"],
                        {"bank": str(args.bank), "calibrate_on": None if args.calibrate_on is None
                         else str(args.calibrate_on), "recall": args.recall,
                         "saturation": args.saturation,
                         "runs": report["calibration"]})
        report["classifier_saved"] = str(args.save_classifier)
    if not args.json:
        print(f"bank {args.bank}: {report['n']} runs, calibrated on {report['calibration']}, "
              f"scored on {report['held_out']}"
              + ("; rates with slow inhibition" if args.slow_inhibition else ""))
        sat = report["saturated_ok"]
        print(f"  {sat['n']} of the {sat['of']} held-out ok runs are saturated over the window "
              f"(E activity > {sat['above']:g}: locked at the refractory limit)"
              + (f"; scored as runaway (--saturation {args.saturation:g})"
                 if args.saturation is not None else ""))
        for name, m in report["models"].items():
            c = m["calibrated"]
            print(f"  {name}: ok recall {c['ok']['recall']:.2f} precision {c['ok']['precision']:.2f}; "
                  f"silent recall {c['silent']['recall']:.2f}; runaway recall "
                  f"{c['runaway']['recall']:.2f}; screen keeps {c['screen']['kept']:.0%} "
                  f"(ok recall {c['screen']['ok_recall']:.2f}, precision "
                  f"{c['screen']['precision']:.2f} vs {c['screen']['unscreened_precision']:.2f}); "
                  f"ok-rate Spearman {m['ok_rate']['spearman']:.2f}; "
                  f"{m['predictions_per_cpu_second']:.0f} predictions/CPU-s")
            k = m["classifier"]
            print(f"  {name} + status classifier: ok recall {k['ok']['recall']:.2f} precision "
                  f"{k['ok']['precision']:.2f}; silent recall {k['silent']['recall']:.2f}; "
                  f"runaway recall {k['runaway']['recall']:.2f} (precision "
                  f"{k['runaway']['precision']:.2f}); screen keeps {k['screen']['kept']:.0%}")
            if "learned" in m:
                _print_learned(name, m["learned"])
            r = m.get("regimes_vs_simulated")
            if r is not None:
                b, q = r["bursting_finds_synchronous"], r["multistable_finds_quiet"]
                print(f"  {name} regimes on {r['n']} runs ok in both ({report['regime_features']}"
                      f" features): bursting finds synchronous runs with recall "
                      f"{b['recall']:.2f}, precision {b['precision']:.2f} (base rate "
                      f"{b['base_rate']:.2f}); multistable finds runs that end quiet with "
                      f"recall {q['recall']:.2f}, precision {q['precision']:.2f} (base rate "
                      f"{q['base_rate']:.2f})")
                s, a = r["bursts"], m["async_rate"]
                error = a["median_abs_dlog10"]
                print(f"  {name}: the burst score ranks the {s['burst_valid']} runs with valid "
                      f"bursts with AUC {s['auc_burst_score']:.2f} (loop gain alone "
                      f"{s['auc_loop_gain']:.2f}); asynchronous ok runs (corr < 0.05, "
                      f"n = {a['n']}): median |Δlog10 ν_E| "
                      + ("-" if error is None else f"{error:.2f}"))
        if report["regime_features"] is None:
            print("  regimes not scored: the bank has none of the feature sets "
                  "population, mk1_compact, mk1 (automind features BANK --set population)")
    return report


def run_gradients(args) -> dict:
    from ..bank import Bank
    from ..cheap.gradients import (RATE_SLACK, candidate_points, gradient_check, plot,
                                   secant_angles_by)
    from ..cheap.screen import table_key
    from ..errors import UserError, require_new_folder
    from ..io import write_json
    from ..prior import Prior
    from ..provenance import package_versions
    from ..simulators import SimulatorSpec
    from ..simulators.simulator import check_prior_fits

    require_new_folder(args.out)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise UserError(f"--seeds {args.seeds!r}: give comma-separated integers, "
                        "e.g. 1,2") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {args.seeds!r}: the seeds must differ")
    low, high = args.rate_range
    if low >= high:
        raise UserError(f"--rate-range {low} {high}: LOW must be below HIGH")
    bank = Bank(args.bank)
    prior = Prior.from_dict(bank.meta["prior"])
    spec = (SimulatorSpec.from_plain(bank.meta["simulator"]) if args.simulator is None
            else SimulatorSpec.load(args.simulator))
    check_prior_fits(spec, prior)
    if args.analysed_from is not None and not 0 <= args.analysed_from < spec.duration:
        raise UserError(f"--analysed-from {args.analysed_from}: must lie in the runs "
                        f"(0 to {spec.duration} s)")
    model = _model(args, spec, prior)
    # the bank's own rates pre-select only where the bank ran the simulator checked
    near = (low, high) if args.simulator is None else None
    index, theta, label = candidate_points(bank, args.max_tau_w, args.synchronous, near)
    if not len(index):
        raise UserError(f"{args.bank} has no ok, "
                        + ("active" if args.synchronous else "asynchronous") + " run"
                        + ("" if near is None else
                           f" at {low / RATE_SLACK:g}-{high * RATE_SLACK:g} Hz")
                        + ("" if args.max_tau_w is None else
                           f" with adaptation faster than {args.max_tau_w} s"))
    u = prior.standardise(theta)
    say(f"{len(index)} candidate points; {args.points} checked with {len(seeds)} seed(s): "
        f"{2 * prior.dim * len(seeds)} simulations per point")
    report = gradient_check(model, spec, u, args.points, args.step, seeds, (low, high),
                            workers(args), args.dask,
                            progress=True,
                            analysed_from=args.analysed_from)
    for p in report["points"]:
        p["bank_index"] = int(index[p["candidate"]])
        p["simulated_regime"] = str(label[p["candidate"]])
    report |= {"bank": str(args.bank), "simulator": spec.to_dict(),
               "synchronous": args.synchronous,
               "angle_secant_by_regime": secant_angles_by(report["points"], "simulated_regime"),
               "table": table_key(model.table), "max_tau_w": args.max_tau_w,
               "versions": package_versions()}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "gradients.json", report)
    if report["points"]:
        plot(report, args.out / "gradients.png")
    if not args.json:
        if not report["points"]:
            print(f"none of {report['candidates']} candidate points is usable (simulated ok "
                  f"with an E rate in {low}-{high} Hz and predicted ok and asynchronous)")
        else:
            a = report["angle_secant"]
            median = {k: "-" if report[k]["median"] is None else f"{report[k]['median']:.1f}°"
                      for k in ("angle_linear_response", "angle_seed_repeat")}
            print(f"{a['n']} points: angle to Brian2's gradient, median {a['median']:.1f}° "
                  f"(quartiles {a['q25']:.1f}-{a['q75']:.1f}; target <= "
                  f"{report['target_degrees']:.0f}°); linear response "
                  f"{median['angle_linear_response']}; Brian2 seed repeat "
                  f"{median['angle_seed_repeat']} -> {args.out}")
            if args.synchronous:
                print("  by Brian2's regime: " + "; ".join(
                    f"{k} {v['n']} points, median {v['median']:.1f}°"
                    for k, v in report["angle_secant_by_regime"].items()))
            if a["n"] < report["target_points"]:
                print(f"  {a['n']} points are fewer than the target's {report['target_points']}: "
                      f"the target is not met by this report alone")
    return report
