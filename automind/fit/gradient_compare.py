"""``fit --method gradient --compare POSTERIOR``: where each gradient fit lies under an NPE
posterior (its HPD level), beside its Brian2 distance."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..io import write_json

#: posterior samples behind an HPD level
HPD_SAMPLES = 10_000


def _plain(value) -> float | None:
    return float(value) if np.isfinite(value) else None


def hpd_levels(posterior, x, theta, n: int = HPD_SAMPLES, seed: int = 0) -> dict:
    """Per θ row: its HPD level under the posterior at x, the fraction of ``n`` posterior
    samples with a higher log density (0 = the mode, 0.9 = on the 90 % HPD boundary)."""
    samples = posterior.sample(n, x, seed=seed)
    log_q = posterior.log_prob(samples, x)
    fit_q = posterior.log_prob(np.asarray(theta, float), x)
    level = (log_q[None, :] > fit_q[:, None]).mean(1)
    return {"hpd_level": level, "log_q": fit_q}


def compare(run, posterior_path, fits: dict, found: dict) -> dict:
    """``--compare POSTERIOR``: each fit's HPD level and Brian2 distance (compare.json)."""
    from ..inference.posterior import load_posterior

    posterior = load_posterior(posterior_path)
    if list(posterior.prior.names) != list(run.prior.names):
        raise UserError(f"--compare {posterior_path}: its parameters {list(posterior.prior.names)} "
                        f"are not the fit's {list(run.prior.names)}")
    x = posterior_x(posterior, run.recording, run.recording_options)
    levels = hpd_levels(posterior, x, fits["theta"], seed=run.settings.seed)
    rows = [{"start": k, "status": str(fits["status"][k]), "hpd_level": float(levels["hpd_level"][k]),
             "log_q": float(levels["log_q"][k]), "brian2_distance": _plain(found["distance"][k]),
             "accepted": bool(found["accepted"][k])} for k in range(len(fits["theta"]))]
    out = {"posterior": str(posterior_path), "hpd_samples": HPD_SAMPLES, "fits": rows,
           "inside_90pct_hpd": int(sum(r["hpd_level"] <= 0.9 for r in rows)),
           "accepted_and_inside_90pct": int(sum(r["hpd_level"] <= 0.9 and r["accepted"] for r in rows))}
    write_json(run.out / "compare.json", out, sort_keys=False)
    return out


def posterior_x(posterior, recording, recording_options: dict) -> np.ndarray:
    """The recording's raw features in the posterior's own feature set."""
    from ..features.sets import get_feature_set
    from ..inference.targets import read_target

    data = read_target(str(recording), **recording_options)
    return get_feature_set(posterior.features["set"]).compute(data)
