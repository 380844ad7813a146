"""Comparing the consistent sets (or posteriors) of several targets, e.g. organoid ages or
brain areas: which parameters shift and separate them, how much their marginals overlap,
whether their invariant subspaces differ (principal angles), and whether their local
geometry differs (local dimensionality, mean local sloppy subspaces). Runs are folders of
`automind invariance`; posteriors are compared by sampling them for each target."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np

from ..io import write_json
from ..errors import UserError
from .consistent import load_consistent_set
from .geometry import global_geometry, overlap_coefficients, principal_angles


def local_summary(posterior, x, u: np.ndarray, k: int, n_local: int = 50, seed: int = 0) -> dict:
    """Local geometry of a set at up to ``n_local`` of its configurations: the local
    dimensionalities and the mean local sloppy subspace (top-k eigenvectors of the average
    projector onto each configuration's k sloppiest Hessian directions)."""
    from .analysis import local_geometry

    chosen = np.random.default_rng(seed).permutation(len(u))[:n_local]
    local = local_geometry(posterior, x, u[chosen], k)
    projector = np.einsum("nik,njk->ij", local["sloppy"], local["sloppy"]) / len(chosen)
    _, vectors = np.linalg.eigh(projector)
    return {"local_dimensionality": local["local_dimensionality"], "sloppy_subspace": vectors[:, -k:]}


def compare_sets(sets: dict[str, np.ndarray], names: list[str], k: int | None = None,
                 local: dict | None = None) -> dict:
    """Pairwise comparison of sets given as standardised u arrays. ``local`` ({label:
    callable(u, k) -> local_summary}) adds the local-geometry comparison."""
    from scipy.stats import mannwhitneyu

    geometries = {label: global_geometry(u) for label, u in sets.items()}
    if k is None:
        k = max(1, int(round(np.mean([g["participation_ratio"] for g in geometries.values()]))))
    k = min(k, len(names) - 1) if len(names) > 1 else 1
    summaries = {label: fn(sets[label], k) for label, fn in (local or {}).items()}
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
        if a in summaries and b in summaries:
            da, db = (summaries[l]["local_dimensionality"] for l in (a, b))
            da, db = da[np.isfinite(da)], db[np.isfinite(db)]
            pairs[f"{a} vs {b}"]["local"] = {
                "local_dimensionality_median": [float(np.median(da)), float(np.median(db))],
                "local_dimensionality_p_value": float(mannwhitneyu(da, db).pvalue),
                "sloppy_subspace_angles_deg": principal_angles(
                    summaries[a]["sloppy_subspace"], summaries[b]["sloppy_subspace"]).tolist()}
    report = {"subspace_dimension": k, "pairs": pairs,
              "participation_ratio": {label: g["participation_ratio"] for label, g in geometries.items()}}
    if summaries:
        report["local_dimensionality"] = {label: s["local_dimensionality"].tolist()
                                          for label, s in summaries.items()}
    return report


def _finish(report: dict, sets: dict, names: list[str], out: str | Path, sources: dict) -> dict:
    from .figures import plot_local_comparison, plot_marginals

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report["figures"] = [str(plot_marginals(sets, names, report, out / "compare_marginals.png"))]
    if "local_dimensionality" in report:
        report["figures"].append(str(plot_local_comparison(report, out / "compare_local.png")))
    report["sources"] = sources
    report["report"] = str(_html_report(report, out))
    write_json(out / "compare.json", report)
    return report


def _html_report(report: dict, out: Path) -> Path:
    """``out/index.html``: one table row per pair and the figures."""
    from ..report import Section, write_report

    header = ["pair", "separating parameters", "largest shifts (prior sd)", "smallest overlap",
              "principal angles (°)", "participation ratios"]
    local = any("local" in pair for pair in report["pairs"].values())
    if local:
        header += ["local dimensionality (medians, p)", "local sloppy subspaces (max °)"]
    rows = []
    for name, pair in report["pairs"].items():
        shifts = sorted(pair["shift_prior_sd"].items(), key=lambda kv: -abs(kv[1]))[:3]
        overlap = min(pair["overlap"].items(), key=lambda kv: kv[1])
        row = [name, ", ".join(pair["separating_parameters"]) or "none",
               ", ".join(f"{k} {v:+.2f}" for k, v in shifts), f"{overlap[0]} {overlap[1]:.2f}",
               ", ".join(f"{a:.0f}" for a in pair["principal_angles_deg"]),
               " / ".join(f"{v:.2f}" for v in pair["participation_ratio"])]
        if local:
            lp = pair.get("local") or {}
            row += [f"{lp['local_dimensionality_median'][0]:.2f} / "
                    f"{lp['local_dimensionality_median'][1]:.2f}, p = "
                    f"{lp['local_dimensionality_p_value']:.2g}" if lp else "",
                    f"{max(lp['sloppy_subspace_angles_deg']):.0f}" if lp else ""]
        rows.append(row)
    captions = {"compare_marginals.png": "marginals of the most separating parameters",
                "compare_local.png": "local dimensionality per dataset (boxes) and the global "
                                     "participation ratio (diamonds)"}
    figures = [(Path(f), captions.get(Path(f).name, "")) for f in report["figures"]]
    compared = "consistent sets" if report.get("compared") == "consistent" else "posterior samples"
    sections = [Section("Pairs", [f"Compared: {compared}, in prior-standardised coordinates; "
                                  f"invariant subspaces of dimension {report['subspace_dimension']}."],
                        table=(header, rows)),
                Section("Figures", figures=figures)]
    return write_report(out, "automind compare", sections)


def dataset_labels(labels, defaults) -> list[str]:
    labels = list(labels) if labels else [str(d) for d in defaults]
    if len(labels) != len(defaults):
        raise UserError(f"{len(labels)} labels for {len(defaults)} datasets")
    if len(set(labels)) != len(labels):
        raise UserError(f"datasets need distinct names; got {labels} (pass --labels)")
    return labels


def compare_runs(runs: list[str | Path], out: str | Path, labels: list[str] | None = None,
                 use: str = "consistent", n_local: int = 50) -> dict:
    """Compare `automind invariance` folders (their consistent sets, or with use="posterior"
    all their posterior samples); writes compare.json and figures into ``out``. The local
    comparison needs each run's posterior (recorded in its run.json)."""
    from ..inference import load_posterior

    if len(runs) < 2:
        raise UserError("compare needs at least two runs")
    if use not in ("consistent", "posterior"):
        raise UserError(f"use must be 'consistent' or 'posterior', not {use!r}")
    labels = dataset_labels(labels, [Path(r).name for r in runs])
    loaded = {label: load_consistent_set(run) for label, run in zip(labels, runs)}
    names = [str(n) for n in next(iter(loaded.values()))["names"]]
    for label, data in loaded.items():
        if [str(n) for n in data["names"]] != names:
            raise UserError(f"run {label} has parameters {list(data['names'])}, not {names}")
    sets, local = {}, {}
    for label, run in zip(labels, runs):
        settings = _run_settings(run)
        posterior = load_posterior(settings["posterior"]) if settings.get("posterior") else None
        if use == "posterior":
            if posterior is None or not (Path(run) / "samples.npy").is_file():
                raise UserError(f"run {run} has no posterior samples and posterior to compare")
            sets[label] = posterior.prior.standardise(np.load(Path(run) / "samples.npy"))
        else:
            sets[label] = np.asarray(loaded[label]["u"], float)
        if posterior is not None and n_local > 0:
            local[label] = _local_fn(posterior, settings["x"], n_local)
    report = compare_sets(sets, names, local=local if len(local) == len(sets) else None)
    report["compared"] = use
    return _finish(report, sets, names, out, dict(zip(labels, map(str, runs))))


def compare_posteriors(posterior, targets: dict[str, np.ndarray], out: str | Path, n: int = 2000,
                       n_local: int = 50, seed: int = 0, samples: dict | None = None) -> dict:
    """Compare one posterior's samples for several targets ({label: raw features}) — no
    re-simulation: per-parameter shifts, overlaps, subspace angles, local geometry.
    ``samples`` ({label: θ}) passes samples already drawn instead of drawing n per target."""
    if len(targets) < 2:
        raise UserError("compare needs at least two targets")
    prior = posterior.prior
    samples = samples or {label: posterior.sample(n, x, seed=seed) for label, x in targets.items()}
    sets = {label: prior.standardise(samples[label]) for label in targets}
    local = {label: _local_fn(posterior, x, n_local, seed) for label, x in targets.items()} \
        if n_local > 0 else None
    report = compare_sets(sets, prior.names, local=local)
    report["compared"] = "posterior"
    return _finish(report, sets, prior.names, out, {label: "target" for label in targets})


def _local_fn(posterior, x, n_local: int, seed: int = 0):
    return lambda u, k: local_summary(posterior, x, u, k, n_local, seed)


def _run_settings(run) -> dict:
    path = Path(run) / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}
