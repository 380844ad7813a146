"""Offline A/B of refinement variants from a finished fit's final folder: RUN OUT VARIANT GENS
variants: jitter (invalid members restart from a valid one plus a jitter from the valid
members' covariance), perturbed (jitter + perturbed observations: each member aims at the
target plus N(0, 1) noise sd per feature, as in stochastic EKI)."""
import json, sys
from pathlib import Path
import numpy as np
import automind.fit.refine as R
from automind.inference.posterior import load_posterior

run, out, variant, gens = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
JITTER = 0.25  # of the valid members' covariance (sd scale 0.5)

def restarted(self, rng):
    valid = self.valid
    picks = rng.choice(np.flatnonzero(valid), len(valid))
    pick = np.where(valid, np.arange(len(valid)), picks)
    u = self.u[pick].copy()
    cov = np.cov(self.u[valid], rowvar=False)
    jit = rng.multivariate_normal(np.zeros(u.shape[1]), JITTER * cov, size=len(u))
    u[~valid] += jit[~valid]
    return R.Ensemble(u, self.s[pick], self.distance[pick], self.status[pick])

def proposals(ensemble, prior, seed, alpha=R.ALPHA):
    rng = np.random.default_rng(seed)
    start = restarted(ensemble, rng)
    s = start.s
    if variant == "perturbed":
        s = s + rng.standard_normal(s.shape)
    u = start.u + R.kalman_moves(start.u, s, alpha)
    low, high = prior.standardise(prior.low), prior.standardise(prior.high)
    margin = 1e-6 * (high - low)
    return prior.destandardise(np.clip(u, low + margin, high - margin)), start

R.proposals = proposals
fj = json.loads((run / "fit.json").read_text())
post = load_posterior(run / "rounds" / f"posterior{fj['settings']['rounds']}")
x_o = np.array([np.nan if v is None else v for v in fj["target"]["x"]])
truth = np.array(fj["truth"])
from automind.invariance.consistent import set_spread
rows, found = R.refine(post, x_o, out, run / "final", gens, seed=fj["settings"]["seed"] + 11,
                       workers=1, progress=False)
for g, r in enumerate(rows, 1):
    sp = set_spread(out / f"g{g}", post.prior, truth) if r["n_consistent"] >= 10 else {}
    print(json.dumps(r | {k: v for k, v in sp.items() if k != "truth_outside_set_5_95"}), flush=True)
