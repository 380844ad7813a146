"""Finding a consistent set: posterior samples re-simulated, the ones that reproduce the
target kept (the acceptance criterion of ``inference/validate.py``). Resumable: samples,
the noise scale and every finished chunk of re-simulations are stored as they complete,
and the same command continues where an interrupted one stopped.

Folder layout: ``run.json`` (settings), ``samples.npy``, ``noise.json``, ``chunks/cNNNNN.npz``
(per chunk: distance, accepted, status, transformed features, seeds), and, once complete,
``consistent_set.csv`` and ``consistent.npz`` (θ, standardised u, features, seeds, distance).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import json_floats, save_npy, save_npz, write_json
from ..inference.runs import write_theta_table


#: posterior samples tried in turn as the noise reference when there is no truth
REFERENCE_CANDIDATES = 3
#: re-simulations per chunk (a chunk is the unit of work and of resumption): at most this many,
MAX_CHUNK = 50
#: ... and, for more samples than one chunk holds, at least this many chunks per worker
CHUNKS_PER_WORKER = 4


def _noise_reference(posterior, spec, samples, truth, seed: int, workers: int, dask):
    """(reference θ, its REPEATS runs, its label): the truth, else the first of the first few
    samples that runs ok often enough to estimate the noise from (``validate.ok_runs``)."""
    from ..inference.noise import REPEATS
    from ..inference.validate import noise_runs, ok_runs

    candidates = [np.asarray(truth, float)] if truth is not None else samples[:REFERENCE_CANDIDATES]
    for k, reference in enumerate(candidates):
        runs = noise_runs(posterior, spec, reference, REPEATS, seed=seed + 1 + 1000 * k,
                          workers=workers, dask=dask)
        try:
            ok_runs(runs)
        except UserError:
            if k == len(candidates) - 1:
                raise
            continue
        label = "truth" if truth is not None else "first sample" if k == 0 else f"sample {k}"
        return reference, runs, label


def _settings(out: Path, settings: dict) -> None:
    """Record the run's settings, or check a resumed run has the same ones (the posterior's
    path and the target's label are provenance, not identity: a run folder moved with its fit,
    or its recording moved, still resumes; the target's features ``x`` are compared)."""
    run_file = out / "run.json"
    if run_file.is_file():
        before = json.loads(run_file.read_text())
        changed = sorted(k for k in settings  # compared as JSON: NaN features equal themselves
                         if k not in ("posterior", "target")
                         and json.dumps(before.get(k)) != json.dumps(settings[k]))
        if changed:
            raise UserError(f"{out} holds a consistent-set run with other settings "
                            f"({', '.join(changed)}); resume with the same ones or use a new folder")
    else:
        write_json(run_file, settings)


def balanced_chunk_size(n: int, workers: int) -> int:
    """One chunk for at most ``MAX_CHUNK`` re-simulations (run in this process, with its warm
    simulator: no worker pool to start, which dominates small runs); above that, at least
    ``CHUNKS_PER_WORKER`` chunks per worker: 60 samples in chunks of 50 and 10 kept one of two
    workers idle for most of a refinement generation, and runs differ in cost (silent ones
    stop early)."""
    if n <= MAX_CHUNK:
        return max(1, n)
    chunks = max(-(-n // MAX_CHUNK), CHUNKS_PER_WORKER * max(1, workers))
    return -(-n // min(chunks, n))


def _recorded_chunk_size(out: Path) -> int | None:
    """The chunk size of an earlier run in ``out`` (its chunk files follow that layout)."""
    run_file = out / "run.json"
    return json.loads(run_file.read_text()).get("chunk_size") if run_file.is_file() else None


def find_consistent_set(posterior, x, out: str | Path, n: int, truth=None, target: str = "",
                        seed: int = 0, threshold: float = 2.0, chunk_size: int | None = None,
                        posterior_path: str | None = None, samples: np.ndarray | None = None,
                        sigma: np.ndarray | None = None, target_sd=None,
                        workers: int = 1, dask: str | None = None, progress: bool = True) -> dict:
    """Sample n θ from the posterior for raw features x, re-simulate them chunk by chunk and
    keep those within ``threshold`` noise sd of the target. Returns the summary.
    ``samples`` (n rows) replaces the posterior draws and ``sigma`` the noise runs (an earlier
    run's noise model, a NoiseModel or σ alone): the posterior then only supplies the
    simulator, prior and feature transform.
    ``target_sd`` (one per raw feature, transformed space; None/NaN = 0): the target's own
    noise (a recording's window-to-window spread), added in quadrature to the simulations'.
    ``chunk_size`` (None): an earlier run's in ``out``, else ``balanced_chunk_size``; results
    do not depend on it (a simulation's seed follows its index)."""
    from tqdm.auto import tqdm

    from ..inference.noise import NoiseModel, held_out_distances
    from ..inference.validate import (feature_quanta, noise_model, ok_runs, score, simulator_of,
                                      transformed_features)
    from ..simulators.engine import CompiledModel
    from ..simulators.execution import make_engine, make_jobs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec, prior = simulator_of(posterior), posterior.prior
    target_x = posterior.prepare_x(x)[0].numpy().astype(np.float64)
    chunk_size = chunk_size or _recorded_chunk_size(out) or balanced_chunk_size(n, workers)
    _settings(out, {"n": n, "seed": seed, "threshold": threshold, "chunk_size": chunk_size,
                    "target": target, "x": np.asarray(x, float).tolist(),
                    "truth": None if truth is None else np.asarray(truth, float).tolist(),
                    "posterior": posterior_path})
    if not (out / "samples.npy").is_file():
        save_npy(out / "samples.npy", posterior.sample(n, x, seed=seed) if samples is None
                 else prior.validate(samples))
    samples = np.load(out / "samples.npy")
    if not (out / "noise.json").is_file() and sigma is not None:
        noise = sigma if isinstance(sigma, NoiseModel) else NoiseModel(sigma)
        write_json(out / "noise.json", noise.to_dict() | {"reference": "given"})
    if not (out / "noise.json").is_file():
        reference, runs, label = _noise_reference(posterior, spec, samples, truth, seed, workers,
                                                  dask)
        noise = noise_model(posterior, spec, target_x, reference, runs=runs)
        extra = {}
        if target_sd is not None:
            columns = posterior.model["feature_columns"]
            recording = np.nan_to_num(np.array(target_sd, dtype=float)[columns], nan=0.0)
            extra = {"sigma_simulations": noise.sigma.tolist(), "sigma_target": recording.tolist()}
            noise = noise.widened(recording)
        # the reference's own re-simulations scored like every sample, each against the scale
        # the other repeats set (with the truth as the reference: how often the truth itself
        # would be accepted, honestly); noise.json's scale uses all of them
        status = np.array([r.status for r in runs])
        own = np.full(len(runs), np.nan)
        if target_sd is None:
            own[status == "ok"] = held_out_distances(
                transformed_features(posterior, ok_runs(runs)), target_x,
                feature_quanta(posterior, spec))
        else:
            own = score(posterior, runs, target_x, noise, threshold)["distance"]
        write_json(out / "noise.json", noise.to_dict() | {
            "reference": label,
            "reference_distances": json_floats(own),
            "reference_accepted": ((status == "ok") & np.isfinite(own) & (own <= threshold)).tolist(),
            "reference_distances_held_out": target_sd is None} | extra)
    noise = NoiseModel.load(out)

    (out / "chunks").mkdir(exist_ok=True)
    n_chunks = -(-n // chunk_size)
    todo = [c for c in range(n_chunks) if not (out / "chunks" / f"c{c:05d}.npz").is_file()]
    if todo:
        compiled = CompiledModel.for_spec(spec)
        feature_set = posterior.features["set"]
        jobs = {c: make_jobs(prior, samples[c * chunk_size:(c + 1) * chunk_size], spec.duration,
                             seed=seed + 2, indices=range(c * chunk_size, min(n, (c + 1) * chunk_size)))
                for c in todo}
        bar = tqdm(total=n, initial=n - sum(len(j) for j in jobs.values()), unit="sim",
                   desc="re-simulating", disable=not progress)
        with make_engine(spec, str(compiled.directory), max(1, min(workers, len(todo))), dask,
                         (feature_set,)) as engine:
            for c, results in engine.run_chunks(list(jobs.items())):
                results = sorted(results, key=lambda r: r.index)
                scored = score(posterior, results, target_x, noise, threshold)
                save_npz(out / "chunks" / f"c{c:05d}.npz", index=[r.index for r in results],
                          seed=[r.seed for r in results], status=scored["status"].astype("U8"),
                          distance=scored["distance"], accepted=scored["accepted"],
                          features=scored["features"])
                bar.update(len(results))
        bar.close()
    return _assemble(out, posterior, samples, threshold)


def load_chunks(out: str | Path) -> dict:
    """The re-simulations of a consistent-set folder in sample order: index, seed, status,
    distance, accepted, features (the finished chunks only)."""
    files = sorted((Path(out) / "chunks").glob("c*.npz"))
    parts = [np.load(f) for f in files]
    keys = ("index", "seed", "status", "distance", "accepted", "features")
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def _assemble(out: Path, posterior, samples: np.ndarray, threshold: float) -> dict:
    chunks = load_chunks(out)
    index, accepted, distance = chunks["index"], chunks["accepted"], chunks["distance"]
    seeds, features, status = chunks["seed"], chunks["features"], chunks["status"]
    keep = index[accepted]
    write_set(out, posterior.prior, samples[keep], features[accepted], seeds[accepted],
              distance[accepted], keep)
    by_status = {str(s): int((status == s).sum()) for s in np.unique(status)}
    summary = {"n_simulated": int(len(index)), "n_consistent": int(accepted.sum()),
               "yield": float(accepted.mean()), "threshold": threshold, "by_status": by_status,
               "consistent_set": str(out / "consistent_set.csv")}
    write_json(out / "consistent.json", summary)
    return summary


def write_set(out: Path, prior, theta, features, seeds, distance, index) -> None:
    """A consistent set's arrays (``consistent.npz``) and table (``consistent_set.csv``)."""
    save_npz(out / "consistent.npz", theta=theta, u=prior.standardise(theta), features=features,
             seed=seeds, distance=distance, index=index, names=np.array(prior.names))
    write_theta_table(out / "consistent_set.csv", prior,
                      ((int(k), row, [f"{dist:.4g}", int(s)])
                       for k, row, dist, s in zip(index, theta, distance, seeds)),
                      ["distance", "seed"])


def write_pooled_record(out: Path, folders, posterior_path: str | None = None) -> None:
    """A pooled set's ``noise.json`` and ``run.json``: the first source folder's noise model and
    target (``x``, ``truth``, ``threshold``: what `compare` and exploration read), its sources."""
    import shutil

    first = Path(folders[0])
    shutil.copyfile(first / "noise.json", out / "noise.json")
    record = json.loads((first / "run.json").read_text())
    write_json(out / "run.json", {k: record[k] for k in ("x", "truth", "threshold", "target")
                                  if k in record}
               | {"posterior": posterior_path or record.get("posterior"),
                  "pooled_from": [str(f) for f in folders]})


def load_consistent_set(folder: str | Path) -> dict:
    """The arrays of a finished consistent-set folder (theta, u, features, seed, distance)."""
    path = Path(folder) / "consistent.npz"
    if not path.is_file():
        raise UserError(f"{folder} holds no finished consistent set (no consistent.npz); run "
                        "`automind invariance` on it first")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def set_spread(folder: str | Path, prior, truth=None, least: int = 10) -> dict:
    """How much of the prior a consistent set spans, per parameter: the median over parameters
    of its sd over the prior's sd (in the prior's standardised coordinates) and, with a known
    truth, which parameters' truth lies inside the set's central 90 % (5th–95th percentile).
    A set that is a fair sample of *all* consistent configurations holds a truth drawn from
    the prior inside ~90 % of its ranges; far fewer means the set is contracted onto part of
    it. Empty (``{}``) with fewer than ``least`` configurations."""
    found = load_consistent_set(folder)["theta"]
    if len(found) < least:
        return {}
    out = {"set_sd_over_prior_sd": float(np.median(prior.standardise(found).std(0)))}
    if truth is not None:
        low, high = np.quantile(found, [0.05, 0.95], axis=0)
        inside = (low <= np.asarray(truth)) & (np.asarray(truth) <= high)
        out |= {"truth_in_set_5_95": int(inside.sum()),
                "truth_outside_set_5_95": [n for n, ok in zip(prior.names, inside) if not ok]}
    return out


def simulated_features(posterior, workers: int = 1, dask: str | None = None):
    """``features(thetas, seeds) -> (m, k)``: the posterior's transformed features of new
    simulations with the given seeds (common random numbers for finite differences)."""
    from ..inference.validate import _transformed, simulator_of
    from ..simulators.engine import CompiledModel
    from ..simulators.execution import make_jobs, simulate_jobs

    spec, prior = simulator_of(posterior), posterior.prior
    feature_set = posterior.features["set"]
    compiled = str(CompiledModel.for_spec(spec).directory)

    def features(thetas, seeds):
        jobs = make_jobs(prior, thetas, spec.duration, seeds=seeds)
        results = simulate_jobs(spec, compiled, jobs, workers, dask, (feature_set,))
        return _transformed(posterior, [r.features[feature_set] for r in results],
                            posterior.config.get("feature_columns"))

    return features
