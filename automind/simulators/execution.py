"""Executing simulations: the job type and the engines that run chunks of jobs.

A ``Job`` is one simulation to run (simulator values, seed, index, duration, θ); ``make_jobs``
builds them from θ rows in the one place that knows the seed rule. Engines run chunks of
jobs and yield them as they finish; they are context managers (``with make_engine(...) as
engine``) so worker pools and clusters are closed on every exit path.

- ``LocalEngine``: worker processes on this machine (default; nothing to start). Each worker
  loads the compiled simulator once and keeps it warm; the pool outlives the engine, so a
  fit's many rounds and re-simulations reuse the same warm workers (a fresh pool costs
  seconds of imports per worker). A failed or interrupted engine shuts the pool down.
- ``DaskEngine``: a Dask distributed cluster, either a LocalCluster started here
  (``local[:K]``) or a running scheduler (``tcp://HOST:PORT``, e.g. one started on a SLURM
  allocation with dask-jobqueue). A worker that dies mid-chunk has its chunk rerun
  elsewhere by Dask's scheduler.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

_SIMULATORS: dict = {}
#: local worker pools by size, shared by successive engines (LocalEngine)
_POOLS: dict[int, ProcessPoolExecutor] = {}


def simulation_seed(global_seed: int, index: int) -> int:
    """Per-simulation seed derived from the global seed and the simulation's index."""
    return int(np.random.SeedSequence([int(global_seed), int(index)]).generate_state(1)[0])


def default_workers() -> int:
    """The cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())


@dataclass(frozen=True)
class Job:
    """One simulation to run: simulator values (SI), seed, index, duration (s), θ (prior units)."""

    params: dict
    seed: int
    index: int
    duration: float
    theta: np.ndarray


def make_jobs(prior, thetas, duration: float, *, seed: int | None = None, seeds=None,
              indices=None) -> list[Job]:
    """Jobs for θ rows: simulation ``indices[k]`` (default 0..) gets the seed derived from the
    global ``seed`` and its index, or the explicit ``seeds[k]`` (common random numbers)."""
    thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
    indices = range(len(thetas)) if indices is None else [int(i) for i in indices]
    if (seed is None) == (seeds is None):
        raise ValueError("give either a global seed or explicit per-job seeds")
    per_job = ([simulation_seed(seed, i) for i in indices] if seeds is None
               else [int(s) for s in seeds])
    return [Job(prior.to_simulator(t), s, i, duration, t)
            for t, s, i in zip(thetas, per_job, indices)]


def run_chunk(spec, jobs: list[Job], compiled_dir: str | None = None,
              feature_sets: tuple[str, ...] = ()) -> list:
    """Simulate a chunk in this (worker) process, reusing its warm simulator; compute the
    requested feature sets here too, so spikes need not travel or be stored."""
    if getattr(spec, "backend", "brian2") == "torch":
        from ..rsnn.execution import run_torch_chunk

        return run_torch_chunk(spec, jobs, feature_sets)
    from ..simulators.engine import CompiledModel, structure_key
    from ..simulators.simulator import Simulator

    key = repr(sorted(structure_key(spec).items())) + repr(spec.to_dict())
    sim = _SIMULATORS.get(key)
    if sim is None:
        usable = compiled_dir and (Path(compiled_dir) / "automind_run_args.json").is_file()
        compiled = CompiledModel(compiled_dir) if usable else CompiledModel.for_spec(spec)
        sim = _SIMULATORS[key] = Simulator(spec, compiled)
    results = sim.run_many(jobs)
    if feature_sets:
        from ..features.sets import simulation_features

        for result in results:
            result.features = simulation_features(result, list(feature_sets), spec.t_analysis_start)
    return results


class _Engine:
    """Context-manager protocol shared by the engines."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(failed=exc_type is not None)


def _pool(workers: int, fresh: bool = False) -> ProcessPoolExecutor:
    """The shared pool of ``workers`` processes (a new one when ``fresh`` or it broke)."""
    pool = _POOLS.get(workers)
    if pool is not None and (fresh or getattr(pool, "_broken", False)):
        pool.shutdown(wait=False, cancel_futures=True)
        pool = None
    if pool is None:
        pool = _POOLS[workers] = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"))
    return pool


def shutdown_pools() -> None:
    """Stop every shared worker pool (after its running chunks finish)."""
    while _POOLS:
        _POOLS.popitem()[1].shutdown(wait=True, cancel_futures=True)


class LocalEngine(_Engine):
    name = "local"
    #: times a chunk is resubmitted after its worker process died (e.g. killed by the OOM killer)
    retries = 2
    #: what a worker runs per chunk (replaceable in tests)
    task = staticmethod(run_chunk)

    def __init__(self, spec, compiled_dir: str, workers: int, feature_sets: tuple = ()):
        self.spec, self.compiled_dir, self.workers = spec, compiled_dir, workers
        self.feature_sets = tuple(feature_sets)
        self._pool = _pool(workers) if workers > 1 else None
        self._futures: set = set()

    def run_chunks(self, chunks: list[tuple[int, list]]):
        if self._pool is None:
            for chunk, jobs in chunks:
                yield chunk, run_chunk(self.spec, jobs, self.compiled_dir, self.feature_sets)
            return
        remaining = dict(chunks)
        for attempt in range(self.retries + 1):
            futures = {self._pool.submit(self.task, self.spec, jobs, self.compiled_dir,
                                         self.feature_sets): chunk
                       for chunk, jobs in remaining.items()}
            self._futures |= set(futures)
            try:
                for future in as_completed(futures):
                    # forget a finished future: it holds its chunk's results (spike trains of
                    # every run), which a long bank would otherwise keep in memory until the end
                    chunk = futures.pop(future)
                    self._futures.discard(future)
                    results = future.result()
                    del remaining[chunk]
                    yield chunk, results
                return
            except BrokenProcessPool:
                if attempt == self.retries:
                    raise RuntimeError("local worker processes keep dying (out of memory? or a "
                                       "script without `if __name__ == \"__main__\":`)") from None
                self._pool = _pool(self.workers, fresh=True)

    def close(self, failed: bool = False) -> None:
        """Normally the pool stays up for the next engine (this engine's unfinished chunks are
        cancelled or waited for); after a failure or interrupt it is shut down, so no worker
        outlives the driver."""
        if self._pool is None:
            return
        if failed:
            shutdown_pools()
        else:
            for future in self._futures:
                future.cancel()
            wait(self._futures)
        self._pool, self._futures = None, set()


class DaskEngine(_Engine):
    name = "dask"

    def __init__(self, spec, compiled_dir: str, address: str, feature_sets: tuple = ()):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise UserError("--dask needs dask[distributed] (pip install 'dask[distributed]')") from None
        self.spec, self.compiled_dir = spec, compiled_dir
        self.feature_sets = tuple(feature_sets)
        self._cluster = None
        if address == "local" or address.startswith("local:"):
            n = int(address.split(":", 1)[1]) if ":" in address else None
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            self.client = Client(self._cluster)
        elif address.startswith(("tcp://", "tls://", "ucx://")):
            try:
                self.client = Client(address, timeout="30s")
            except OSError as err:
                raise UserError(f"cannot reach the Dask scheduler at {address}: {err}") from None
        else:
            raise UserError(f"--dask takes local, local:K or a scheduler address like "
                            f"tcp://HOST:PORT; got {address!r}")

    def run_chunks(self, chunks: list[tuple[int, list]]):
        from dask.distributed import as_completed as dask_completed

        futures = {self.client.submit(run_chunk, self.spec, jobs, self.compiled_dir,
                                      self.feature_sets, pure=False,
                                      key=f"automind-chunk-{chunk}-{id(self)}"): chunk
                   for chunk, jobs in chunks}
        for future in dask_completed(list(futures)):
            yield futures.pop(future), future.result()  # popped: the cluster may free it

    def close(self, failed: bool = False) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def check_not_bootstrapping() -> None:
    """Refuse to simulate from a worker process that is still importing the user's script.

    Workers start with the ``spawn`` method, which re-runs the main script's top level; a
    script that calls ``extend``/``fit`` outside ``if __name__ == "__main__":`` would then run
    it again in every worker, and those would wait forever on the parent's chunk claims."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise UserError("automind was called while a worker process was starting: put the "
                        "script's code under `if __name__ == \"__main__\":` (worker processes "
                        "re-run the script's top level)")


#: jobs per chunk when ``simulate_jobs`` shows progress
PROGRESS_CHUNK = 8


def make_engine(spec, compiled_dir: str, workers: int, dask: str | None, feature_sets=()):
    if dask:
        return DaskEngine(spec, compiled_dir, dask, feature_sets)
    return LocalEngine(spec, compiled_dir, workers, feature_sets)


def simulate_jobs(spec, compiled_dir: str, jobs: list[Job], workers: int = 1,
                  dask: str | None = None, feature_sets=(), progress: str | None = None) -> list:
    """Run loose jobs on an engine; results in index order. ``progress``: show a progress
    bar with this label (the jobs then go out in chunks of at most ``PROGRESS_CHUNK``)."""
    from tqdm.auto import tqdm

    workers = max(1, min(workers, len(jobs)))
    parts = workers if progress is None else max(workers, -(-len(jobs) // PROGRESS_CHUNK))
    chunks = [(c, jobs[c::parts]) for c in range(parts)]
    results = []
    with make_engine(spec, compiled_dir, workers, dask, feature_sets) as engine, \
            tqdm(total=len(jobs), desc=progress, unit="sim", disable=progress is None) as bar:
        for _, chunk in engine.run_chunks(chunks):
            results.extend(chunk)
            bar.update(len(chunk))
    return sorted(results, key=lambda r: r.index)
