"""Estimator defaults for MK1 by measurement (issue: automind fit, point 3).

Trains ``automind.train`` under several configurations on the same MK1 simulations (one or
more banks with a feature set) and scores each on held-out simulations by the information
it gives: the mean over held-out (θ, x) of log q(θ | x) − log p(θ), in nats. This is a proper
score (an over-confident posterior loses on it) and equals the expected information gain
when q is the true posterior. Training CPU seconds are reported beside it. Only valid runs
are used (status ok; the features finite in >= 95 % of them; rows finite in those); the split
is seeded, the same for every configuration.

    python benchmarks/estimator_defaults.py --banks BANK [BANK ...] [--features mk1_compact]
        [--configs '{"maf": {}, "nsf": {"estimator": "zuko_nsf"}}'] [--heldout 0.2]

Prints progress to stderr and, as the last line, one JSON object: per configuration the
held-out nats (mean and its standard error), training CPU seconds, and the ratio of each
configuration's nats and CPU to the first one's (the baseline, measured in the same run).
"""

import argparse
import json
import sys
import time
import warnings

import numpy as np

#: the default configurations compared (the first is the baseline: today's defaults)
CONFIGS = {
    "default (auto = zuko_maf, batch 256)": {},
    "zuko_nsf": {"estimator": "zuko_nsf"},
    "batch 64": {"batch_size": 64},
    "hidden 100": {"hidden_features": 100},
    "ensemble of 3": {"ensemble": 3},
}


def load(banks: list[str], features: str):
    from automind.bank import Bank
    from automind.prior import Prior

    theta, x, prior = [], [], None
    for path in banks:
        bank = Bank(path)
        data = bank.arrays(features=features)
        ok = data["status"] == "ok"
        theta.append(data["theta"][ok])
        x.append(data["x"][ok])
        info = bank.feature_sets[features]
        prior = prior or Prior.from_dict(bank.meta["prior"], source=f"{path} (bank prior)")
    theta, x = np.concatenate(theta), np.concatenate(x)
    # features a valid run may lack (burst statistics without bursts, ISI statistics of silent
    # units) are left out where more than 5 % of runs lack them, as fit drops what a target lacks
    columns = np.flatnonzero(np.isfinite(x).mean(axis=0) >= 0.95)
    rows = np.isfinite(x[:, columns]).all(axis=1)
    info = {"version": info["version"], "names": [info["names"][c] for c in columns],
            "transforms": [info.get("transforms", ["none"] * x.shape[1])[c] for c in columns]}
    return prior, theta[rows], x[rows][:, columns], info


def heldout_nats(posterior, prior, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    log_p = prior.log_prob(theta)
    return np.array([posterior.log_prob(t[None], row)[0] for t, row in zip(theta, x)]) - log_p


def main() -> None:
    import torch

    from automind.inference import train

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--banks", nargs="+", required=True)
    parser.add_argument("--features", default="mk1_compact")
    parser.add_argument("--configs", help="JSON {name: automind.train options}; default: CONFIGS")
    parser.add_argument("--heldout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    configs = json.loads(args.configs) if args.configs else CONFIGS

    prior, theta, x, info = load(args.banks, args.features)
    order = np.random.default_rng(args.seed).permutation(len(theta))
    n_test = int(round(args.heldout * len(theta)))
    test, fit = order[:n_test], order[n_test:]
    feature_info = {"set": args.features, "version": info["version"], "names": info["names"],
                    "transforms": info.get("transforms", ["none"] * len(info["names"]))}
    print(f"{len(fit)} training and {n_test} held-out valid simulations, {theta.shape[1]} "
          f"parameters, {x.shape[1]} features", file=sys.stderr)
    results = {}
    for name, options in configs.items():
        cpu = time.process_time()
        posterior = train(theta[fit], x[fit], prior, feature_info=feature_info, progress=False,
                          restriction=False, seed=args.seed, **options)
        seconds = time.process_time() - cpu
        nats = heldout_nats(posterior, prior, theta[test], x[test])
        nats = nats[np.isfinite(nats)]
        results[name] = {"options": options, "heldout_nats": round(float(nats.mean()), 3),
                         "heldout_nats_se": round(float(nats.std() / np.sqrt(len(nats))), 3),
                         "train_cpu_s": round(seconds, 1),
                         "estimator": posterior.model.get("estimator")}
        print(f"{name}: {results[name]['heldout_nats']} ± {results[name]['heldout_nats_se']} "
              f"nats, {seconds:.0f} CPU-s", file=sys.stderr)
    base = next(iter(results.values()))
    for r in results.values():
        r["nats_minus_baseline"] = round(r["heldout_nats"] - base["heldout_nats"], 3)
        r["cpu_ratio"] = round(r["train_cpu_s"] / max(base["train_cpu_s"], 1e-9), 2)
    print(json.dumps({"banks": args.banks, "features": args.features, "n_train": int(len(fit)),
                      "n_heldout": n_test, "configs": results}))


if __name__ == "__main__":
    main()
