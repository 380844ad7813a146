"""Computing feature sets for a bank: at simulation time, or later from stored spike trains.

``featurise(BANK, SET)`` computes SET for every committed shard that kept spikes and does
not have it yet, in parallel and resumably (a killed run continues where it stopped;
several processes can share the work through per-shard locks).
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from ..features.sets import get_feature_set, simulation_features
from .bank import Bank, read_shard_spikes
from ..io import write_json
from .store import BankError, commit_features


def register_feature_sets(path: Path, names: list[str]) -> None:
    """Record the sets' names, version and transforms in bank.json (once; versions must match)."""
    path = Path(path)
    with FileLock(str(path / "claims" / "bank.json.lock")):
        meta = json.loads((path / "bank.json").read_text())
        known = meta.setdefault("feature_sets", {})
        changed = False
        for name in names:
            fs = get_feature_set(name)
            if name in known and known[name]["version"] != fs.version:
                raise BankError(f"bank {path} holds feature set {name!r} version "
                                f"{known[name]['version']}, but this automind computes version "
                                f"{fs.version}; use a new bank or the matching automind")
            if name not in known:
                known[name] = fs.metadata()
                changed = True
        if changed:
            write_json(path / "bank.json", meta)


def _featurise_shard(bank_path: str, record, simulator: dict, feature_set: str) -> tuple:
    """Features of one shard's simulations (runs in a worker; reads only that shard)."""
    fs = get_feature_set(feature_set)
    stored = read_shard_spikes(bank_path, record, simulator["dt"])
    t_start = simulator.get("t_analysis_start", 0.0)
    rows = [simulation_features(stored[i], [feature_set], t_start)[feature_set] for i in record.indices]
    return record.name, record.indices, np.array(rows).reshape(len(record.indices), len(fs.names))


def featurise(path: str | Path, feature_set: str, workers: int = 1, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    path = Path(path)
    bank = Bank(path)
    fs = get_feature_set(feature_set)
    if not bank.meta["keep_spikes"]:
        raise BankError(f"bank {path} stores no spike trains, so new feature sets cannot be "
                        "computed from it; create banks with --keep-spikes (or compute features "
                        "while simulating with --features)")
    register_feature_sets(path, [feature_set])
    done = set(bank.feature_records(feature_set))
    todo = [r for r in bank.records if r.name not in done]
    by_name = {r.name: r for r in todo}
    locks = {}
    for record in todo:
        lock = FileLock(str(path / "claims" / f"features-{feature_set}-{record.name}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # another process is computing it
        locks[record.name] = lock
    bar = tqdm(total=len(todo), desc=f"features {feature_set}", unit="shard", disable=not progress)
    computed = 0
    try:
        if workers > 1 and len(locks) > 1:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            futures = [pool.submit(_featurise_shard, str(path), by_name[name], bank.meta["simulator"],
                                   feature_set) for name in list(locks)]
            finished = (f.result() for f in as_completed(futures))
        else:
            pool = None
            finished = (_featurise_shard(str(path), by_name[name], bank.meta["simulator"],
                                         feature_set) for name in list(locks))
        for name, indices, x in finished:
            if not (path / "features" / feature_set / f"{name}.json").exists():
                commit_features(path, name, feature_set, fs.version, indices, x)
                computed += 1
            locks.pop(name).release()
            bar.update()
        if pool is not None:
            pool.shutdown()
    finally:
        bar.close()
        for lock in locks.values():
            lock.release()
    return {"bank": str(path), "set": feature_set, "shards_computed": computed,
            "shards_total": len(bank.records), "dim": len(fs.names)}
