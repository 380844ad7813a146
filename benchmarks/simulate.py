"""Compile-once engine vs the reference approach (issue: simulators).

Runs the same θ drawn from the MK1 prior (N = 2000, dt = 0.2 ms, DURATION s each, early stop
off so both sides simulate the full time) two ways in one run:
(a) the engine: compiled once, then one process per θ with run arguments;
(b) the reference approach: Brian2 runtime (Cython) mode, built and compiled afresh for each θ
    in a fresh process.
Prints, as the last line, one JSON object: engine_s_per_sim, naive_s_per_sim, speedup (b / a),
overhead_fraction (engine time beyond the compiled run itself, over the run), bio_s_per_cpu_s,
compile_s (the engine's one compilation, not included in engine_s_per_sim).

    python benchmarks/simulate.py [--n 8] [--duration 5]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from automind.prior import Prior
from automind.simulators import Simulator, SimulatorSpec
from automind.simulators.execution import simulation_seed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()

    prior = Prior.load("mk1")
    spec = SimulatorSpec.load("mk1").with_overrides(duration=args.duration, silent=0.0,
                                                    runaway=1e12)
    thetas = prior.sample(args.n, seed=args.seed)
    params = [prior.to_simulator(t) for t in thetas]
    seeds = [simulation_seed(args.seed, k) for k in range(args.n)]

    os.environ["AUTOMIND_CACHE"] = tempfile.mkdtemp(prefix="bench-cache-")  # pay compilation here
    start = time.perf_counter()
    sim = Simulator(spec)
    compile_s = time.perf_counter() - start
    engine = [sim.run(p, s, index=k) for k, (p, s) in enumerate(zip(params, seeds))]
    for r in engine:
        print(f"engine θ{r.index}: {r.status} {r.wall_time:.2f} s (binary {r.run_time:.2f} s), "
              f"E {r.rate('E'):.1f} Hz", file=sys.stderr)
    engine_wall = np.array([r.wall_time for r in engine])
    engine_run = np.array([r.run_time for r in engine])

    naive = []
    script = Path(__file__).with_name("_naive_mk1.py")
    for k, (p, s) in enumerate(zip(params, seeds)):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({"params": p, "seed": s, "N": spec.N, "dt": spec.dt,
                       "duration": spec.duration}, handle)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(script), handle.name], check=True, capture_output=True)
        naive.append(time.perf_counter() - t0)
        print(f"naive θ{k}: {naive[-1]:.2f} s", file=sys.stderr)

    engine_s = float(engine_wall.mean())
    naive_s = float(np.mean(naive))
    print(json.dumps({
        "n": args.n, "N": spec.N, "dt_ms": spec.dt * 1e3, "duration_s": spec.duration,
        "engine_s_per_sim": round(engine_s, 3), "naive_s_per_sim": round(naive_s, 3),
        "speedup": round(naive_s / engine_s, 2),
        "overhead_fraction": round(float((engine_wall - engine_run).sum() / engine_run.sum()), 4),
        "bio_s_per_cpu_s": round(spec.duration / engine_s, 3),
        "compile_s": round(compile_s, 2),
        "speedup_including_compile": round(naive_s * args.n / (engine_wall.sum() + compile_s), 2),
    }))


if __name__ == "__main__":
    main()
