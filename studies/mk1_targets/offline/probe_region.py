"""Offline: could a probe region cut more prior while keeping the truth? Regression of the
probe statistics on θ vs classification of 'near' labels, out-of-fold thresholds (5 % of near
probes cut), prior mass from 100k prior draws."""
import json, sys
import numpy as np
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingClassifier as HGC, HistGradientBoostingRegressor as HGR
from sklearn.model_selection import KFold
from automind.bank import Bank
from automind.prior import Prior
from automind.fit.target import probe_statistics, near_target
from automind.fit.plan import FitSettings

prior = Prior.load("mk1")
R = json.load(open("studies/mk1_targets/results/results.json"))
U = prior.standardise(prior.sample(100_000, seed=1))
s = FitSettings(budget=6000)
for t in R["targets"]:
    k = t["index"]; w = f"studies/mk1_targets/results/work/fit_{k}"
    fj = json.load(open(f"{w}/fit.json")); target = fj["target"]
    th, st, stats = [], [], []
    for r in (1, 2):
        b = Bank(f"{w}/probe/r{r}"); d = b.arrays(features="mk1_compact")
        th.append(d["theta"]); st.append(d["status"]); stats.append(probe_statistics(d["x"], b.feature_sets["mk1_compact"]["names"]))
    th, st, stats = np.concatenate(th), np.concatenate(st), np.concatenate(stats)
    near, _ = near_target(st, stats, target, s)
    u = prior.standardise(th); ok = st == "ok"
    lr = np.log10(np.maximum(stats[:, 0], 1e-3)); cv = stats[:, 1]
    r0, c0 = np.log10(target["rate_mean"]), target["isi_cv_mean"]
    tu = prior.standardise(np.array(fj["truth"])[None])

    def score_models(tr):
        pok = HGC(max_iter=200).fit(u[tr], ok[tr])
        okt = tr[ok[tr]]
        mr = HGR(max_iter=200).fit(u[okt], lr[okt])
        fin = okt[np.isfinite(cv[okt])]
        mc = HGR(max_iter=200).fit(u[fin], cv[fin])
        # residual sd on the training ok runs, inflated (in-sample residuals are optimistic)
        sr = 1.5 * np.std(lr[okt] - mr.predict(u[okt])); sc = 1.5 * np.std(cv[fin] - mc.predict(u[fin]))
        def f(x):
            a = pok.predict_proba(x)[:, 1]
            pr = norm.cdf((r0 + s.rate_tolerance - mr.predict(x)) / sr) - norm.cdf((r0 - s.rate_tolerance - mr.predict(x)) / sr)
            pc = norm.cdf((c0 + s.cv_tolerance - mc.predict(x)) / sc) - norm.cdf((c0 - s.cv_tolerance - mc.predict(x)) / sc)
            return a * pr * pc
        return f

    def classify(tr):
        m = HGC(max_iter=200).fit(u[tr], near[tr]); return lambda x: m.predict_proba(x)[:, 1]

    for name, make in (("regression", score_models), ("near-classifier", classify)):
        oof = np.empty(len(u))
        for tr, te in KFold(5, shuffle=True, random_state=0).split(u):
            oof[te] = make(tr)(u[te])
        thr = np.quantile(oof[near], 0.05)
        full = make(np.arange(len(u)))
        mass = float(np.mean(full(U) >= thr)); keep_t = bool(full(tu)[0] >= thr)
        print(k, name, "near %d/%d" % (near.sum(), len(near)), "mass %.3f (%.2f nats)" % (mass, -np.log(max(mass, 1e-9))), "truth kept", keep_t,
              "near-probe recall oof %.2f" % np.mean(oof[near] >= thr), flush=True)
