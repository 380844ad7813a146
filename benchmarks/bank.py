"""Bank performance (issue: simulation banks). Prints, as the last line, one JSON object:

- parallel_efficiency: throughput with 2 local workers over 1 worker on the same θ (MK1,
  2 s each, early stop off; two fresh banks, worker start-up included; target ratio >= 1.8);
- storage_overhead_fraction: time spent committing shards (with spike trains) over the
  simulations' own time (target <= 0.02);
- stream_peak_rss_mb / stream_rows_per_s: one epoch of batches streamed from a synthetic
  1,000,000-row bank (28 θ + 1000 float32 features) through BankDataset (target < 2000 MB).

    python benchmarks/bank.py [--n 32] [--rows 1000000]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def mk1_setup(duration: float = 2.0):
    """MK1 with early stop off, so every θ costs a full simulation."""
    from automind.prior import Prior
    from automind.simulators import SimulatorSpec

    spec = SimulatorSpec.load("mk1").with_overrides(duration=duration, silent=0.0, runaway=1e12)
    return spec, Prior.load("mk1")


def simulate(out: Path, n: int, workers: int) -> float:
    """Wall time of one `extend` call (compiled binary already cached)."""
    from automind.bank import extend

    start = time.perf_counter()
    extend(out, *mk1_setup(), n, 3, workers=workers, progress=False)
    return time.perf_counter() - start


def storage_overhead(n: int) -> float:
    """Time spent committing shards (with spike trains) over the simulations' own time."""
    from automind.bank import extend, writer

    spent = {"commit": 0.0, "sim": 0.0}
    real_commit = writer.commit_chunk

    def timed_commit(path, chunk, results, *args):
        t0 = time.perf_counter()
        record = real_commit(path, chunk, results, *args)
        spent["commit"] += time.perf_counter() - t0
        spent["sim"] += sum(r.wall_time for r in results)
        return record

    writer.commit_chunk = timed_commit
    out = Path(tempfile.mkdtemp(prefix="bench-bank-")) / "bank"
    extend(out, *mk1_setup(), n, 5, workers=1, keep_spikes=True, progress=False)
    shutil.rmtree(out.parent)
    writer.commit_chunk = real_commit
    return spent["commit"] / spent["sim"]


def synthetic_bank(path: Path, rows: int, dim_theta: int = 28, dim_x: int = 1000,
                   rows_per_shard: int = 2000) -> None:
    """Write a bank of random rows through the real shard/manifest code (no simulation)."""
    import pyarrow as pa

    from automind.bank.store import commit_shard
    from automind.io import write_json
    from automind.prior import Prior

    prior = Prior.from_dict({"name": "synthetic", "parameter": [
        {"name": f"p{k}", "low": 0, "high": 1} for k in range(dim_theta)]})
    for sub in ("shards", "manifest", "features"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    write_json(path / "bank.json", {
        "format": "automind-bank", "version": 1, "seed": 0, "created": "", "chunk_size": rows_per_shard,
        "keep_spikes": False, "prior": prior.to_dict(), "simulator": {"name": "synthetic"},
        "versions": {}, "feature_sets": {"synthetic": {"version": "1",
                                                       "names": [f"x{k}" for k in range(dim_x)]}}})
    rng = np.random.default_rng(0)
    for chunk, start in enumerate(range(0, rows, rows_per_shard)):
        index = np.arange(start, min(start + rows_per_shard, rows))
        theta = rng.random((len(index), dim_theta))
        table = pa.table({"index": pa.array(index), "seed": pa.array(index),
                          "status": pa.array(["ok"] * len(index)),
                          "theta": pa.FixedSizeListArray.from_arrays(pa.array(theta.ravel()), dim_theta)})
        x = rng.standard_normal((len(index), dim_x), dtype=np.float32)
        commit_shard(path, chunk, table, features={"synthetic": ("1", x)})


def stream(path: Path) -> tuple[float, float, int]:
    """Stream one epoch in a fresh process; returns (peak RSS MB, rows/s, rows)."""
    code = f"""
import json, resource, time, torch
from torch.utils.data import DataLoader
from automind.bank.dataset import BankDataset
ds = BankDataset({str(path)!r}, features="synthetic", batch_size=512, buffer_shards=4)
rows, start = 0, time.perf_counter()
for theta, x in DataLoader(ds, batch_size=None):
    rows += len(theta)
elapsed = time.perf_counter() - start
print(json.dumps({{"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rows_per_s": rows / elapsed, "rows": rows}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["rss_mb"], result["rows_per_s"], result["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="MK1 simulations for the parallel test")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the synthetic bank")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bank-"))
    try:
        simulate(work / "warmup", 1, 1)  # compile once, outside the timings
        one = simulate(work / "w1", args.n, 1)
        two = simulate(work / "w2", args.n, 2)
        overhead = storage_overhead(max(8, args.n // 2))
        t0 = time.perf_counter()
        synthetic_bank(work / "big", args.rows)
        write_s = time.perf_counter() - t0
        rss, rows_per_s, rows = stream(work / "big")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"n": args.n, "one_worker_s": round(one, 2), "two_workers_s": round(two, 2),
                      "parallel_efficiency": round(one / two, 3),
                      "storage_overhead_fraction": round(overhead, 4),
                      "stream_rows": rows, "stream_peak_rss_mb": round(rss, 1),
                      "stream_rows_per_s": round(rows_per_s), "synthetic_write_s": round(write_s, 1)}))


if __name__ == "__main__":
    main()
