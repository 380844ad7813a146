"""Cheap forward model vs the compiled MK1 engine, measured in the same run (JSON on stdout).

    python benchmarks/cheap.py [--n 2000] [--N 2000] [--duration 10] [--table analytic]
                               [--bank BANK] [--repeats 3] [--slow-inhibition]

- predictions per CPU-second (batched, prior draws; full, status-only, and status-only plus
  the status classifier's inputs ``status_signals``; median of ``--repeats`` warm batches, the
  first call reported apart) and the ratio to one MK1 engine run of
  ``--duration`` s at ``--N`` neurons (spec §4 target: ≥ 1,000/s and ≥ 2,000× a 10 s run);
- with ``--bank``: the screen's measured ok-fraction q (unscreened) and precision P (held-out,
  window at ok-recall 0.95) give the CPU per ok simulation with and without the screen,
  (T + p(1−q)/q) / (T + p(1−P)/P), T the run's CPU and p the probe's (T × probe/duration);
  and a target-rate window screen (``check.rate_window_report``): probes simulated per run
  near a target rate with and without it, for the table and the analytic Φ;
- ``--slow-inhibition``: the same for the model with the slow-inhibition blend (opt-in).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def cpu_now() -> float:
    """CPU seconds of this process and its finished children (the engine runs a binary)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    from automind.cheap.screen import CheapModel
    from automind.prior import Prior
    from automind.simulators import Simulator, SimulatorSpec

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--N", type=int, default=2000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--table", default=None)
    ap.add_argument("--bank", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slow-inhibition", action="store_true",
                    help="the model with the slow-inhibition blend (cheap/inhibition.py)")
    args = ap.parse_args()

    spec = SimulatorSpec.load("mk1").with_overrides(N=args.N, duration=args.duration)
    prior = Prior.load("mk1")
    model = CheapModel.for_spec(spec, prior, args.table, args.slow_inhibition)
    theta = prior.sample_indexed(1, range(args.n))
    # the first call pays one-time costs (imports such as scipy.signal, numpy's lazy setup):
    # reported, then the batch is timed warm, median of --repeats (the machine is shared)
    start = cpu_now()
    pred = model.predict(theta)
    cold_cpu = cpu_now() - start
    full, status_only = [], []
    for _ in range(args.repeats):
        start = cpu_now()
        pred = model.predict(theta)
        full.append(cpu_now() - start)
        start = cpu_now()
        screened = model.predict(theta, status_only=True)
        status_only.append(cpu_now() - start)
    signals = []  # the status classifier's inputs on top of a status-only prediction
    for _ in range(args.repeats):
        start = cpu_now()
        model.status_signals(theta, screened)
        signals.append(cpu_now() - start)
    cheap_cpu, screen_cpu = float(np.median(full)), float(np.median(status_only))
    signals_cpu = float(np.median(signals))
    per_second = args.n / cheap_cpu
    agree = float(np.mean(screened.status == pred.status))

    # one full engine run: an ok-predicted θ (largest margin first) that Brian2 runs to the end
    # (an early-stopped run would not be the 10 s baseline)
    sim = Simulator(spec)  # compiles once (cached) before timing
    ok = np.flatnonzero(pred.status == "ok")
    attempts = []
    for k in ok[np.argsort(-pred.margin[ok])][:6]:
        start = cpu_now()
        result = sim.run(prior.to_simulator(theta[k]), seed=1)
        engine_cpu = cpu_now() - start
        attempts.append({"index": int(k), "status": result.status, "t_end": result.t_end,
                         "cpu_seconds": engine_cpu})
        if result.status == "ok" and result.t_end >= args.duration - 1e-9:
            break
    out = {"n_predictions": args.n, "slow_inhibition": args.slow_inhibition,
           "cheap_cpu_seconds": cheap_cpu,
           "predictions_per_cpu_second": per_second,
           "repeats": {"full_cpu_seconds": full, "status_only_cpu_seconds": status_only},
           "first_call": {"cpu_seconds": cold_cpu, "predictions_per_cpu_second": args.n / cold_cpu},
           "engine": {"N": args.N, "duration": args.duration, "status": result.status,
                      "t_end": result.t_end, "cpu_seconds": engine_cpu, "attempts": attempts},
           "ratio_vs_engine_run": per_second * engine_cpu,
           "status_only": {"cpu_seconds": screen_cpu, "predictions_per_cpu_second": args.n / screen_cpu,
                           "ratio_vs_engine_run": args.n / screen_cpu * engine_cpu,
                           "same_status_as_full": agree},
           "status_classifier": {"signals_cpu_seconds": signals_cpu,
                                 "predictions_per_cpu_second": args.n / (screen_cpu + signals_cpu)},
           "targets": {"predictions_per_cpu_second": 1000, "ratio_vs_engine_run": 2000},
           "statuses": {s: int(np.sum(pred.status == s)) for s in
                        ("silent", "ok", "runaway", "undetermined")},
           "extrapolated_fraction": float(np.mean(pred.extrapolated)),
           "table": getattr(model.table, "key", "analytic")}
    if args.bank:
        from automind.bank import Bank
        from automind.cheap.check import check_runs

        bank = Bank(args.bank)
        rows = bank.table()
        order = np.argsort(rows["index"])
        rows = {k: np.asarray(v)[order] for k, v in rows.items()}
        report = check_runs(SimulatorSpec.from_plain(bank.meta["simulator"]),
                            Prior.from_dict(bank.meta["prior"]), rows["theta"], rows["status"],
                            rows["rate_E"], table=args.table, baseline=False)
        screen = next(iter(report["models"].values()))["calibrated"]["screen"]
        q, P = screen["unscreened_precision"], screen["precision"]
        T = engine_cpu if result.t_end >= args.duration else float("nan")
        p = T * spec.probe / args.duration
        per_ok_plain = (T + p * (1 - q) / q) if q > 0 else float("nan")
        # screened: every kept θ is simulated; wasted ones are the kept non-ok (1-P)/P per ok
        per_ok_screened = (T + p * (1 - P) / P) if P > 0 else float("nan")
        from automind.cheap.check import rate_window_report

        theta_b = rows["theta"]
        for name, table in (("table", args.table), ("analytic", "analytic")):
            m = CheapModel.for_spec(SimulatorSpec.from_plain(bank.meta["simulator"]),
                                    Prior.from_dict(bank.meta["prior"]), table)
            out.setdefault("rate_window", {})[name] = rate_window_report(
                m.predict(theta_b), rows["status"], rows["rate_E"])
        out["screen"] = {"bank": args.bank, "q": q, "P": P, "ok_recall": screen["ok_recall"],
                         "kept": screen["kept"], "cpu_per_ok_unscreened": per_ok_plain,
                         "cpu_per_ok_screened": per_ok_screened,
                         "gain": per_ok_plain / per_ok_screened}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
