"""Creating, extending and resuming banks.

``extend(BANK, spec, prior, n, seed)`` makes the bank hold simulations 0..n-1: it creates
the bank if needed, skips what is committed, and simulates the rest in chunks. Simulation
k's θ and seed derive from the global seed and k only, so the same command gives the same
bank, with any engine, any number of workers and after any number of crashes.
"""

from __future__ import annotations

import errno
import itertools
import json
import math

import numpy as np
import shutil
import time
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import UserError
from ..provenance import package_versions
from ..io import write_json
from ..simulators.execution import make_engine, make_jobs
from ..features.sets import get_feature_set
from .bank import Bank
from .featurise import register_feature_sets
from .store import (FORMAT, FORMAT_VERSION, BankError, ShardRecord, commit_shard, shard_table,
                    spikes_arrays)

DEFAULT_CHUNK_SIZE = 8
_IDENTITY_IGNORED = ("source", "sha256", "description")


#: [torch] settings that do not change results (each element draws from its own seed)
_TORCH_IGNORED = ("batch", "threads")


def _identity(spec_dict: dict) -> dict:
    out = {k: v for k, v in spec_dict.items() if k not in _IDENTITY_IGNORED}
    if "torch" in out:
        out["torch"] = {k: v for k, v in out["torch"].items() if k not in _TORCH_IGNORED}
    return out


def _describe_difference(name: str, ours: dict, theirs: dict) -> str:
    keys = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    return f"{name} differs in {', '.join(keys[:5])}"


def ensure_bank(path: Path, spec, prior, seed: int, keep_spikes: bool | None,
                chunk_size: int | None, proposal=None) -> dict:
    """Create the bank's folder and metadata, or check that an existing bank matches."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        for sub in ("shards", "manifest", "claims", "spikes", "quarantine", "features"):
            (path / sub).mkdir(exist_ok=True)
    except OSError as err:
        raise BankError(f"cannot create bank folder {path}: {err.strerror}") from None
    with FileLock(str(path / "claims" / "bank.json.lock")):
        meta_file = path / "bank.json"
        if not meta_file.exists():
            foreign = [p.name for p in path.iterdir() if p.name not in
                       ("shards", "manifest", "claims", "spikes", "quarantine", "features")]
            if foreign:
                raise UserError(f"{path} is not empty and not a bank (found {foreign[:3]}); "
                                "choose a new folder")
            meta = {"format": FORMAT, "version": FORMAT_VERSION, "seed": int(seed),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "chunk_size": int(chunk_size or DEFAULT_CHUNK_SIZE),
                    "keep_spikes": bool(keep_spikes),
                    "prior": prior.to_dict(), "prior_sha256": prior.sha256,
                    "simulator": spec.to_dict(), "simulator_sha256": spec.sha256,
                    "versions": package_versions(),
                    "seed_rule": "simulation k: seed SeedSequence([seed, k]).generate_state(1)[0], "
                                 "θ Prior.sample_indexed(seed, [k])",
                    "feature_sets": {}}
            if proposal is not None:  # θ from a truncation of the prior, not the prior itself
                meta["proposal"] = proposal.identity()
                meta["seed_rule"] = meta["seed_rule"].replace("Prior.sample_indexed",
                                                              "proposal.sample_indexed")
            write_json(meta_file, meta)
            return meta
    meta = Bank(path).meta
    if meta["seed"] != seed:
        raise BankError(f"bank {path} was made with --seed {meta['seed']}, not {seed}; "
                        "use the bank's seed to extend it, or a new folder")
    if meta["prior"] != prior.to_dict():
        raise BankError(f"bank {path} was made from a different prior "
                        f"({_describe_difference('prior', meta['prior'], prior.to_dict())}); "
                        "refusing to mix simulations")
    if meta.get("proposal") != (None if proposal is None else proposal.identity()):
        raise BankError(f"bank {path} was made with θ from a different proposal; refusing to "
                        "mix simulations")
    if _identity(meta["simulator"]) != _identity(spec.to_dict()):
        raise BankError(f"bank {path} was made with a different simulator setup "
                        f"({_describe_difference('simulator', _identity(meta['simulator']), _identity(spec.to_dict()))}); "
                        "refusing to mix simulations")
    if keep_spikes is not None and bool(keep_spikes) != meta["keep_spikes"]:
        raise BankError(f"bank {path} {'keeps' if meta['keep_spikes'] else 'does not keep'} spike "
                        "trains; extend it with the same --keep-spikes setting")
    if chunk_size is not None and chunk_size != meta["chunk_size"]:
        raise BankError(f"bank {path} uses chunks of {meta['chunk_size']}; omit --chunk-size")
    return meta


def _quarantine(path: Path, files: list[Path], reason: str, notes: list[str]) -> None:
    target = path / "quarantine"
    for f in files:
        if f.exists():
            shutil.move(str(f), target / f"{f.parent.name}-{f.name}")
            notes.append(f"moved {f.parent.name}/{f.name} to quarantine/ ({reason})")


def _heal_chunk(path: Path, chunk: int, notes: list[str]) -> set[int]:
    """With the chunk's lock held: quarantine orphans and damaged shards; return committed indices."""
    prefix = f"c{chunk:08d}-"
    committed, records = set(), {}
    for record_file in sorted((path / "manifest").glob(prefix + "*.json")):
        try:
            record = ShardRecord.from_json(json.loads(record_file.read_text()))
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError):
            _quarantine(path, [record_file], "unreadable manifest record", notes)
            continue
        shard = path / "shards" / f"{record.name}.parquet"
        if not shard.is_file() or shard.stat().st_size != record.shard_bytes:
            _quarantine(path, [record_file, shard, path / "spikes" / f"{record.name}.npz"],
                        "shard missing or truncated; re-simulating", notes)
            continue
        records[record.name] = record
        committed.update(record.indices)
    for folder, suffix in (("shards", ".parquet"), ("spikes", ".npz")):
        for f in (path / folder).glob(prefix + "*"):
            if f.name.startswith(".tmp-") or f.name[: -len(suffix)] not in records:
                _quarantine(path, [f], "no manifest record: left by an interrupted writer", notes)
    for folder in (path / "features").glob("*"):
        for f in folder.glob(prefix + "*"):
            if f.stem not in records:
                _quarantine(path, [f], "feature file of an uncommitted shard", notes)
    for folder in ("shards", "spikes", "manifest", *(f"features/{d.name}" for d in
                                                     (path / "features").glob("*"))):
        for f in (path / folder).glob(".tmp-*" + prefix + "*"):
            f.unlink(missing_ok=True)
    return committed


def commit_chunk(path: Path, chunk: int, results: list, param_names: list[str],
                 keep_spikes: bool, dt: float) -> ShardRecord:
    """Commit one chunk of SimulationResults as a shard (with spike trains if kept, and the
    feature sets computed while simulating)."""
    results = sorted(results, key=lambda r: r.index)
    features = {}
    for name in results[0].features if results else ():
        features[name] = (get_feature_set(name).version,
                          np.array([r.features[name] for r in results]))
    return commit_shard(path, chunk, shard_table(results, param_names),
                        spikes=spikes_arrays(results, dt) if keep_spikes else None,
                        features=features)


def extend(path: str | Path, spec, prior, n: int, seed: int, workers: int = 1,
           dask: str | None = None, keep_spikes: bool | None = None, chunk_size: int | None = None,
           features: list[str] | None = None, progress: bool = True, on_commit=None,
           proposal=None, screen=None) -> dict:
    """Make the bank at ``path`` hold simulations 0..n-1 (create, extend or resume).

    ``features``: feature sets computed by the workers while simulating (defaults to the
    sets the bank already holds, so extensions stay complete). ``proposal``: draw θ from it
    instead of the prior (an object with ``sample_indexed(seed, indices)`` and ``identity()``,
    e.g. a truncated prior; recorded in bank.json, and an extension must use the same one).
    ``screen``: skip θ it rejects (``keep(thetas)`` → mask; ``identity()`` recorded in
    bank.json, extensions must use the same); they become rows with status ``screened``.
    """
    from tqdm.auto import tqdm

    from ..simulators.engine import CompiledModel
    from ..simulators.execution import check_not_bootstrapping

    check_not_bootstrapping()
    path = Path(path)
    meta = ensure_bank(path, spec, prior, seed, keep_spikes, chunk_size, proposal)
    if screen is not None:
        _record_screen(path, meta, screen)
    elif meta.get("screen") is not None:
        raise BankError(f"bank {path} was made with the screen {meta['screen']}; extend it with "
                        "the same --screen")
    source = prior if proposal is None else proposal
    size, keep = meta["chunk_size"], meta["keep_spikes"]
    feature_sets = sorted(set(features or ()) | set(meta.get("feature_sets", {})))
    if feature_sets:
        register_feature_sets(path, feature_sets)
    n_chunks = math.ceil(n / size)
    notes: list[str] = []
    compiled = str(CompiledModel.for_spec(spec).directory)
    engine = make_engine(spec, compiled, workers, dask, feature_sets)
    committed_now = {"simulations": 0, "shards": 0}
    screened: dict[int, list] = {}
    done_before = Bank(path).intact_indices()
    bar = tqdm(total=n, initial=len(done_before & set(range(n))), desc="simulating", unit="sim",
               disable=not progress)

    def pending_chunks(done: set[int]) -> list[int]:
        return [c for c in range(n_chunks)
                if any(i not in done for i in range(c * size, min((c + 1) * size, n)))]

    failed = True
    try:
        blocking = False
        while True:
            todo = pending_chunks(Bank(path).intact_indices())
            if not todo:
                break
            locks, work = {}, []
            for chunk in todo:
                lock = FileLock(str(path / "claims" / f"c{chunk:08d}.lock"))
                try:
                    lock.acquire(timeout=-1 if blocking else 0)
                except Timeout:
                    continue  # another writer is simulating this chunk right now
                locks[chunk] = lock
                done = _heal_chunk(path, chunk, notes)
                indices = [i for i in range(chunk * size, min((chunk + 1) * size, n)) if i not in done]
                if not indices:
                    lock.release()
                    del locks[chunk]
                    continue
                thetas = source.sample_indexed(seed, indices)
                jobs = make_jobs(prior, thetas, spec.duration, seed=seed, indices=indices)
                if screen is not None:
                    kept = np.asarray(screen.keep(thetas), bool)
                    screened[chunk] = [_screened(job, feature_sets) for job, k in zip(jobs, kept)
                                       if not k]
                    jobs = [job for job, k in zip(jobs, kept) if k]
                work.append((chunk, jobs))
                if blocking:
                    break  # after waiting for one chunk, look at the bank again
            if not work:
                blocking = True  # everything left is claimed by live writers: wait for them
                continue
            try:
                empty = [(chunk, []) for chunk, jobs in work if not jobs]  # all screened
                simulated = engine.run_chunks([w for w in work if w[1]])
                for chunk, results in itertools.chain(empty, simulated):  # commit as they finish
                    results = list(results) + screened.pop(chunk, [])
                    try:
                        commit_chunk(path, chunk, results, prior.names, keep, spec.dt)
                    except OSError as err:
                        raise _write_error(path, err) from None
                    locks.pop(chunk).release()
                    committed_now["simulations"] += len(results)
                    committed_now["shards"] += 1
                    bar.update(len(results))
                    if on_commit is not None:
                        on_commit(chunk, results)
            finally:
                for lock in locks.values():
                    lock.release()
        failed = False
    finally:
        bar.close()
        engine.close(failed=failed)  # interrupted or failed: no worker outlives the driver
    return {"bank": str(path), "added": committed_now["simulations"],
            "shards_added": committed_now["shards"], "notes": notes}


def _screened(job, feature_sets=()):
    """The bank row of a θ the screen skipped: no simulation, status ``screened``, NaN
    features."""
    from ..simulators.simulator import SimulationResult

    return SimulationResult(index=job.index, seed=job.seed, status="screened",
                            duration=job.duration, theta=np.asarray(job.theta),
                            message="skipped by the screen in bank.json",
                            features={name: np.full(len(get_feature_set(name).names), np.nan)
                                      for name in feature_sets})


def _record_screen(path: Path, meta: dict, screen) -> None:
    """Write the screen into bank.json, or check that an extension uses the same one."""
    with FileLock(str(path / "claims" / "bank.json.lock")):
        meta = Bank(path).meta
        ours = screen.identity()
        if meta.get("screen") is None:
            if Bank(path).intact_indices():
                raise BankError(f"bank {path} was made without a screen; extend it without "
                                "--screen, or screen into a new folder")
            write_json(path / "bank.json", meta | {"screen": ours})
        elif meta["screen"] != ours:
            raise BankError(f"bank {path} was made with the screen {meta['screen']}, not {ours}; "
                            "refusing to mix simulations")


def _write_error(path: Path, err: OSError) -> UserError:
    reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    return BankError(f"writing to bank {path} failed: {reason}. Every simulation committed "
                     "before this is intact; free space and re-run the same command to resume")
