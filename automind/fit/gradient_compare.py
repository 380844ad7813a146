"""``fit --method gradient --compare POSTERIOR``: where each gradient fit lies under an NPE
posterior (its HPD level), beside its Brian2 distance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import write_json

#: posterior samples behind an HPD level
HPD_SAMPLES = 10_000


def _plain(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def sample_log_q(posterior, x, n: int = HPD_SAMPLES, seed: int = 0) -> np.ndarray:
    """The log densities of ``n`` posterior samples at x: what an HPD level is measured
    against (draw once, reuse for every θ judged under the same posterior)."""
    return posterior.log_prob(posterior.sample(n, x, seed=seed), x)


def hpd_levels(posterior, x, theta, n: int = HPD_SAMPLES, seed: int = 0,
               sample_q: np.ndarray | None = None) -> dict:
    """Per θ row: its HPD level under the posterior at x, the fraction of ``n`` posterior
    samples (or of the given ``sample_q``, ``sample_log_q``) with a higher log density
    (0 = the mode, 0.9 = on the 90 % HPD boundary)."""
    log_q = sample_log_q(posterior, x, n, seed) if sample_q is None else sample_q
    fit_q = posterior.log_prob(np.asarray(theta, float), x)
    level = (log_q[None, :] > fit_q[:, None]).mean(1)
    return {"hpd_level": level, "log_q": fit_q}


def reference_hpd(posterior, x, theta, distance, threshold: float, seed: int = 0,
                  sample_q: np.ndarray | None = None) -> dict:
    """The HPD criterion on configurations known to reproduce the target: the rows of ``theta``
    (e.g. a prior bank) whose ``distance`` to it is within ``threshold``, and their HPD levels.
    Were the posterior as wide as the set of configurations that reproduce the target, about
    90 % of them would lie inside its 90 % HPD region; a fit's HPD level means little without
    this reference."""
    within = np.flatnonzero(np.isfinite(distance) & (np.asarray(distance) <= threshold))
    levels = hpd_levels(posterior, x, np.asarray(theta, float)[within], seed=seed,
                        sample_q=sample_q)["hpd_level"] if len(within) else np.zeros(0)
    return {"n": int(len(distance)), "threshold": threshold, "n_within": int(len(within)),
            "inside_90pct_hpd": int((levels <= 0.9).sum()),
            "share_inside_90pct_hpd": float((levels <= 0.9).mean()) if len(within) else None,
            "rows": within.tolist(), "hpd_levels": levels.round(4).tolist(),
            "distances": np.asarray(distance, float)[within].round(3).tolist()}


def compare(run, posterior_path, fits: dict, found: dict) -> dict:
    """``--compare POSTERIOR``: each fit's HPD level (and its start's) and Brian2 distance,
    and the training bank's reference (compare.json); one draw of posterior samples for all."""
    from ..inference.posterior import load_posterior

    posterior = load_posterior(posterior_path)
    if list(posterior.prior.names) != list(run.prior.names):
        raise UserError(f"--compare {posterior_path}: its parameters {list(posterior.prior.names)} "
                        f"are not the fit's {list(run.prior.names)}")
    x = posterior_x(posterior, run.recording, run.recording_options)
    sample_q = sample_log_q(posterior, x, seed=run.settings.seed)
    theta = np.asarray(fits["theta"], float)
    starts = np.load(run.out / "starts.npy")
    levels = hpd_levels(posterior, x, np.concatenate([theta, starts]), sample_q=sample_q)
    start_levels = levels["hpd_level"][len(theta):]
    rows = [{"start": k, "status": str(fits["status"][k]), "hpd_level": float(levels["hpd_level"][k]),
             "start_hpd_level": float(start_levels[k]),
             "log_q": float(levels["log_q"][k]), "brian2_distance": _plain(found["distance"][k]),
             "accepted": bool(found["accepted"][k])} for k in range(len(fits["theta"]))]
    out = {"posterior": str(posterior_path), "hpd_samples": HPD_SAMPLES, "fits": rows,
           "inside_90pct_hpd": int(sum(r["hpd_level"] <= 0.9 for r in rows)),
           "accepted_and_inside_90pct": int(sum(r["hpd_level"] <= 0.9 and r["accepted"] for r in rows)),
           "reference": training_bank_reference(run, posterior, x, sample_q)}
    write_json(run.out / "compare.json", out, sort_keys=False)
    return out


def training_bank_reference(run, posterior, x, sample_q: np.ndarray | None = None) -> dict:
    """``reference_hpd`` on the posterior's training bank, its runs scored by the rule that
    judged the fits (their feature set, columns, noise model and threshold); a note instead
    where the bank is gone or lacks the fit's features."""
    from ..bank import Bank
    from ..inference.noise import NoiseModel
    from .gradient import score

    folder = posterior.provenance.get("bank")
    if not folder or not (Path(folder) / "bank.json").is_file():
        return {"note": f"the posterior's training bank ({folder or 'not recorded'}) is not here"}
    bank = Bank(folder)
    if run.fs.name not in bank.feature_sets or list(bank.parameter_names) != list(run.prior.names):
        return {"note": f"the training bank {folder} lacks the fit's features ({run.fs.name}) "
                        "or parameters"}
    data, c = bank.arrays(features=run.fs.name), run.columns
    scored = score(run.fs.transform(data["x"].astype(np.float64))[:, c], data["status"],
                   run.t_target[c], NoiseModel.load(run.out / "final").select(c),
                   run.settings.threshold)
    distance = np.where(data["status"] == "ok", scored["distance"], np.nan)
    found = reference_hpd(posterior, x, data["theta"], distance, run.settings.threshold,
                          seed=run.settings.seed, sample_q=sample_q)
    return found | {"bank": str(folder), "rows": data["index"][found["rows"]].tolist()}


def posterior_x(posterior, recording, recording_options: dict) -> np.ndarray:
    """The recording's raw features in the posterior's own feature set."""
    from ..features.sets import get_feature_set
    from ..inference.targets import read_target

    data = read_target(str(recording), **recording_options)
    return get_feature_set(posterior.features["set"]).compute(data)
