"""Column DMF speed: 1 s of one column (target < 1 s CPU), columns per CPU-second batched
vs one at a time (baseline measured in the same run), and the time of a bank of 10^5
column simulations (the SBI path: noise, 1 ms recording, features), extrapolated from a
measured batch.

    PYTHONPATH=. python benchmarks/columns.py [--batch 2000] [--bank-batch 2000]
"""

import argparse
import json
import time

import numpy as np


def cpu_seconds(fn):
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2000, help="columns integrated together")
    parser.add_argument("--single", type=int, default=10, help="columns run one at a time")
    parser.add_argument("--bank-batch", type=int, default=1000,
                        help="simulations per measured SBI batch (extrapolated to 10^5)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from automind.columns import dmf, model
    from automind.columns.features import column_features
    from automind.simulators import SimulatorSpec

    torch.set_num_threads(args.threads)
    params = dmf.DMFParams()
    W, drive = (torch.as_tensor(a) for a in dmf.column_weights(params))
    steps = 10_000  # 1 s at 0.1 ms

    def one_column():
        with torch.no_grad():
            dmf.integrate(W, drive.unsqueeze(0), steps, 1e-4, params, record_every=10)

    one_column()  # warm-up
    single_cpu = min(cpu_seconds(one_column) for _ in range(3))
    singles = cpu_seconds(lambda: [one_column() for _ in range(args.single)])

    Wb = W.expand(args.batch, 8, 8).contiguous()
    driveb = drive.expand(args.batch, 8).contiguous()

    def batched():
        with torch.no_grad():
            dmf.integrate(Wb, driveb, steps, 1e-4, params, record_every=10)

    batched_cpu = cpu_seconds(batched)
    per_cpu_single = args.single / singles
    per_cpu_batched = args.batch / batched_cpu

    # the SBI path: θ rows -> noisy rates (1 ms) -> features, at the spec's duration
    spec = SimulatorSpec.load("column")
    rng = np.random.default_rng(0)
    rows = [{"nu_bg": rng.uniform(4, 12), "g": rng.uniform(3, 6),
             "J_E": rng.uniform(60e-12, 120e-12), "l4_to_l23_gain": rng.uniform(1, 3)}
            for _ in range(args.bank_batch)]
    start_wall = time.perf_counter()
    start_cpu = time.process_time()
    rates = model.simulate_rates(spec, rows, range(args.bank_batch))
    skip = int(round(spec.t_analysis_start / spec.fixed["record_dt"]))
    for r in rates:
        column_features(r[skip:], spec.fixed["record_dt"])
    bank_wall = time.perf_counter() - start_wall
    bank_cpu = time.process_time() - start_cpu
    per_sim_wall = bank_wall / args.bank_batch

    print(json.dumps({
        "one_column_1s_cpu_seconds": round(single_cpu, 4),
        "one_column_target_cpu_seconds": 1.0,
        "one_column_ratio_to_target": round(single_cpu / 1.0, 3),
        "columns_per_cpu_second_one_at_a_time": round(per_cpu_single, 2),
        "columns_per_cpu_second_batched": round(per_cpu_batched, 1),
        "batch": args.batch,
        "batched_vs_one_at_a_time": round(per_cpu_batched / per_cpu_single, 1),
        "bank_measured_simulations": args.bank_batch,
        "bank_simulation_duration_s": spec.duration,
        "bank_measured_wall_seconds": round(bank_wall, 2),
        "bank_measured_cpu_seconds": round(bank_cpu, 2),
        "bank_1e5_wall_minutes_extrapolated": round(per_sim_wall * 1e5 / 60, 1),
        # wall time includes waiting for a busy machine; CPU time is what 10^5 simulations cost
        "bank_1e5_cpu_minutes_extrapolated": round(bank_cpu / args.bank_batch * 1e5 / 60, 1),
        "threads": args.threads,
    }, indent=1))


if __name__ == "__main__":
    main()
