"""Does a fit's second probe region keep the truth, and why not? RUN (a mk1_targets fit folder)
RESULTS (its results.json) K: the truth under each fold classifier of the out-of-fold threshold
(Region.train's), the near probes' out-of-fold p, the truth's nearest near probe in the
classifier's coordinates, and whether the truth's own 8 one-second probes are near. Session 19,
target 267: p(truth) 0.001-0.016 per fold against the threshold 0.0051; 8/8 own probes near;
nearest near probe 10.1 apart (9.0 typical) (docs/fit.md)."""
import json, sys
from pathlib import Path
import numpy as np, torch
from automind.bank import Bank
from automind.features.sets import get_feature_set
from automind.fit.plan import FitSettings
from automind.fit.target import near_target, probe_statistics
from automind.inference.train import _train_restriction
from automind.inference.transforms import BoxToUnconstrained
from automind.prior import Prior
from automind.simulators import Simulator, SimulatorSpec
from automind.features.spikedata import SpikeData

run, results, K = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
fs, prior = get_feature_set("mk1_compact"), Prior.load("mk1")
info = json.loads((run / "probe/region2/region.json").read_text())["info"]
th, st, ss = [], [], []
for k in (1, 2):
    a = Bank(run / "probe" / f"r{k}").arrays(features=fs.name)
    th.append(a["theta"]); st.append(a["status"]); ss.append(probe_statistics(a["x"], fs.names))
theta, status, stats = np.concatenate(th), np.concatenate(st), np.concatenate(ss)
near, _ = near_target(status, stats, info["target"], FitSettings(budget=6000), info["probe_windows"])
res = json.loads(results.read_text())
truth = [t for t in res["targets"] if t["index"] == K][0]["truth"]
truth = np.array([[truth[n] for n in prior.names]])
to_z = lambda t: BoxToUnconstrained.for_prior(prior).to_z(torch.as_tensor(prior.validate(t))).float()
z, zt = to_z(theta), to_z(truth)
seed = json.loads((run / "fit.json").read_text())["settings"]["seed"] + 2
folds = np.random.default_rng(seed).permutation(len(near)) % 5
p_oof = np.empty(len(near)); pt = []
for fold in range(5):
    tr = folds != fold
    clf, _ = _train_restriction(z[torch.as_tensor(tr)], near[tr], seed + fold + 1, False, 0.05)
    clf.eval()
    with torch.no_grad():
        p_oof[~tr] = torch.sigmoid(clf(z[torch.as_tensor(~tr)]).squeeze(-1)).numpy()
        pt.append(float(torch.sigmoid(clf(zt)).squeeze()))
print("near", near.sum(), "truth p per fold classifier", np.round(pt, 4))
print("near probes' out-of-fold p quantiles 1/5/10/50%:", np.round(np.quantile(p_oof[near], [.01, .05, .1, .5]), 4))
# how sparse is the truth's corner: near probes within a z-distance
dz = torch.cdist(zt, z[torch.as_tensor(near)]).numpy()[0]
dzall = torch.cdist(z[torch.as_tensor(near)], z[torch.as_tensor(near)]).numpy()
np.fill_diagonal(dzall, np.inf)
print("truth's nearest near probe in z:", np.round(np.sort(dz)[:3], 2), "; near probes' median nearest:", np.round(np.median(dzall.min(1)), 2))

# the truth's own 1-s probes: near by the probe rule?
spec = SimulatorSpec.load("mk1").with_overrides(N=500, duration=1.0, t_analysis_start=0.5)
sim = Simulator(spec)
rows, sts = [], []
for seed in range(8):
    r = sim.run(prior.to_simulator(truth[0]), seed=1000 + seed)
    sts.append(r.status)
    data = SpikeData.from_simulation(r).window(spec.t_analysis_start)
    rows.append(fs.compute(data))
st = probe_statistics(np.array(rows), fs.names)
nr, dist = near_target(np.array(sts), st, info["target"], FitSettings(budget=6000), info["probe_windows"])
print("truth probes: status", sts, "near", nr.astype(int).tolist(), "stats", np.round(st, 3).tolist())
