"""The geometry report of one consistent set: global, conditional and local, with figures
and a JSON summary (``geometry.json``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import write_json
from .geometry import (conditional_correlations, fisher_information, global_geometry,
                       hessian_directions, participation_ratio, principal_angles)


def local_geometry(posterior, x, u: np.ndarray, k: int) -> dict:
    """Hessian eigen-structure at configurations u: local dimensionality (participation
    ratio of the local covariance, i.e. of 1/λ over positive curvatures) and the k sloppiest
    directions (columns), per configuration."""
    values, vectors = hessian_directions(posterior, x, u)
    dims = []
    for lam in values:
        positive = lam[lam > 0]
        dims.append(participation_ratio(1 / positive) if len(positive) else np.nan)
    return {"eigenvalues": values, "vectors": vectors, "sloppy": vectors[:, :, -k:],
            "stiff": vectors[:, :, 0], "local_dimensionality": np.array(dims)}


def analyse_set(posterior, x, consistent: dict, out: str | Path, n_local: int = 50,
                n_conditional: int = 20, resolution: int = 25, fisher=None,
                fisher_points: int = 0, seed: int = 0, cheap=None) -> dict:
    """Geometry of a consistent set (``load_consistent_set``) into ``out``: figures and
    geometry.json. ``fisher(thetas, seeds) -> features`` enables the Fisher-information
    check at ``fisher_points`` configurations; ``cheap`` (a ``CheapModel``) the predicted
    iso-rate normals against the local stiff directions (``cheap_normals``)."""
    from .figures import plot_correlations, plot_directions, plot_local_dimensionality

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = posterior.prior.names
    u = np.asarray(consistent["u"], float)
    found = global_geometry(u)
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(u))
    k = max(1, min(len(names) - 1, int(round(found["participation_ratio"]))))
    local = local_geometry(posterior, x, u[chosen[:n_local]], k)
    global_subspace = found["components"][:, :k]
    angles = np.array([principal_angles(s, global_subspace).max() for s in local["sloppy"]])
    conditional = conditional_correlations(posterior, x, u[chosen[:n_conditional]], resolution)
    figures = [
        plot_directions(u, names, found["components"], u[chosen[:n_local]],
                        local["sloppy"][:, :, -1], out / "geometry_directions.png",
                        found["explained_variance_ratio"]),
        plot_correlations({"marginal (Pearson)": found["pearson"],
                           "conditional (mean over configurations)": conditional},
                          names, out / "geometry_correlations.png"),
        plot_local_dimensionality(local["local_dimensionality"], angles,
                                  found["participation_ratio"], out / "geometry_local.png")]
    report = {
        "n_configurations": int(len(u)), "parameters": names,
        "explained_variance_ratio": found["explained_variance_ratio"].tolist(),
        "participation_ratio": found["participation_ratio"],
        "participation_ratio_per_parameter": found["participation_ratio"] / len(names),
        "pc1": dict(zip(names, found["components"][:, 0].tolist())),
        "pearson": found["pearson"].tolist(), "spearman": found["spearman"].tolist(),
        "conditional_correlation": conditional.tolist(),
        "local": {"n": int(len(local["eigenvalues"])), "subspace_dimension": k,
                  "local_dimensionality_median": float(np.nanmedian(local["local_dimensionality"])),
                  "local_dimensionality_iqr": np.nanpercentile(local["local_dimensionality"],
                                                               [25, 75]).tolist(),
                  "angle_to_global_median_deg": float(np.median(angles)),
                  "hessian_eigenvalues_median": np.median(local["eigenvalues"], 0).tolist()},
        "figures": [str(f) for f in figures]}
    report |= _composites(posterior, consistent)
    if fisher is not None and fisher_points > 0:
        report["fisher"] = _fisher_check(posterior, consistent, fisher, fisher_points, chosen,
                                         local, seed)
    if cheap is not None:
        from .cheap_normals import cheap_check
        from .figures import plot_cheap_alignment

        report["cheap"] = cheap_check(cheap, u[chosen[:n_local]], local["eigenvalues"],
                                      local["vectors"], names, u_set=u)
        report["figures"].append(str(plot_cheap_alignment(report["cheap"],
                                                          out / "geometry_cheap.png")))
    write_json(out / "geometry.json", report)
    return report


def _fisher_check(posterior, consistent, fisher, n_points, chosen, local, seed) -> dict:
    """Fisher-information stiff directions at the first configurations of ``chosen`` (those
    with local Hessians) and their agreement (|cos|) with the Hessian's stiff direction."""
    n_points = min(n_points, len(local["stiff"]))
    cosines, simulations = [], 0
    for k, index in enumerate(chosen[:n_points]):
        result = fisher_information(fisher, posterior.prior, consistent["theta"][index],
                                    seed=seed + k)
        simulations = result["simulations"]
        cosines.append(float(abs(result["eigenvectors"][:, 0] @ local["stiff"][k])))
    return {"points": n_points, "simulations_per_configuration": simulations,
            "stiff_direction_cosine": cosines}


def _composites(posterior, consistent) -> dict:
    """For MK1 posteriors: how much each composite parameter varies over the set relative to
    the prior (near 0 = kept constant)."""
    from ..simulators import MODELS
    from .composites import composite_spread

    simulator = posterior.provenance.get("simulator") or {}
    if simulator.get("model") != "mk1" or not set(MODELS["mk1"].theta_names) <= set(posterior.prior.names):
        return {}
    return {"composite_spread": composite_spread(consistent["theta"], posterior.prior,
                                                 int(simulator["N"]))}
