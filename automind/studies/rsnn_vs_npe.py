"""Gradient fits vs an NPE posterior (issue 14 item 6, spec rsnn.md §5b): on the organoid-like
local prior, a target simulated in Brian2 at the baseline is fitted (a) by NPE on a prior bank,
whose samples re-simulated in Brian2 give the consistent set, and (b) by ``automind fit
--method gradient`` from K prior starts (and from posterior samples, ``posterior_starts``;
from screened prior draws, ``screen``; and by derivative-free Gauss–Newton steps alone from the
screened draws and the posterior samples, ``gauss_newton``).
Per gradient fit: its HPD level under the posterior (and its start's), its Brian2 distance,
and |cos| of the angle between the loss Hessian's sloppiest direction and the consistent
set's first principal component; the reference for the HPD levels (the prior bank's runs
that reproduce the target, and how many lie inside the 90 % HPD; and the posterior's own
calibration where the target is: coverage on the held-out runs nearest it, and the truth's HPD
level); and the cost of each route
as computed (the bank's summed run times, the fits' and Hessians' recorded times: a resumed
run reports what its results cost, not the resumption).

Config: ``[prior]``/``[baseline]`` as ``dataset_comparison`` (a local prior), ``[network]``,
``[npe]`` (bank n, consistent-set samples, ensemble size, held-out runs and the cases nearest
the target among them), ``[gradient]`` (starts, steps, lr, features,
Hessian estimate, step and repeats, posterior starts and steps, screened draws and steps,
Gauss–Newton steps),
``[quick]`` overrides.
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..progress import sayer

#: the loss Hessian's estimates (rsnn/hessian.py): forward runs' Jacobian, or surrogate gradients
HESSIANS = ("gauss_newton", "surrogate")


#: the config's whole-number settings and their least values
COUNTS = {"bank": 1, "consistent": 1, "ensemble": 1, "held_out": 0, "near_cases": 10,
          "starts": 1, "steps": 1, "hessian_fits": 0,
          "hessian_repeats": 1, "posterior_starts": 0, "posterior_steps": 1, "screen": 0,
          "screened_steps": 1, "gauss_newton": 0, "gauss_newton_seeds": 1}


def _settings(config: dict, quick: bool) -> dict:
    s = dict(config["network"]) | dict(config["npe"]) | dict(config["gradient"])
    s |= dict(config.get("quick", {})) if quick else {}
    for key, least in COUNTS.items():
        value = s.get(key, least)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"rsnn_vs_npe: {key} must be a whole number >= {least}, "
                            f"got {value!r}")
    if 0 < s.get("screen", 0) < s["starts"]:
        raise UserError(f"rsnn_vs_npe: screen ({s['screen']} draws) must be 0 or at least "
                        f"starts ({s['starts']})")
    return s


def _say(progress: bool, text: str) -> None:
    sayer(progress, "rsnn_vs_npe: ")(text)


def target_recording(spec, prior, truth, seed: int, path: Path) -> Path:
    """The target: one Brian2 run at the truth, written as NWB (analysis window only)."""
    from ..features.spikedata import SpikeData
    from ..recordings.write import write_nwb
    from ..simulators import Simulator

    if path.is_file():
        return path
    result = Simulator(spec).run(prior.to_simulator(truth), seed=seed)
    if result.status != "ok":
        raise UserError(f"rsnn_vs_npe: the target at the baseline is {result.status} at N = {spec.N}")
    return write_nwb(SpikeData.from_simulation(result).window(spec.t_analysis_start), path)


def run(config: dict, out: Path, workers: int, quick: bool, progress: bool) -> dict:
    from ..features.sets import get_feature_set
    from ..fit.baseline import prior_bank_posterior
    from ..fit.target import target_of
    from ..invariance.consistent import find_consistent_set
    from ..invariance.geometry import global_geometry
    from ..prior import Prior
    from ..simulators import SimulatorSpec
    from .dataset_comparison import study_prior

    s, seed, out = _settings(config, quick), int(config.get("seed", 0)), Path(out)
    method = s.get("hessian", "gauss_newton")
    if method not in HESSIANS:
        raise UserError(f"rsnn_vs_npe: hessian must be one of {list(HESSIANS)}, got {method!r}")
    features = s["features"]
    prior = study_prior(config, Prior.load("mk1"))
    truth = np.array([float(config["baseline"][p]) for p in prior.names])
    spec = SimulatorSpec.load("mk1").with_overrides(
        N=s["N"], duration=s["duration"], t_analysis_start=s["t_analysis_start"],
        **({"dt": s["dt"]} if "dt" in s else {}))
    recording = target_recording(spec, prior, truth, seed + 7, out / "target.nwb")
    x = target_of(recording, features)[0]

    _say(progress, f"NPE: a prior bank of {s['bank']} Brian2 runs, then training")
    from ..bank import Bank, extend

    extend(out / "bank", spec, prior, s["bank"], seed, workers=workers, chunk_size=25,
           features=[features], progress=progress)
    t_bank = Bank(out / "bank").info()["wall_seconds"]  # its runs' summed times, as they ran
    t0 = time.perf_counter()
    posterior = prior_bank_posterior(out / "bank", spec, prior, features, s["bank"], seed, x,
                                     workers=workers, progress=progress,
                                     ensemble=s.get("ensemble", 1))
    t_train = time.perf_counter() - t0
    posterior.save(out / "posterior")
    calibration = posterior_calibration(posterior, spec, prior, truth, x, s, seed, out, workers,
                                        features, progress)
    found = find_consistent_set(posterior, x, out / "consistent", s["consistent"], truth=truth,
                                seed=seed, workers=workers, progress=progress)
    consistent = np.load(out / "consistent" / "consistent.npz")
    u = consistent["u"]
    pca_source = "consistent set"
    if len(u) < max(10, 2 * len(prior.names)):  # too few for a PCA: the posterior samples'
        pca_source = f"posterior samples ({len(u)} consistent configurations are too few)"
        u = prior.standardise(np.load(out / "consistent" / "samples.npy"))
    pc1 = global_geometry(u)["components"][:, 0]

    t_x = get_feature_set(features).transform(x[None])[0]
    arm = partial(_gradient_arm, recording, spec, prior, truth, s, seed, out, workers, progress,
                  features, t_x, pc1)
    prior_arm = arm("gradient", s["starts"], s["steps"], None)
    from_posterior = arm("gradient_from_posterior", s.get("posterior_starts", 0),
                         s.get("posterior_steps", s["steps"]), out / "posterior") \
        if s.get("posterior_starts", 0) else None
    screened = arm("gradient_screened", s["starts"], s.get("screened_steps", s["steps"]), None,
                   screen=s["screen"]) if s.get("screen", 0) else None
    # derivative-free Gauss–Newton steps alone, from the screened (or prior) starts and from
    # the posterior samples
    gauss_newton = arm("gradient_gauss_newton", s["starts"], 0, None, screen=s.get("screen", 0),
                       gauss_newton=s["gauss_newton"]) if s.get("gauss_newton", 0) else None
    posterior_gauss_newton = arm("gradient_posterior_gauss_newton", s["posterior_starts"], 0,
                                 out / "posterior", gauss_newton=s["gauss_newton"]) \
        if s.get("gauss_newton", 0) and s.get("posterior_starts", 0) else None
    rows = prior_arm.pop("fits")
    reference = prior_arm.pop("reference")
    for other in (from_posterior, screened, gauss_newton, posterior_gauss_newton):  # same bank
        if other:
            other.pop("reference")
    seconds = {"bank": t_bank, "training": t_train, "gradient_fits": prior_arm.pop("fit_seconds"),
               "hessians": prior_arm.pop("hessian_seconds")}
    return {"truth": dict(zip(prior.names, truth.tolist())), "fits": rows,
            "n_fits": len(rows)} | prior_arm | {
            "pc1_from": pca_source, "hessian": method,
            "consistent_yield": found["yield"], "n_consistent": found["n_consistent"],
            # the HPD criterion on the prior bank's runs that reproduce the target
            "bank_reference": reference,
            "posterior_calibration": calibration,
            "from_posterior": from_posterior,
            "screened": screened,
            "gauss_newton": gauss_newton,
            "gauss_newton_from_posterior": posterior_gauss_newton,
            # per arm: >= 8 of 10 accepted and inside the 90 % HPD; median |cos| >= 0.8
            "targets": _targets({"prior": prior_arm | {"fits": rows},
                                 "from_posterior": from_posterior, "screened": screened,
                                 "gauss_newton": gauss_newton,
                                 "gauss_newton_from_posterior": posterior_gauss_newton}),
            "seconds": seconds,
            "settings": s}


def _targets(arms: dict) -> dict:
    """The issue's two targets, judged for every arm that ran."""
    ran = {name: arm for name, arm in arms.items() if arm}
    return {"8_of_10_accepted_inside_hpd": {
                name: bool(arm["accepted_and_inside_90pct"] >= 0.8 * len(arm["fits"]))
                for name, arm in ran.items()},
            "abs_cos_at_least_0.8": {
                name: bool(arm["median_abs_cos"] is not None and arm["median_abs_cos"] >= 0.8)
                for name, arm in ran.items()}}


def posterior_calibration(posterior, spec, prior, truth, x, s: dict, seed: int, out: Path,
                          workers: int, features: str, progress: bool) -> dict:
    """Is the posterior calibrated where the target is? Its coverage on the ``near_cases`` runs
    of a held-out prior bank (``held_out`` runs, seed + 1) whose features lie nearest the
    target's (``diagnose --near``), and the truth's HPD level at the target. An over-confident
    posterior excludes configurations that reproduce the target, and the fits' HPD levels
    then say more about it than about them."""
    from ..bank import extend
    from ..fit.gradient_compare import hpd_levels
    from ..inference.runs import diagnose_on_bank

    truth_level = float(hpd_levels(posterior, x, truth[None], seed=seed)["hpd_level"][0])
    if not s.get("held_out", 0):
        return {"truth_hpd_level": truth_level}
    _say(progress, f"posterior calibration: {s['held_out']} held-out Brian2 runs")
    extend(out / "held_out", spec, prior, s["held_out"], seed + 1, workers=workers,
           chunk_size=25, features=[features], progress=progress)
    report = diagnose_on_bank(posterior, out / "held_out", s["near_cases"], seed=seed,
                              figure=out / "coverage_near.png", near=x)
    latent, marginal = report["latent_coverage"], report["marginal_coverage"]
    return {"truth_hpd_level": truth_level, "held_out": s["held_out"]} | {
        k: report["near"][k] for k in ("cases", "of", "distance_median", "distance_max")} | {
        "coverage_max_abs_error": report["coverage_max_abs_error"],
        "coverage_noise_95": report["coverage_noise_95"],
        # the share of the cases' truths inside their posterior's 90 % regions (0.9 if exact)
        "latent_inside_90pct_hpd": None if latent is None else latent["empirical"][90],
        "marginal_inside_90pct_interval": {n: c[90] for n, c in marginal["empirical"].items()},
        "hpd_inside_90pct": report["hpd_coverage"]["empirical"][90]}


def _gradient_arm(recording, spec, prior, truth, s: dict, seed: int, out: Path, workers: int,
                  progress: bool, features: str, t_x, pc1, folder: str, starts: int,
                  steps: int, starts_from, screen: int = 0, gauss_newton: int = 0) -> dict:
    """K gradient fits (prior starts, or posterior samples with ``starts_from``; the K of
    ``screen`` draws with the lowest d² on one forward run each; then ``gauss_newton``
    derivative-free steps) into out/folder, compared with the posterior, and the loss Hessian at
    the first ``hessian_fits``: per fit its row (HPD level of the start and of the fit, Brian2
    distance, |cos|, flat-subspace share; with ``gauss_newton`` also from the refinement's own
    JᵀJ) and the counts."""
    import torch

    from ..features.sets import get_feature_set
    from ..fit.gradient import fit_gradient
    from ..io import save_npz
    from ..rsnn.fit import Loss
    from ..rsnn.hessian import abs_cos, flat_subspace_share, gauss_newton_hessian, loss_hessian
    from ..rsnn.mk1 import TRAINABLE

    _say(progress, f"{folder}: {starts} starts x {steps} steps")
    fit_features = tuple(n for n in s.get("fit_features", ()) if n) or None
    summary = fit_gradient(recording, out / folder, simulator=spec, prior=prior, truth=truth,
                           compare_with=out / "posterior", workers=workers, progress=progress,
                           features=features, starts=starts, steps=steps, lr=s["lr"],
                           seed=seed, fit_features=fit_features, dtype=s.get("dtype", "float64"),
                           memory_limit_gib=s.get("memory_limit_gib", 4.0),
                           recurrent_grad=s.get("recurrent_grad", 1.0),
                           starts_from=None if starts_from is None else str(starts_from),
                           screen=screen, gauss_newton=gauss_newton,
                           gauss_newton_seeds=s.get("gauss_newton_seeds", 1))
    rows = summary["compare"]["fits"]
    sigma = json.loads((out / folder / "final" / "noise.json").read_text())["sigma"]
    noise = np.array([np.inf if v is None else v for v in sigma])
    fs = get_feature_set(features)
    use = [n for n in fs.names if n in summary["fitted_features"]]
    loss = Loss(spec, prior, {n: float(t_x[fs.names.index(n)]) for n in use},
                {n: float(noise[fs.names.index(n)]) for n in use},
                [n for n in prior.names if n in TRAINABLE],
                dtype=getattr(torch, s.get("dtype", "float64")),
                memory_limit=s.get("memory_limit_gib", 4.0) * 2 ** 30,
                recurrent_grad=s.get("recurrent_grad", 1.0))
    method = s.get("hessian", "gauss_newton")
    hessian = partial(gauss_newton_hessian if method == "gauss_newton" else loss_hessian,
                      loss.residuals if method == "gauss_newton" else loss, prior)
    torch.set_num_threads(1)
    hessian_seconds = 0.0  # as computed (kept with each Hessian), not this resumed run's
    # each fit's Hessian is kept (a re-run that adds the posterior starts does not redo them)
    cache = out / folder / f"hessian_{method}_{s['hessian_step']:g}_{s['hessian_repeats']}"
    cache.mkdir(exist_ok=True)
    for row, fit in zip(rows, summary["fits"]):
        row["abs_cos"] = row["pc1_in_flat_subspace"] = None
        if fit["status"] != "ok" or row["start"] >= s["hessian_fits"]:
            continue
        theta = np.array([fit["theta"][p] for p in prior.names])
        file = cache / f"start_{row['start']:03d}.npz"
        h = dict(np.load(file)) if file.is_file() else {}
        if not np.array_equal(h.get("theta"), theta):
            t_h = time.perf_counter()
            h = hessian(theta, step=s["hessian_step"], repeats=s["hessian_repeats"],
                        seed=seed + 11 + row["start"])
            h |= {"theta": theta, "seconds": time.perf_counter() - t_h}
            save_npz(file, **h)
        # None where a Hessian was kept without its time (before session 28's re-run)
        hessian_seconds = (None if hessian_seconds is None or "seconds" not in h
                           else hessian_seconds + float(h["seconds"]))
        row["abs_cos"] = abs_cos(h["sloppiest"], pc1)
        flat = flat_subspace_share(h["eigenvalues"], h["eigenvectors"], pc1)
        row["pc1_in_flat_subspace"] = flat["share"]
        row["stiff_dimensions"] = flat["stiff_dimensions"]
        row["hessian_eigenvalues"] = h["eigenvalues"].round(4).tolist()
        if "jacobian_se" in h:  # the share of the residuals' derivatives the seeds resolve
            row["hessian_resolved"] = float(np.mean(np.abs(h["jacobian"]) > 2 * h["jacobian_se"]))
    cos = [r["abs_cos"] for r in rows if r["abs_cos"] is not None]
    found = {"fits": rows, "reference": summary["compare"]["reference"],
               "accepted": int(sum(r["accepted"] for r in rows)),
               "inside_90pct_hpd": int(sum(r["hpd_level"] <= 0.9 for r in rows)),
               "accepted_and_inside_90pct": int(sum(r["accepted"] and r["hpd_level"] <= 0.9
                                                    for r in rows)),
               "median_abs_cos": float(np.median(cos)) if cos else None,
               # the well-posed comparison where several directions are flat (README)
               "median_pc1_in_flat_subspace": float(np.median(
                   [r["pc1_in_flat_subspace"] for r in rows if r["abs_cos"] is not None]))
               if cos else None,
               "fit_seconds": summary["fit_seconds"],
               "hessian_seconds": hessian_seconds}
    if gauss_newton:
        cos_gn = _gauss_newton_cos(out / folder, rows, pc1)
        found["median_abs_cos_gauss_newton"] = float(np.median(cos_gn)) if cos_gn else None
    return found


def _gauss_newton_cos(run: Path, rows: list, pc1) -> list[float]:
    """Per ok row, |cos| of the sloppiest direction of the refinement's own JᵀJ (averaged over
    the iterates that make the fit; prior-standardised, as PC1) with PC1, and PC1's share in
    its flat subspace; returns the |cos| values."""
    from ..rsnn.hessian import abs_cos, flat_subspace_share, spectrum

    with np.load(run / "gauss_newton" / "refined.npz") as data:
        jtj, status = data["jtj"], data["status"].astype(str)
    found = []
    for row in rows:
        k = row["start"]
        row["abs_cos_gauss_newton"] = row["pc1_in_flat_subspace_gauss_newton"] = None
        if status[k] != "ok":
            continue
        found_k = spectrum(jtj[k])  # across seeds JᵀJ may have eigenvalues of both signs
        values, vectors = found_k["eigenvalues"], found_k["eigenvectors"]
        row["abs_cos_gauss_newton"] = abs_cos(found_k["sloppiest"], pc1)
        row["pc1_in_flat_subspace_gauss_newton"] = flat_subspace_share(values, vectors,
                                                                       pc1)["share"]
        found.append(row["abs_cos_gauss_newton"])
    return found
