"""Comparing consistent sets of several targets (e.g. organoid ages, brain areas): which
parameters shift and separate them, how much their marginals overlap, and whether their
invariant subspaces and local geometry differ. Runs are folders of `automind invariance`."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np

from ..bank.store import write_json
from ..errors import UserError
from .consistent import load_consistent_set
from .geometry import global_geometry, overlap_coefficients, principal_angles


def compare_sets(sets: dict[str, np.ndarray], names: list[str], k: int | None = None) -> dict:
    """Pairwise comparison of consistent sets given as standardised u arrays."""
    geometries = {label: global_geometry(u) for label, u in sets.items()}
    if k is None:
        k = max(1, int(round(np.mean([g["participation_ratio"] for g in geometries.values()]))))
    k = min(k, len(names) - 1) if len(names) > 1 else 1
    pairs = {}
    for a, b in combinations(sets, 2):
        ua, ub = sets[a], sets[b]
        pooled = np.sqrt(0.5 * (ua.var(0) + ub.var(0)))
        shift = (ub.mean(0) - ua.mean(0))
        separation = np.abs(shift) / np.maximum(pooled, 1e-12)
        overlap = overlap_coefficients(ua, ub)
        angles = principal_angles(geometries[a]["components"][:, :k],
                                  geometries[b]["components"][:, :k])
        order = np.argsort(-separation)
        pairs[f"{a} vs {b}"] = {
            "shift_prior_sd": dict(zip(names, shift.tolist())),
            "separation": dict(zip(names, separation.tolist())),
            "overlap": dict(zip(names, overlap.tolist())),
            "separating_parameters": [names[i] for i in order if separation[i] > 1.0],
            "principal_angles_deg": angles.tolist(),
            "participation_ratio": [geometries[a]["participation_ratio"],
                                    geometries[b]["participation_ratio"]]}
    return {"subspace_dimension": k, "pairs": pairs,
            "participation_ratio": {label: g["participation_ratio"] for label, g in geometries.items()}}


def compare_runs(runs: list[str | Path], out: str | Path, labels: list[str] | None = None) -> dict:
    """Compare `automind invariance` folders; writes compare.json and figures into ``out``."""
    from .figures import plot_marginals

    if len(runs) < 2:
        raise UserError("compare needs at least two runs")
    labels = labels or [Path(r).name for r in runs]
    if len(set(labels)) != len(labels):
        raise UserError(f"runs need distinct names; got {labels} (pass --labels)")
    loaded = {label: load_consistent_set(run) for label, run in zip(labels, runs)}
    names = [str(n) for n in next(iter(loaded.values()))["names"]]
    for label, data in loaded.items():
        if [str(n) for n in data["names"]] != names:
            raise UserError(f"run {label} has parameters {list(data['names'])}, not {names}")
    report = compare_sets({label: data["u"] for label, data in loaded.items()}, names)
    local = {}
    for label, run in zip(labels, runs):
        geometry = Path(run) / "geometry.json"
        if geometry.is_file():
            local[label] = json.loads(geometry.read_text())["local"]
    report["local"] = local
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report["figures"] = [str(plot_marginals({label: d["u"] for label, d in loaded.items()},
                                            names, report, out / "compare_marginals.png"))]
    report["runs"] = dict(zip(labels, map(str, runs)))
    write_json(out / "compare.json", report)
    return report
