"""Outward exploration of a finished fit's consistent set: RUN OUT GENS [n]. Each generation
proposes n points θ_i + z (θ_i − θ_j), z ~ U(0.2, 1), for random pairs of the archive of
consistent configurations found so far (moving away from another member), re-simulates those
inside the prior and adds the consistent ones to the archive. Not a sampler: it measures how
far the consistent set extends beyond the refined ensemble. A fifth argument ``reflect``
mirrors proposals into the prior box (as automind/fit/explore.py does); without it, proposals
outside the box are discarded. RUN OUT GENS N [reflect]"""
import json, sys
from pathlib import Path
import numpy as np
from automind.inference.noise import NoiseModel
from automind.inference.posterior import load_posterior
from automind.invariance.consistent import find_consistent_set, load_consistent_set

run, out, gens = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
n = int(sys.argv[4]) if len(sys.argv) > 4 else 400
REFLECT = len(sys.argv) > 5 and sys.argv[5] == "reflect"
fj = json.loads((run / "fit.json").read_text())
post = load_posterior(run / "rounds" / f"posterior{fj['settings']['rounds']}")
prior = post.prior
x_o = np.array([np.nan if v is None else v for v in fj["target"]["x"]])
truth = np.array(fj["truth"])
last = sorted((run / "refine").glob("g*"), key=lambda p: int(p.name[1:]))[-1]
sigma = NoiseModel.load(run / "final")  # σ, and the correlation where the run has one
archive = prior.standardise(load_consistent_set(last)["theta"])
rng = np.random.default_rng(21)
for g in range(1, gens + 1):
    i, j = rng.integers(len(archive), size=(2, n))
    z = rng.uniform(0.2, 1.0, size=n)
    prop_u = archive[i] + z[:, None] * (archive[i] - archive[j])
    if REFLECT:  # mirror at the prior box instead of discarding
        lo, hi = prior.standardise(prior.low), prior.standardise(prior.high)
        prop_u = np.where(prop_u < lo, 2 * lo - prop_u, prop_u)
        prop_u = np.where(prop_u > hi, 2 * hi - prop_u, prop_u)
        prop_u = np.clip(prop_u, lo + 1e-6, hi - 1e-6)
    prop = prior.destandardise(prop_u)
    inside = np.flatnonzero(prior.inside(prop))
    find_consistent_set(post, x_o, out / f"g{g}", len(inside), samples=prop[inside], sigma=sigma,
                        seed=7000 + g, workers=1, progress=False)
    new = prior.standardise(load_consistent_set(out / f"g{g}")["theta"])
    archive = np.concatenate([archive, new])
    theta = prior.destandardise(archive)
    q5, q95 = np.quantile(theta, [0.05, 0.95], axis=0)
    print(json.dumps({"gen": g, "simulated": int(len(inside)), "new_consistent": int(len(new)),
                      "archive": int(len(archive)),
                      "sd_over_prior_median": float(np.median(archive.std(0))),
                      "truth_in_5_95": int(((truth > q5) & (truth < q95)).sum()),
                      "truth_in_range": int(((truth >= theta.min(0)) & (truth <= theta.max(0))).sum())}),
          flush=True)
