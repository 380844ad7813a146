"""Validation by re-simulation: which posterior samples really reproduce the target?

Each sample θ is simulated again (new seed) with the bank's simulator, its features are
computed with the posterior's feature set, and it is **accepted** when its features lie
within the target's own simulation noise: with z_i = (t(x_i(θ)) − t(x_i*)) / σ_i,

    d(θ) = sqrt( zᵀ R⁻¹ z / k )  <=  threshold (default 2)

over the features the posterior conditions on, in the transformed (log10 where marked)
space. σ_i is the simulation-noise spread of feature i and R the features' correlation
(shrunk), both over ``noise_repeats`` (32) re-simulations of the target's true θ with new
seeds when it is known (a bank target), otherwise of the most probable sample
(``inference/noise.py``). The **yield** is accepted / simulated; the accepted samples are
the consistent set.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .noise import REPEATS, NoiseModel


def resimulate(spec, prior, thetas: np.ndarray, seed: int, feature_set: str, workers: int = 1,
               dask: str | None = None, first_index: int = 0) -> list:
    """Simulate θ rows (prior units) with ``spec``; results carry ``feature_set``'s features."""
    from ..simulators.engine import CompiledModel
    from ..simulators.execution import make_jobs, simulate_jobs

    compiled = CompiledModel.for_spec(spec)
    jobs = make_jobs(prior, thetas, spec.duration, seed=seed,
                     indices=range(first_index, first_index + len(thetas)))
    return simulate_jobs(spec, str(compiled.directory), jobs, workers, dask, (feature_set,))


def simulator_of(posterior):
    """The simulator spec a posterior's bank was made with (to re-simulate its samples)."""
    from ..simulators.spec import SimulatorSpec

    simulator = posterior.provenance.get("simulator")
    if not simulator or simulator.get("name") in (None, "imported", "synthetic") \
            or not posterior.features.get("set"):
        raise UserError("this posterior was not trained on an automind bank, so there is no "
                        "simulator to re-simulate with; validate from Python with your simulator")
    return SimulatorSpec.from_plain(simulator)


def noise_runs(posterior, spec, reference: np.ndarray, repeats: int = REPEATS, seed: int = 1001,
               workers: int = 1, dask: str | None = None) -> list:
    """``repeats`` simulations of ``reference`` with new seeds (the noise reference)."""
    return resimulate(spec, posterior.prior, np.repeat(np.asarray(reference, float)[None], repeats, 0),
                      seed, posterior.features["set"], workers, dask)


def noise_model(posterior, spec, target: np.ndarray, reference: np.ndarray,
                repeats: int = REPEATS, seed: int = 1001, workers: int = 1,
                dask: str | None = None, runs: list | None = None) -> NoiseModel:
    """σ and the features' shrunk correlation over ``repeats`` simulations of ``reference``
    with new seeds (or the given ``runs``): ``inference.noise``. Only the runs that ended
    ``ok`` count (a stopped run's features are not noise of the reference's activity)."""
    if runs is None:
        runs = noise_runs(posterior, spec, reference, repeats, seed, workers, dask)
    return NoiseModel.from_runs(transformed_features(posterior, ok_runs(runs)), target,
                                quantum=feature_quanta(posterior, spec))


def feature_quanta(posterior, spec) -> np.ndarray:
    """The step of each of the posterior's (selected) features in ``spec``'s runs
    (``bursts.feature_quanta``: 0/1 indicators, counts per analysed second; 0 elsewhere)."""
    from ..features.bursts import feature_quanta as quanta

    names = np.asarray(posterior.features["names"])
    columns = posterior.config.get("feature_columns")
    return quanta(names if columns is None else names[columns],
                  spec.duration - spec.t_analysis_start)


#: the fewest ok repeats a noise model is estimated from (or all of them, when fewer were run)
MIN_OK_REPEATS = 3


def ok_runs(runs: list) -> list:
    """The runs that ended ok; a clear error when fewer than MIN_OK_REPEATS (or than all of
    the runs, when fewer were asked for) did."""
    ok = [r for r in runs if r.status == "ok"]
    if len(ok) < min(MIN_OK_REPEATS, len(runs)) or not ok:
        statuses = ", ".join(f"{s} {n}" for s, n in
                             zip(*np.unique([r.status for r in runs], return_counts=True)))
        raise UserError(f"the noise reference ran ok in {len(ok)} of {len(runs)} repeats "
                        f"({statuses}): its simulation noise cannot be estimated from them; "
                        "the noise needs a reference configuration that runs ok")
    return ok


def transformed_features(posterior, results: list) -> np.ndarray:
    """The posterior's transformed, selected features of simulation results (NaN kept)."""
    return _transformed(posterior, [r.features[posterior.features["set"]] for r in results],
                        posterior.config.get("feature_columns"))


def score(posterior, results: list, target: np.ndarray, noise, threshold: float) -> dict:
    """Distances of re-simulations to the target (``noise``: a NoiseModel, or σ alone for
    the RMS of z), and which are accepted."""
    noise = noise if isinstance(noise, NoiseModel) else NoiseModel(noise)
    features = transformed_features(posterior, results)
    distance = noise.distance(features, target)
    status = np.array([r.status for r in results])
    accepted = (status == "ok") & np.isfinite(distance) & (distance <= threshold)
    return {"features": features, "distance": distance, "status": status, "accepted": accepted}


def validate(posterior, samples: np.ndarray, x_target: np.ndarray, truth=None,
             threshold: float = 2.0, noise_repeats: int = REPEATS, seed: int = 1000,
             workers: int = 1, dask: str | None = None) -> dict:
    """Re-simulate ``samples`` and score them against the target (raw features)."""
    spec = simulator_of(posterior)
    samples = posterior.prior.validate(samples)
    target = posterior.prepare_x(x_target)[0].numpy().astype(np.float64)
    reference = np.asarray(truth, dtype=float) if truth is not None else samples[0]
    noise = noise_model(posterior, spec, target, reference, noise_repeats, seed + 1, workers, dask)
    results = resimulate(spec, posterior.prior, samples, seed, posterior.features["set"],
                         workers, dask)
    scored = score(posterior, results, target, noise, threshold)
    accepted = scored["accepted"]
    return {"yield": float(accepted.mean()), "n_simulated": int(len(samples)),
            "n_accepted": int(accepted.sum()), "threshold": threshold,
            "noise_reference": "truth" if truth is not None else "most probable sample",
            **noise.to_dict(), "distance": scored["distance"].tolist(),
            "accepted": accepted.tolist(), "status": scored["status"].tolist(),
            "seeds": [r.seed for r in results], "features": scored["features"].tolist(),
            "target": target.tolist(), "results": results}


def _transformed(posterior, raw: list, columns) -> np.ndarray:
    """Raw feature vectors -> the posterior's transformed space (NaN kept, no errors)."""
    from ..features.sets import transform_features

    x = transform_features(np.array(raw, dtype=np.float64), posterior.features["transforms"])
    return x[:, columns] if columns is not None else x
