"""ABC-MCMC spread of a finished fit's consistent set: RUN OUT GENS [n_members]
Each generation: every member proposes θ' = θ + N(0, (2.38²/d) Σ_set); θ' is kept iff inside
the prior and its re-simulation is consistent (uniform prior → Metropolis acceptance = the
consistency indicator: stationary law = prior restricted to the set)."""
import sys, json
from pathlib import Path
import numpy as np
from automind.inference.noise import NoiseModel
from automind.inference.posterior import load_posterior
from automind.invariance.consistent import find_consistent_set

run, out, gens = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
n = int(sys.argv[4]) if len(sys.argv) > 4 else 400
fitjson = json.loads((run / "fit.json").read_text())
post = load_posterior(run / "rounds" / f"posterior{fitjson['settings']['rounds']}")
prior = post.prior
x_o = np.array([np.nan if v is None else v for v in fitjson["target"]["x"]])
last = sorted((run / "refine").glob("g*"), key=lambda p: int(p.name[1:]))[-1]
sigma = NoiseModel.load(last)  # σ, and the correlation where the run has one
C = np.load(last / "consistent.npz")["theta"]
rng = np.random.default_rng(7)
state = C[rng.permutation(np.resize(np.arange(len(C)), n))]
truth = fitjson.get("truth")
truth = None if truth is None else np.array(truth)
d = C.shape[1]
for g in range(1, gens + 1):
    cov = np.cov(prior.standardise(state), rowvar=False) * 2.38 ** 2 / d
    prop_u = prior.standardise(state) + rng.multivariate_normal(np.zeros(d), cov, size=n)
    prop = prior.destandardise(prop_u)
    inside = prior.inside(prop)
    prop = np.where(inside[:, None], prop, state)  # outside the prior: re-simulate the old one
    found = find_consistent_set(post, x_o, out / f"s{g}", n, samples=prop, sigma=sigma,
                                seed=5000 + g, workers=1, progress=False)
    acc = np.zeros(n, bool)
    z = np.load(out / f"s{g}" / "consistent.npz")
    acc[z["index"]] = True
    moved = acc & inside
    state = np.where(moved[:, None], prop, state)
    row = {"gen": g, "inside": float(inside.mean()), "accepted": float(moved.mean()),
           "yield_of_proposals": found["yield"],
           "sd_over_prior_median": float(np.median(state.std(0) / ((prior.high - prior.low) / 12 ** .5)))}
    if truth is not None:
        q5, q95 = np.quantile(state, [0.05, 0.95], axis=0)
        row["truth_in_5_95"] = int(((truth > q5) & (truth < q95)).sum())
    np.save(out / "state.npy", state)
    print(json.dumps(row), flush=True)
