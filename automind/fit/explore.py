"""The fit's optional last stage (``--explore G``): map how far the consistent set extends.

Refinement ends with an ensemble that reproduces the recording but covers only part of the
consistent set: on MK1 the points between the refined members and the truth reproduce the
recording about as often as the members do, yet the truth lies inside the ensemble's central
90 % on only 7–17 of 28 parameters (studies/mk1_targets). Exploration grows an *archive* of
consistent configurations outwards: each generation proposes, for random pairs (i, j) of the
archive, θ_i + z (θ_i − θ_j) with z ~ U(0.2, 1) in search coordinates (``fit/space.py``) — a step
away from another member — mirrored back into the prior box where it leaves it (on MK1 four
fifths of the steps leave it: discarding them wastes those simulations, clipping piles members
on the bounds), re-simulates them and adds the consistent ones. It is not a sampler: the
archive's density says where exploration went, its extent says where the consistent set
reaches.

Generation K is a consistent-set folder ``RUN/explore/gK``; the archive is rebuilt from the
start folder and the generations, and each generation's proposals come from its own seed, so an
interrupted exploration resumes exactly. ``RUN/explore/set`` holds the archive as a
consistent set (``consistent.npz``, ``consistent_set.csv``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: the outward step: θ_i + z (θ_i − θ_j), z uniform in this range
STEP = (0.2, 1.0)


def outward_proposals(u: np.ndarray, n: int, rng: np.random.Generator, low: np.ndarray,
                      high: np.ndarray) -> np.ndarray:
    """n steps away from random archive pairs, mirrored into [low, high] (open box)."""
    i = rng.integers(len(u), size=n)
    j = (i + rng.integers(1, len(u), size=n)) % len(u)  # another member
    z = rng.uniform(*STEP, size=n)[:, None]
    out = u[i] + z * (u[i] - u[j])
    out = np.where(out < low, 2 * low - out, out)
    out = np.where(out > high, 2 * high - out, out)
    margin = 1e-6 * (high - low)
    return np.clip(out, low + margin, high - margin)


def _members(folder: Path) -> dict:
    from ..invariance.consistent import load_consistent_set

    found = load_consistent_set(folder)
    return {k: found[k] for k in ("theta", "features", "seed", "distance")}


def explore(posterior, x_target, out, start_folder, generations: int, n: int, seed: int = 0,
            threshold: float = 2.0, workers: int = 1, dask: str | None = None,
            progress: bool = True, posterior_path: str | None = None,
            space: str = "prior") -> tuple[list[dict], dict]:
    """Run ``generations`` exploration generations of ``n`` proposals from the consistent set
    in ``start_folder`` (its noise scale is kept), stepping in ``space``'s coordinates
    (``fit.space``). Returns one row per generation and the archive's summary
    (``RUN/explore/set``)."""
    from ..inference.noise import NoiseModel
    from ..invariance.consistent import find_consistent_set, write_pooled_record, write_set
    from .space import SearchSpace

    out, start_folder = Path(out), Path(start_folder)
    prior = posterior.prior
    noise = NoiseModel.load(start_folder)
    archive = _members(start_folder)
    if len(archive["theta"]) < 2:
        return [], {}
    moves = SearchSpace(prior, space)
    rows = []
    for g in range(1, generations + 1):
        rng = np.random.default_rng([seed, g])
        theta = moves.to_theta(outward_proposals(moves.to_u(archive["theta"]), n, rng,
                                                 moves.low, moves.high))
        folder = out / f"g{g}"
        found = find_consistent_set(posterior, x_target, folder, n, samples=theta, sigma=noise,
                                    seed=seed + 10 * g, threshold=threshold, workers=workers,
                                    dask=dask, progress=progress, target="exploration generation",
                                    posterior_path=posterior_path)
        new = _members(folder)
        archive = {k: np.concatenate([archive[k], new[k]]) for k in archive}
        rows.append({"stage": "explore", "round": g, "simulations": found["n_simulated"],
                     "new_consistent": found["n_consistent"], "set_size": len(archive["theta"])})
    folder = out / "set"
    folder.mkdir(parents=True, exist_ok=True)
    write_set(folder, prior, archive["theta"], archive["features"], archive["seed"],
              archive["distance"], np.arange(len(archive["theta"])))
    write_pooled_record(folder, [start_folder] + [out / f"g{g}" for g in range(1, generations + 1)],
                        posterior_path)
    return rows, {"consistent_set": str(folder / "consistent_set.csv"),
                  "set_size": len(archive["theta"])}
