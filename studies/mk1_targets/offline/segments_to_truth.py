"""Is the consistent set wider than the refined ensemble? Re-simulate points on the segments
from set members to the truth (whose own re-simulations are accepted): RUN OUT [members]"""
import json, sys
from pathlib import Path
import numpy as np
from automind.inference.noise import NoiseModel
from automind.inference.posterior import load_posterior
from automind.invariance.consistent import find_consistent_set, load_consistent_set

run, out = Path(sys.argv[1]), Path(sys.argv[2]); m = int(sys.argv[3]) if len(sys.argv) > 3 else 40
fj = json.loads((run / "fit.json").read_text())
post = load_posterior(run / "rounds" / f"posterior{fj['settings']['rounds']}")
x_o = np.array([np.nan if v is None else v for v in fj["target"]["x"]])
truth = np.array(fj["truth"])
last = sorted((run / "refine").glob("g*"), key=lambda p: int(p.name[1:]))[-1]
sigma = NoiseModel.load(run / "final")  # σ, and the correlation where the run has one
C = load_consistent_set(last)["theta"]
rng = np.random.default_rng(3)
members = C[rng.choice(len(C), m, replace=False)]
ts = np.array([0.2, 0.4, 0.6, 0.8])
pts = (members[:, None, :] * (1 - ts[None, :, None]) + truth[None, None, :] * ts[None, :, None]).reshape(-1, len(truth))
found = find_consistent_set(post, x_o, out, len(pts), samples=pts, sigma=sigma, seed=777, workers=1, progress=False)
acc = np.zeros(len(pts), bool); acc[load_consistent_set(out)["index"]] = True
acc = acc.reshape(m, len(ts))
print(json.dumps({"t": ts.tolist(), "accepted_by_t": acc.mean(0).round(3).tolist(),
                  "segments_all_accepted": float(acc.all(1).mean())}))
