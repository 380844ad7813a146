"""How wide is a target's consistent set around its truth, and in which parameters is it thin?
RUN OUT [SCALES...]  (RUN: a finished fit folder with a known truth; OUT: a folder for the
arrays and ``stiffness.json``).

1. Ball: the truth moved by Gaussian steps of s prior sd in every parameter at once (48 per
   scale, reflected into the prior box), re-simulated and scored with the fit's noise model
   (``final/noise.json``): the accepted share and distance quantiles per scale.
2. Axes: one parameter at a time moved by ±s prior sd (the other side where + or − leaves the
   box), for s = 0.01 and 0.03: which parameters the set is thin in.
Session 17, target 91 (the 5.5 Hz rhythm): ball 0.25, 0.02, 0.02, 0 accepted at 0.003, 0.01,
0.03, 0.1 prior sd; axes 51 of 56 accepted at both scales, E.tau_w missed by 28-109 noise sd
(studies/mk1_targets/README.md)."""
import json, re, sys
from pathlib import Path

import numpy as np

AXIS_SCALES = (0.01, 0.03)


def main():
    from automind.features.sets import get_feature_set
    from automind.inference.noise import NoiseModel
    from automind.inference.validate import resimulate
    from automind.prior import Prior
    from automind.simulators.spec import SimulatorSpec

    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    scales = [float(s) for s in sys.argv[3:]] or [0.003, 0.01, 0.03, 0.1]
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((run / "fit.json").read_text())
    spec, prior = SimulatorSpec.from_plain(meta["simulator"]), Prior.load("mk1")
    truth = np.array(meta["truth"], float)
    posterior = Path(json.loads((run / "final/run.json").read_text())["posterior"])
    columns = json.loads(re.search(r'"feature_columns": (\[[^\]]*\])',
                                   (posterior / "posterior.json").read_text()).group(1))
    fs = get_feature_set(meta["settings"]["features"])
    target = fs.transform(np.array(meta["target"]["x"], dtype=float))[columns]
    noise = NoiseModel.load(run / "final")
    low, high = prior.low, prior.high
    span, sd = high - low, (high - low) / np.sqrt(12)
    names = [p["name"] for p in meta["prior"]["parameter"]]

    def distances(theta, seed):
        runs = resimulate(spec, prior, theta, seed, fs.name, workers=2)
        x = fs.transform(np.array([r.features[fs.name] for r in runs], float))[:, columns]
        status = np.array([r.status for r in runs])
        ok = status == "ok"
        return np.where(ok, np.nan_to_num(noise.distance(x, target), nan=np.inf), np.inf)

    rng = np.random.default_rng(17)
    ball = []
    for k, s in enumerate(scales):
        rng.normal(size=(48, len(truth)))  # a discarded draw, kept so the numbers reproduce
        m = np.mod(truth + s * sd * rng.normal(size=(48, len(truth))) - low, 2 * span)
        theta = low + np.where(m > span, 2 * span - m, m)
        d = distances(theta, 5000 + 100 * k)
        quantiles = np.round(np.percentile(d, [10, 25, 50, 75]), 2).tolist()
        ball.append({"scale": s, "accepted": float(np.mean(d <= 2)),
                     "d_quantiles_10_25_50_75": quantiles})
        print(json.dumps(ball[-1]), flush=True)
    thetas, labels = [], []
    for s in AXIS_SCALES:
        for j in range(len(truth)):
            for sign in (-1, 1):
                t = truth.copy()
                t[j] += sign * s * sd[j]
                if not low[j] <= t[j] <= high[j]:
                    t[j] = truth[j] - sign * s * sd[j]
                thetas.append(t)
                labels.append((s, names[j], sign))
    d = distances(np.array(thetas), 7000)
    axes = [{"scale": s, "parameter": n, "sign": g, "d": round(float(v), 2)}
            for (s, n, g), v in zip(labels, d)]
    for s in AXIS_SCALES:
        part = [a for a in axes if a["scale"] == s]
        print(s, "accepted", sum(a["d"] <= 2 for a in part), "of", len(part),
              sorted([(a["d"], a["parameter"], a["sign"]) for a in part], reverse=True)[:5])
    (out / "stiffness.json").write_text(json.dumps({"run": str(run), "ball": ball, "axes": axes},
                                                   indent=1))


if __name__ == "__main__":
    main()
