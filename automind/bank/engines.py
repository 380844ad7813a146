"""Execution engines behind one interface: run chunks of simulations, yield them as they finish.

- ``LocalEngine``: worker processes on this machine (default; nothing to start). Each worker
  loads the compiled simulator once and keeps it warm.
- ``DaskEngine``: a Dask distributed cluster, either a LocalCluster started here
  (``local[:K]``) or a running scheduler (``tcp://HOST:PORT``, e.g. one started on a SLURM
  allocation with dask-jobqueue). A worker that dies mid-chunk has its chunk rerun
  elsewhere by Dask's scheduler.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..errors import UserError

_SIMULATORS: dict = {}


def run_chunk(spec, jobs: list[tuple], compiled_dir: str | None = None,
              feature_sets: tuple[str, ...] = ()) -> list:
    """Simulate a chunk in this (worker) process, reusing its warm simulator; compute the
    requested feature sets here too, so spikes need not travel or be stored."""
    from ..simulators.engine import CompiledModel, structure_key
    from ..simulators.simulator import Simulator

    key = repr(sorted(structure_key(spec).items())) + repr(spec.to_dict())
    sim = _SIMULATORS.get(key)
    if sim is None:
        usable = compiled_dir and (Path(compiled_dir) / "automind_run_args.json").is_file()
        compiled = CompiledModel(compiled_dir) if usable else CompiledModel.for_spec(spec)
        sim = _SIMULATORS[key] = Simulator(spec, compiled)
    results = [sim.run(params, seed, index, duration, theta=theta)
               for params, seed, index, duration, theta in jobs]
    if feature_sets:
        from ..features.sets import simulation_features

        for result in results:
            result.features = simulation_features(result, list(feature_sets), spec.t_analysis_start)
    return results


class LocalEngine:
    name = "local"
    #: times a chunk is resubmitted after its worker process died (e.g. killed by the OOM killer)
    retries = 2

    def __init__(self, spec, compiled_dir: str, workers: int, feature_sets: tuple = ()):
        self.spec, self.compiled_dir, self.workers = spec, compiled_dir, workers
        self.feature_sets = tuple(feature_sets)
        self._pool = self._new_pool() if workers > 1 else None

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def run_chunks(self, chunks: list[tuple[int, list]]):
        if self._pool is None:
            for chunk, jobs in chunks:
                yield chunk, run_chunk(self.spec, jobs, self.compiled_dir, self.feature_sets)
            return
        remaining = dict(chunks)
        for attempt in range(self.retries + 1):
            futures = {self._pool.submit(run_chunk, self.spec, jobs, self.compiled_dir,
                                         self.feature_sets): chunk
                       for chunk, jobs in remaining.items()}
            try:
                for future in as_completed(futures):
                    chunk = futures[future]
                    results = future.result()
                    del remaining[chunk]
                    yield chunk, results
                return
            except BrokenProcessPool:
                if attempt == self.retries:
                    raise RuntimeError("local worker processes keep dying (out of memory?)") from None
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class DaskEngine:
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
            yield futures[future], future.result()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_engine(spec, compiled_dir: str, workers: int, dask: str | None, feature_sets=()):
    if dask:
        return DaskEngine(spec, compiled_dir, dask, feature_sets)
    return LocalEngine(spec, compiled_dir, workers, feature_sets)


def simulate_jobs(spec, compiled_dir: str, jobs: list[tuple], workers: int = 1,
                  dask: str | None = None, feature_sets=()) -> list:
    """Run loose jobs (params, seed, index, duration, θ) on an engine, results by index."""
    workers = max(1, min(workers, len(jobs)))
    engine = make_engine(spec, compiled_dir, workers, dask, feature_sets)
    try:
        chunks = [(c, jobs[c::workers]) for c in range(workers)]
        results = [r for _, chunk in engine.run_chunks(chunks) for r in chunk]
    finally:
        engine.close()
    return sorted(results, key=lambda r: r.index)
