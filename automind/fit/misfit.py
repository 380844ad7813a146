"""What keeps a fit's closest re-simulations away from the target: a posterior predictive check.

The misspecification check before the final validation asks whether the recording lies inside
what the truncated rounds simulated. It can pass while no configuration reproduces the
recording: each feature in range, not all of them at once. This check comes after
re-simulation and names the features that the configurations nearest to the target (smallest
acceptance distance over the final validation and every refinement generation) still miss:
per feature, the median over the ``CLOSEST`` nearest of z = (x − x*) / σ, σ the acceptance's
noise scale. A median beyond the threshold is a systematic miss (the closest lie on one side),
not noise. A fit with yield 0 thus states a measured reason (e.g. "rate_std −14 sd: the
recording's units are far more heterogeneous than the simulated networks'"), and a fit with a
consistent set shows what its closest members still trade off.

Also the helpers that find those nearest configurations in a fit's summary
(``closest_configurations``: the report's and the studies' posterior predictive figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: re-simulations (the nearest to the target) whose misfits are summarised
CLOSEST = 5
#: features listed, largest |median z| first
SHOWN = 8


def closest_misfit(folders, target: np.ndarray, names, threshold: float,
                   closest: int = CLOSEST) -> dict:
    """The per-feature misfit of the ``closest`` valid re-simulations across consistent-set
    folders (their ``chunks/`` and ``noise.json``; unfinished folders are skipped); ``target``
    and the chunks' features are in the posterior's transformed feature space, ``names`` one
    per feature. ``features``: the ``SHOWN`` with the largest |median z| (negative: the
    simulations lie below the recording), with their median |z|; ``missed``: those whose
    |median z| exceeds ``threshold``."""
    from ..inference.noise import NoiseModel
    from ..invariance.consistent import load_chunks

    distances, zs = [], []
    for folder in map(Path, folders):
        if not (folder / "noise.json").is_file() or not any((folder / "chunks").glob("c*.npz")):
            continue
        chunks = load_chunks(folder)
        keep = (chunks["status"] == "ok") & np.isfinite(chunks["distance"])
        # z per feature: the acceptance's σ without its correlation (σ = inf features: 0)
        per_feature = NoiseModel(NoiseModel.load(folder).sigma)
        distances.append(chunks["distance"][keep])
        zs.append(per_feature.whiten(chunks["features"][keep] - target))
    distance = np.concatenate(distances) if distances else np.zeros(0)
    if not len(distance):
        return {"closest": 0, "distances": [], "threshold": threshold, "features": [],
                "missed": []}
    nearest = np.argsort(distance, kind="stable")[:closest]
    z = np.concatenate(zs)[nearest]
    with np.errstate(invalid="ignore"):
        size = np.nanmedian(np.abs(z), axis=0)
        signed = np.nanmedian(z, axis=0)
    order = [i for i in np.argsort(-np.nan_to_num(np.abs(signed), nan=-1.0), kind="stable")
             if np.isfinite(signed[i])][:SHOWN]
    features = [{"name": str(names[i]), "median_abs_z": round(float(size[i]), 2),
                 "median_z": round(float(signed[i]), 2)} for i in order]
    return {"closest": int(len(nearest)), "distances": np.round(distance[nearest], 3).tolist(),
            "threshold": threshold, "features": features,
            "missed": [f["name"] for f in features if abs(f["median_z"]) > threshold]}


def describe(misfit: dict) -> str:
    """One line: how near the closest came and the features it misses."""
    if not misfit["closest"]:
        return "no valid re-simulation to compare with the target"
    missed = [f for f in misfit["features"] if f["name"] in misfit["missed"]]
    head = (f"the {misfit['closest']} closest re-simulations lie {misfit['distances'][0]:.2f}–"
            f"{misfit['distances'][-1]:.2f} noise sd from the target (threshold "
            f"{misfit['threshold']:g})")
    if not missed:
        return head + "; no single feature beyond the threshold"
    return head + "; they miss " + ", ".join(f"{f['name']} ({f['median_z']:+.1f} sd)"
                                             for f in missed)


def set_folder(summary: dict) -> Path:
    """The folder of the fit's consistent set (refine/set: every configuration accepted from
    the final validation on; the final validation's folder when refinement is off)."""
    return Path(summary["consistent_set_folder"])


def samples_folder(summary: dict) -> Path:
    """The consistent-set run whose samples the fit re-simulated last (the last refinement
    generation, or the final validation), rejected ones included."""
    return Path(summary.get("last_generation_folder") or summary["consistent_set_folder"])


def set_size(summary: dict) -> int:
    return int(summary.get("set_size", summary.get("n_consistent", 0)))


def closest_configurations(summary: dict, shown: int) -> dict:
    """The ``shown`` configurations closest to the target: the consistent set's when it holds
    that many, else the last re-simulated samples' (accepted ones first, as they are closer):
    θ, seeds, distances (noise sd) and whether each was accepted."""
    from ..invariance.consistent import load_chunks, load_consistent_set

    if set_size(summary) >= shown:
        found = load_consistent_set(set_folder(summary))
        order = np.argsort(found["distance"])[:shown]
        return {"theta": found["theta"][order], "seed": found["seed"][order],
                "distance": found["distance"][order], "accepted": np.ones(len(order), bool)}
    final = samples_folder(summary)
    samples, runs = np.load(final / "samples.npy"), load_chunks(final)
    distance = runs["distance"]
    order = [k for k in np.argsort(np.where(np.isfinite(distance), distance, np.inf))
             if np.isfinite(distance[k])][:shown]
    return {"theta": samples[runs["index"][order]], "seed": runs["seed"][order],
            "distance": distance[order], "accepted": runs["accepted"][order]}


def shown_label(accepted) -> str:
    """How a figure names re-simulated configurations: accepted, or the closest and how many
    of them were accepted."""
    n = int(np.sum(accepted))
    return ("accepted" if n == len(accepted) else
            "closest, none accepted" if n == 0 else f"closest ({n} accepted)")
