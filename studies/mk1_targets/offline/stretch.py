"""ABC-MCMC with the affine-invariant stretch move (Goodman & Weare 2010) from a finished
fit's consistent set: RUN OUT GENS [n]. Target: prior restricted to the consistent set (the
consistency indicator of one re-simulation), so a proposal θ' = θ_k + Z (θ_j − θ_k) is kept
iff it is inside the prior, its re-simulation is consistent and a uniform < Z^(d-1)."""
import json, sys
from pathlib import Path
import numpy as np
from automind.inference.noise import NoiseModel
from automind.inference.posterior import load_posterior
from automind.invariance.consistent import find_consistent_set, load_consistent_set

run, out, gens = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
n = int(sys.argv[4]) if len(sys.argv) > 4 else 400
A = 2.0
fj = json.loads((run / "fit.json").read_text())
post = load_posterior(run / "rounds" / f"posterior{fj['settings']['rounds']}")
prior = post.prior
x_o = np.array([np.nan if v is None else v for v in fj["target"]["x"]])
truth = np.array(fj["truth"])
last = sorted((run / "refine").glob("g*"), key=lambda p: int(p.name[1:]))[-1]
sigma = NoiseModel.load(run / "final")  # σ, and the correlation where the run has one
C = load_consistent_set(last)["theta"]
rng = np.random.default_rng(11)
state = prior.standardise(C[rng.permutation(np.resize(np.arange(len(C)), n))])
state += 1e-3 * rng.standard_normal(state.shape)  # duplicates must differ for the stretch
lo, hi = prior.standardise(prior.low), prior.standardise(prior.high)
state = np.clip(state, lo + 1e-6, hi - 1e-6)
d = state.shape[1]
for g in range(1, gens + 1):
    moved, sims_g = np.zeros(n, bool), 0
    halves = [np.arange(0, n // 2), np.arange(n // 2, n)]
    for h, (mine, other) in enumerate((halves, halves[::-1])):
        z = ((A - 1) * rng.uniform(size=len(mine)) + 1) ** 2 / A
        partner = state[rng.choice(other, len(mine))]
        prop_u = partner + z[:, None] * (state[mine] - partner)
        prop = prior.destandardise(prop_u)
        inside = prior.inside(prop)
        lucky = rng.uniform(size=len(mine)) < z ** (d - 1)
        try_ = inside & lucky
        tried = np.flatnonzero(try_)
        sims_g += len(tried)
        if len(tried) == 0:
            continue
        folder = out / f"g{g}h{h}"
        find_consistent_set(post, x_o, folder, len(tried), samples=prop[tried], sigma=sigma,
                            seed=9000 + 10 * g + h, workers=1, progress=False)
        keep = np.zeros(len(mine), bool); keep[tried[load_consistent_set(folder)["index"]]] = True
        state[mine[keep]] = prop_u[keep]; moved[mine[keep]] = True
    theta = prior.destandardise(state)
    q5, q95 = np.quantile(theta, [0.05, 0.95], axis=0)
    print(json.dumps({"gen": g, "moved": float(moved.mean()), "simulated": int(sims_g),
                      "sd_over_prior_median": float(np.median(state.std(0))),
                      "truth_in_5_95": int(((truth > q5) & (truth < q95)).sum())}), flush=True)
    np.save(out / "state.npy", theta)
