"""The simple output folder of ``automind simulate`` (to be replaced by the bank format).

    OUT/provenance.json      what produced the folder: specs, seeds, versions, command
    OUT/simulations.csv      one row per simulation: index, seed, status, times, rates, θ
    OUT/spikes/sim_NNNNNN.npz  spike times (s) and ids per population, E population rate
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ..errors import UserError

PACKAGES = ("automind", "brian2", "numpy", "scipy", "torch", "sbi")


def package_versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found | {"python": platform.python_version()}


def prepare_out_dir(out: Path) -> Path:
    """Create OUT; refuse a non-empty folder so nothing already written is overwritten."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output folder {out} exists and is not empty; choose a new --out")
    try:
        (out / "spikes").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output folder {out}: {err.strerror}") from None
    return out


def _atomic_write(path: Path, writer) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    writer(tmp)
    os.replace(tmp, path)


def write_simulation(out: Path, result) -> None:
    arrays = {"n_units": np.array([result.n_units.get(p, 0) for p in ("E", "I")]),
              "t_end": np.float64(result.t_end), "exc_rate_1ms": result.population_rate("E").astype(np.float32)}
    for pop, (times, ids) in result.spikes.items():
        arrays[f"{pop}_times"] = times
        arrays[f"{pop}_ids"] = ids
    path = out / "spikes" / f"sim_{result.index:06d}.npz"
    _atomic_write(path, lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))


def write_table(out: Path, results: list, prior) -> None:
    columns = ["index", "seed", "status", "duration", "t_end", "wall_time", "run_time", "rate_E",
               "rate_I", "message"] + prior.names

    def writer(tmp):
        with open(tmp, "w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow(columns)
            for r in sorted(results, key=lambda r: r.index):
                table.writerow([r.index, r.seed, r.status, r.duration, r.t_end, f"{r.wall_time:.4f}",
                                f"{r.run_time:.4f}", f"{r.rate('E'):.4f}", f"{r.rate('I'):.4f}",
                                r.message.splitlines()[0] if r.message else ""]
                               + [f"{v:.10g}" for v in r.theta])

    _atomic_write(out / "simulations.csv", writer)


def write_provenance(out: Path, spec, prior, seed: int, n: int, compiled) -> None:
    info = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv, "seed": seed,
            "n": n, "simulator": spec.to_dict(), "prior": prior.to_dict(),
            "prior_sha256": prior.sha256, "simulator_sha256": spec.sha256,
            "compiled": str(compiled.directory), "versions": package_versions(),
            "seed_rule": "simulation k uses SeedSequence([seed, k]).generate_state(1)[0]"}
    _atomic_write(out / "provenance.json", lambda tmp: tmp.write_text(json.dumps(info, indent=1)))
