"""Why is the truth of synchronous targets rejected, and would another acceptance rule fix it?
WORK [OUT_JSON] [CACHE] [TARGETS]  (WORK: the study's results/work folder; defaults below).

1. Repeats. The truth of every target is simulated 80 times with the seeds of its final
   validation's noise runs (``final/run.json`` seed + 1, simulation indices 0..79), so the
   first 8 are exactly the study's noise repeats (checked against ``final/noise.json``) and
   the first 32 are what a fit with 32 noise runs would have had. Cached in CACHE.
2. The current rule (RMS over the 42 conditioned features of (x - x_t)/σ <= 2, σ the ddof-0 sd
   of 8 repeats, floored) scored on *held-out* repeats (the study scores the 8 that set σ):
   σ from the study's 8; from random 8- and 32-subsets (bootstrap over which ones); from all
   other repeats (leave one out). Which features carry the rejected distances; σ from 8 over σ
   from all; the eigen-spectrum of the repeats' feature correlation (effective dof (Σλ)²/Σλ²)
   and the rejection it implies for Gaussian features; whether the target is an unusual
   realisation (the repeats' distances to each other against their distances to x_t).
3. Rules, fitted on the first m reference repeats (what a fit would have) and, for the
   bootstrap, on random m-subsets; scored on the held-out repeats and on every stored
   re-simulation of the fits (final/ and refine/gK chunks, re-scored: the yield each generation
   would have had; the current rule reproduces the stored acceptance exactly):
   current        m = 8, RMS of (x - x_t)/σ <= 2;
   R1_sigma32     m = 32, the same distance and threshold;
   R2_whitened32  m = 32, whitened: sqrt(zᵀ R_s⁻¹ z / k) <= 2, z = (x - x_t)/σ, R_s the repeats'
                  correlation shrunk towards the identity by the Ledoit-Wolf weight. Under
                  independence this is the current rule; Δᵀ(2Σ)⁻¹Δ ~ χ²_k for a typical target,
                  so the cut 2 keeps the current rule's nominal level (P(χ²_42 > 84) = 1.3e-4);
   and two diagnostics with m = 8: the threshold calibrated as the 95 % quantile of the 28
   pairwise distances among the repeats (pairwise_q95_8), and the whitened rule (whitened_8).
Prints one JSON line per measurement; writes everything to OUT_JSON."""
import json, sys
from pathlib import Path
import numpy as np

WORK = Path(sys.argv[1] if len(sys.argv) > 1 else "studies/mk1_targets/results/work")
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else "studies/mk1_targets/results/offline_acceptance.json")
CACHE = Path(sys.argv[3] if len(sys.argv) > 3 else "/tmp/acceptance_calibration")
TARGETS = {int(a): 80 for a in (sys.argv[4] if len(sys.argv) > 4 else '0,4,14,24,28,61').split(',')}
KIND = {0: "async", 4: "async", 14: "async", 24: "sync", 28: "sync", 61: "sync"}
THRESHOLD, FLOOR, B = 2.0, 1e-3, 2000
rng = np.random.default_rng(12)
out = {"targets": {}}


def say(**kw):
    print(json.dumps(kw, default=float), flush=True)


def wilson(k, n, z=1.96):
    if n == 0:
        return [float("nan")] * 2
    p, d = k / n, 1 + z * z / n
    c, h = (p + z * z / (2 * n)) / d, z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(c - h, 3), round(c + h, 3)]


def load_fit(t):
    from automind.inference.posterior import load_posterior
    run = WORK / f"fit_{t}"
    fj = json.loads((run / "fit.json").read_text())
    post = load_posterior(run / "rounds" / f"posterior{fj['settings']['rounds']}")
    x = np.array([np.nan if v is None else v for v in fj["target"]["x"]])
    return run, fj, post, post.prepare_x(x)[0].numpy().astype(np.float64)


def repeats(t, n, run, fj, post):
    """The truth's n re-simulations (transformed features, status); the first 8 are the study's."""
    from automind.inference.validate import _transformed, resimulate, simulator_of
    path = CACHE / f"repeats_{t}_{n}.npz"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        seed = json.loads((run / "final" / "run.json").read_text())["seed"] + 1
        fs = post.features["set"]
        res = resimulate(simulator_of(post), post.prior, np.repeat(np.array(fj["truth"])[None], n, 0),
                         seed, fs, workers=1)
        feats = _transformed(post, [r.features[fs] for r in res], post.config.get("feature_columns"))
        np.savez(path, features=feats, status=np.array([r.status for r in res]),
                 seed=np.array([r.seed for r in res]))
    with np.load(path) as d:
        return d["features"], d["status"]


def sigma_of(rep, target):
    """The library's noise scale: ddof-0 sd over the repeats, floored (validate.noise_scale)."""
    s = np.nanstd(rep, axis=0)
    return np.maximum(np.nan_to_num(s, nan=np.inf), FLOOR * (1 + np.abs(target)))


def rms(x, target, sigma):
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.mean(((x - target) / sigma) ** 2, axis=-1))


def shrunk_corr(rep, sigma):
    """Correlation of the repeats shrunk towards the identity by the Ledoit-Wolf weight
    (computed on the standardised repeats); features without spread stay independent."""
    from sklearn.covariance import ledoit_wolf_shrinkage
    z = (rep - rep.mean(0)) / sigma
    live = z.std(0) > 1e-9
    zl = z[:, live] / z[:, live].std(0)
    a = ledoit_wolf_shrinkage(zl, assume_centered=False)
    r = np.eye(rep.shape[1])
    r[np.ix_(live, live)] = (1 - a) * np.corrcoef(zl, rowvar=False) + a * np.eye(live.sum())
    return r, float(a)


# name: (reference repeats, distance, threshold); R1 and R2 are the proposals, the last two
# diagnostics (the same ideas with only 8 repeats)
RULES = {"current": (8, "rms", "fixed"), "R1_sigma32": (32, "rms", "fixed"),
         "R2_whitened32": (32, "whitened", "fixed"),
         "pairwise_q95_8": (8, "rms", "pairwise"), "whitened_8": (8, "whitened", "fixed")}


class Rule:
    """An acceptance rule fitted on the reference's repeats: ``accept(x)``, ``distance(x)``."""

    def __init__(self, name, rep, target):
        _, self.metric, calibration = RULES[name]
        self.target, self.sigma, self.threshold = target, sigma_of(rep, target), THRESHOLD
        if self.metric == "whitened":
            r, self.shrinkage = shrunk_corr(rep, self.sigma)
            self.whiten = np.linalg.cholesky(np.linalg.inv(r))  # z L: |z L|² = z R⁻¹ zᵀ
        if calibration == "pairwise":
            i, j = np.triu_indices(len(rep), 1)
            self.threshold = float(np.quantile(self.distance(rep[i], rep[j]), 0.95))

    def distance(self, x, target=None):
        z = (x - (self.target if target is None else target)) / self.sigma
        if self.metric == "whitened":
            z = z @ self.whiten
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.mean(z ** 2, axis=-1))

    def accept(self, x, status=None):
        d = self.distance(x)
        ok = np.isfinite(d) & (d <= self.threshold)
        return ok if status is None else ok & (status == "ok")


def stored_generations(run):
    from automind.invariance.consistent import load_chunks
    gens = [("final", run / "final")]
    gens += [(p.name, p) for p in sorted((run / "refine").glob("g*"), key=lambda p: int(p.name[1:]))]
    return [(name, load_chunks(p)) for name, p in gens]


def measure(t, n):
    run, fj, post, target = load_fit(t)
    names = [post.features["names"][c] for c in post.config["feature_columns"]]
    group = np.array(["psd" if n_.startswith("psd") else "burst" if n_.startswith("burst") else "spike"
                      for n_ in names])
    rep, status = repeats(t, n, run, fj, post)
    noise = json.loads((run / "final" / "noise.json").read_text())
    first8, rest = rep[:8], rep[8:]
    sig8 = sigma_of(first8, target)
    res = {"kind": KIND[t], "repeats": n, "not_ok": int((status != "ok").sum()),
           "features": len(names),
           "study_8_reproduced": bool(np.allclose(rms(first8, target, sig8), noise["reference_distances"],
                                                  rtol=1e-6) and np.allclose(sig8, noise["sigma"]))}
    assert (status == "ok").all(), status
    say(target=t, step="repeats", **res)

    # --- 2. the current rule on held-out repeats
    d_study = rms(rest, target, sig8)
    k = int((d_study <= THRESHOLD).sum())
    acc = {"sigma_from_study_8": {"accepted": k, "of": len(rest), "rate": round(k / len(rest), 3),
                                  "ci95": wilson(k, len(rest)),
                                  "in_sample_8": int(np.sum(np.array(noise["reference_distances"]) <= 2))}}
    for m in (8, 32):
        rates, insample = [], []
        for _ in range(B):
            idx = rng.permutation(n)
            s = sigma_of(rep[idx[:m]], target)
            rates.append(np.mean(rms(rep[idx[m:]], target, s) <= THRESHOLD))
            insample.append(np.mean(rms(rep[idx[:m]], target, s) <= THRESHOLD))
        acc[f"sigma_from_{m}"] = {"mean_rate_held_out": round(float(np.mean(rates)), 3),
                                  "rate_5_95": np.quantile(rates, [0.05, 0.95]).round(3).tolist(),
                                  "share_of_subsets_below_0.9": round(float(np.mean(np.array(rates) < 0.9)), 3),
                                  "mean_rate_in_sample": round(float(np.mean(insample)), 3)}
    d_loo = np.array([rms(rep[i], target, sigma_of(np.delete(rep, i, 0), target)) for i in range(n)])
    k = int((d_loo <= THRESHOLD).sum())
    acc["sigma_from_all_others"] = {"accepted": k, "of": n, "rate": round(k / n, 3), "ci95": wilson(k, n),
                                    "distance_median": round(float(np.median(d_loo)), 3),
                                    "distance_90": round(float(np.quantile(d_loo, 0.9)), 3)}
    res["truth_acceptance_current_rule"] = acc
    say(target=t, step="current rule, truth acceptance", **acc)

    # sigma from 8 vs from all repeats, per feature
    sig_all = sigma_of(rep, target)
    ratio8 = []
    for _ in range(B):
        ratio8.append(sigma_of(rep[rng.choice(n, 8, replace=False)], target) / sig_all)
    ratio8 = np.array(ratio8)
    live = np.nanstd(rep, 0) > FLOOR * (1 + np.abs(target))
    from scipy.stats import kurtosis
    kurt = kurtosis(rep, axis=0, fisher=True, bias=False)
    res["sigma"] = {"study8_over_all_median": round(float(np.median((sig8 / sig_all)[live])), 3),
                    "study8_over_all_by_group": {g: round(float(np.median((sig8 / sig_all)[live & (group == g)])), 3)
                                                 for g in ("spike", "psd", "burst") if (live & (group == g)).any()},
                    "random8_over_all_median": round(float(np.median(ratio8[:, live])), 3),
                    "random8_over_all_share_below_0.7": round(float(np.mean(ratio8[:, live] < 0.7)), 3),
                    "features_without_spread": [nm for nm, l in zip(names, live) if not l],
                    "excess_kurtosis_median": round(float(np.nanmedian(kurt[live])), 2),
                    "heavy_tailed_features": {nm: round(float(kv), 1) for nm, kv, l in zip(names, kurt, live)
                                              if l and kv > 2}}
    say(target=t, step="sigma", **res["sigma"])

    # --- which features carry the distances (sigma from all repeats)
    z2 = ((rep - target) / sig_all) ** 2
    d_all = np.sqrt(z2.mean(1))
    rejected = d_all > THRESHOLD
    bias = (target - rep.mean(0)) / sig_all
    share = lambda rows: {g: round(float(z2[rows][:, group == g].sum() / z2[rows].sum()), 3)
                          for g in ("spike", "psd", "burst")}
    top = np.argsort(-z2[rejected].mean(0))[:6] if rejected.any() else []
    res["distances"] = {"rejected_with_sigma_all": int(rejected.sum()),
                        "share_of_squared_distance_rejected": share(rejected) if rejected.any() else None,
                        "share_of_squared_distance_accepted": share(~rejected),
                        "group_sizes": {g: int((group == g).sum()) for g in ("spike", "psd", "burst")},
                        "top_features_rejected_mean_z2": {names[i]: round(float(z2[rejected][:, i].mean()), 1)
                                                          for i in top},
                        "target_offset_rms": round(float(np.sqrt(np.mean(bias[live] ** 2))), 3),
                        "target_offsets_over_2sd": {names[i]: round(float(bias[i]), 2)
                                                    for i in np.where(live & (np.abs(bias) > 2))[0]}}
    say(target=t, step="distances", **res["distances"])

    # --- correlation structure
    zl = (rep[:, live] - rep[:, live].mean(0)) / rep[:, live].std(0)
    lam = np.clip(np.linalg.eigvalsh(np.corrcoef(zl, rowvar=False))[::-1], 0, None)
    k_eff = float(lam.sum() ** 2 / (lam ** 2).sum())
    psd = group[live] == "psd"
    lam_psd = (np.linalg.eigvalsh(np.corrcoef(zl[:, psd], rowvar=False))[::-1] if psd.sum() > 1
               else np.array([np.nan]))
    # Gaussian features with this correlation and a typical target (x - x_t ~ N(0, 2Σ)):
    # P(mean z² > 4) where z² sums λ_j w_j², w ~ N(0, 2)
    k = len(names)
    lam_full = np.concatenate([lam, np.ones(k - live.sum())])  # features without spread: independent
    w = rng.standard_normal((200000, k)) * np.sqrt(2)
    gauss_reject = float(np.mean((w ** 2 * lam_full).sum(1) / k > THRESHOLD ** 2))
    i, j = np.triu_indices(n, 1)
    pair_d = rms(rep[i], rep[j], sig_all)
    res["correlation"] = {"eigen_top5_share": (lam[:5] / lam.sum()).round(3).tolist(),
                          "k_eff": round(k_eff, 1), "k": k, "k_with_spread": int(live.sum()),
                          "psd_top1_share": round(float(lam_psd[0] / lam_psd.sum()), 3),
                          "psd_k_eff": round(float(lam_psd.sum() ** 2 / (lam_psd ** 2).sum()), 1),
                          "gaussian_rejection_implied": round(gauss_reject, 4),
                          "pairwise_rejection": round(float(np.mean(pair_d > THRESHOLD)), 4),
                          "pairwise_distance_median_95": np.quantile(pair_d, [0.5, 0.95]).round(3).tolist(),
                          "to_target_rejection": round(float(np.mean(d_all > THRESHOLD)), 4),
                          "to_target_distance_median_95": np.quantile(d_all, [0.5, 0.95]).round(3).tolist()}
    # is x_t an unusual realisation? its mean distance to the repeats against each repeat's
    own = np.array([np.mean(rms(np.delete(rep, m, 0), rep[m], sig_all)) for m in range(n)])
    res["correlation"]["target_mean_distance_percentile_among_repeats"] = round(
        float(np.mean(own < np.mean(d_all)) * 100), 1)
    say(target=t, step="correlation", **res["correlation"])

    # --- 3. alternative rules: truth acceptance (bootstrap over which 8) and stored yields
    rules = {}
    for name, (m, _, _) in RULES.items():
        rates, thr, shr = [], [], []
        for _ in range(B // 4):
            idx = rng.permutation(n)
            rule = Rule(name, rep[idx[:m]], target)
            rates.append(np.mean(rule.accept(rep[idx[m:]])))
            thr.append(rule.threshold)
            shr.append(getattr(rule, "shrinkage", np.nan))
        study = Rule(name, rep[:m], target)  # the repeats a fit with m noise runs would have had
        k_ = int(study.accept(rep[m:]).sum())
        entry = {"reference_repeats": m,
                 "truth_study": {"accepted": k_, "of": n - m, "rate": round(k_ / (n - m), 3),
                                 "ci95": wilson(k_, n - m)},
                 "truth_bootstrap_mean": round(float(np.mean(rates)), 3),
                 "truth_bootstrap_5_95": np.quantile(rates, [0.05, 0.95]).round(3).tolist(),
                 "truth_bootstrap_share_below_0.9": round(float(np.mean(np.array(rates) < 0.9)), 3),
                 "threshold_study": round(study.threshold, 3),
                 "threshold_bootstrap_5_50_95": np.quantile(thr, [0.05, 0.5, 0.95]).round(3).tolist()}
        if study.metric == "whitened":
            entry["shrinkage_study"] = round(study.shrinkage, 3)
            entry["shrinkage_bootstrap_median"] = round(float(np.nanmedian(shr)), 3)
        gens = {}
        for gen, ch in stored_generations(run):
            a = study.accept(ch["features"], ch["status"])
            if name == "current":
                assert (a == ch["accepted"]).all(), (t, gen)  # the stored acceptance, reproduced
            gens[gen] = round(float(a.mean()), 3)
        entry["yield_by_generation"] = gens
        # the same distance at other cuts (truth held out from the study's repeats; last generation)
        d_truth, d_last = study.distance(rep[m:]), study.distance(ch["features"])
        d_last[ch["status"] != "ok"] = np.nan
        entry["cut_sweep"] = {f"{c:g}": {"truth": round(float(np.mean(d_truth <= c)), 3),
                                         "yield_last": round(float(np.mean(d_last <= c)), 3)}
                              for c in (1.6, 1.8, 2.0, 2.2)}
        last_current = ch["accepted"]
        entry["last_vs_current"] = {"both": int((a & last_current).sum()),
                                    "only_this_rule": int((a & ~last_current).sum()),
                                    "only_current": int((~a & last_current).sum())}
        rules[name] = entry
        say(target=t, step=f"rule {name}", **entry)
    res["rules"] = rules
    return res


for t, n in TARGETS.items():
    out["targets"][str(t)] = measure(t, n)
out["settings"] = {"threshold": THRESHOLD, "bootstrap": B, "repeats": TARGETS,
                   "rules": {k: {"reference_repeats": m, "distance": d, "threshold": c}
                             for k, (m, d, c) in RULES.items()}}
OUT.write_text(json.dumps(out, indent=1, default=float) + "\n")
say(written=str(OUT))
