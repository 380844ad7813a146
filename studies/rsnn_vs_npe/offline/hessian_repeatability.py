"""Is the loss Hessian's sloppiest direction an estimate or noise? Both estimates of
automind/rsnn/hessian.py at the study's truth, each twice on independent seeds: |cos| between
the two sloppiest directions (1 = reproducible) and the spectra.

The reduced setting of the README (N = 200, dt 0.5 ms, 1.2 s runs with 0.2 s dropped, the
organoid-like prior of study.toml); the loss on the five differentiable spike features
(rate_mean, rate_std, fano_10ms, fano_100ms, corr_mean), its target and σ from 8 Brian2 runs
at the truth. Writes results/offline_hessian_repeatability_STEP_REPEATS.json.

    python studies/rsnn_vs_npe/offline/hessian_repeatability.py [STEP] [REPEATS] [gauss_newton,surrogate] [DURATION] [RECURRENT_GRAD]

RECURRENT_GRAD (default 1): the loss's gradient factor per synaptic hop (``TorchMK1``); the
surrogate estimate depends on it, the Gauss–Newton one (forward runs) does not.
"""

import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

from automind.features.sets import get_feature_set, simulation_features
from automind.prior import Prior
from automind.rsnn.fit import Loss
from automind.rsnn.hessian import abs_cos, gauss_newton_hessian, loss_hessian
from automind.rsnn.mk1 import TRAINABLE
from automind.simulators import Simulator, SimulatorSpec
from automind.studies.dataset_comparison import study_prior

STUDY = Path(__file__).resolve().parents[1]
FEATURES = ("rate_mean", "rate_std", "fano_10ms", "fano_100ms", "corr_mean")


def main(step: float = 0.1, repeats: int = 4, which=("gauss_newton", "surrogate"),
         duration: float = 1.2, recurrent_grad: float = 1.0) -> dict:
    torch.set_num_threads(1)
    config = tomllib.loads((STUDY / "study.toml").read_text())
    prior = study_prior(config, Prior.load("mk1"))
    truth = np.array([float(config["baseline"][p]) for p in prior.names])
    spec = SimulatorSpec.load("mk1").with_overrides(N=200, dt=5e-4, duration=duration,
                                                    t_analysis_start=0.2)
    fs = get_feature_set("spikes")
    simulator = Simulator(spec)
    rows = [simulation_features(simulator.run(prior.to_simulator(truth), seed=900 + s),
                                ["spikes"], spec.t_analysis_start)["spikes"] for s in range(8)]
    t = fs.transform(np.array(rows, float))
    columns = [fs.names.index(n) for n in FEATURES]
    target = dict(zip(FEATURES, t[:, columns].mean(0).tolist()))
    sigma = dict(zip(FEATURES, t[:, columns].std(0, ddof=1).tolist()))
    loss = Loss(spec, prior, target, sigma, [n for n in prior.names if n in TRAINABLE],
                recurrent_grad=recurrent_grad)
    out = {"setting": {"N": spec.N, "dt": spec.dt, "duration": spec.duration,
                       "t_analysis_start": spec.t_analysis_start, "step": step,
                       "recurrent_grad": recurrent_grad,
                       "features": list(FEATURES), "target": target, "sigma": sigma,
                       "parameters": prior.names}}
    for name, estimate, n in [row for row in (
            ("gauss_newton", lambda seed: gauss_newton_hessian(
                loss.residuals, prior, truth, step=step, repeats=repeats, seed=seed), repeats),
            ("surrogate", lambda seed: loss_hessian(
                loss, prior, truth, step=step, repeats=repeats // 2, seed=seed), repeats // 2))
            if row[0] in which]:
        start = time.perf_counter()
        found = [estimate(seed) for seed in (11, 12)]
        out[name] = {"repeats": n, "seconds": time.perf_counter() - start,
                     **({"resolved_derivatives": [
                         float(np.mean(np.abs(f["jacobian"]) > 2 * f["jacobian_se"]))
                         for f in found]} if name == "gauss_newton" else {}),
                     "abs_cos_between_seed_sets": abs_cos(found[0]["sloppiest"],
                                                          found[1]["sloppiest"]),
                     # the k stiffest directions of the two estimates: cosines of the
                     # principal angles between the subspaces (1: the same subspace)
                     "stiff_subspace_cosines": {k: np.linalg.svd(
                         found[0]["eigenvectors"][:, -k:].T @ found[1]["eigenvectors"][:, -k:],
                         compute_uv=False).round(4).tolist() for k in (1, 2)},
                     "eigenvalues": [f["eigenvalues"].round(4).tolist() for f in found],
                     "sloppiest": [f["sloppiest"].round(4).tolist() for f in found]}
        print(name, json.dumps(out[name]), flush=True)
    suffix = ("" if duration == 1.2 else f"_{duration:g}s") + \
        ("" if recurrent_grad == 1.0 else f"_rg{recurrent_grad:g}")
    path = STUDY / "results" / f"offline_hessian_repeatability_{step:g}_{repeats}{suffix}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    main(float(args[0]) if args else 0.1, int(args[1]) if len(args) > 1 else 4,
         args[2].split(",") if len(args) > 2 else ("gauss_newton", "surrogate"),
         float(args[3]) if len(args) > 3 else 1.2, float(args[4]) if len(args) > 4 else 1.0)
