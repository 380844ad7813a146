"""Estimator quality (issue 17): automind.train defaults vs sbi's NPE defaults, same data.

For each standard task (``automind.inference.reference_tasks``: gaussian_linear_uniform,
two_moons, slcp; reference posteriors computed there, no downloads) it simulates
``--simulations`` (θ, x) pairs from the prior once, trains

- ``sbi``: ``NPE(prior).append_simulations(θ, x).train()`` with every default;
- ``ours``: ``automind.train(θ, x, prior)`` with every default (``--ours`` adds options),

on those same pairs, in this process, one after the other (one torch thread each by
default), and scores both with C2ST (sbi's
``c2st``, its default random-forest classifier, 5 folds; 0.5 = indistinguishable) between
``--samples`` posterior samples and as many reference samples, for ``--observations``
observations per task (θ_o from the prior, seeded). Training time includes everything
each call does (z-scoring, early stopping, building the posterior), as wall seconds and as
CPU seconds of this process (the fairer figure on a shared machine, where the wall time of
two runs minutes apart sees different loads). Prints progress to stderr and, as the last
line, one JSON object with per-task figures and the ratios c2st_ours - c2st_sbi (target
<= 0.02) and training time ours / sbi, wall and CPU (target <= 1).

    python benchmarks/estimators.py [--tasks two_moons,slcp] [--simulations 10000]
        [--observations 3] [--samples 5000] [--threads 1] [--ours '{"num_transforms": 5}']
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch


def train_sbi(task, theta, x):
    from sbi.inference import NPE

    start, cpu = time.perf_counter(), time.process_time()
    npe = NPE(prior=task.prior, show_progress_bars=False)
    npe.append_simulations(torch.as_tensor(theta, dtype=torch.float32),
                           torch.as_tensor(x, dtype=torch.float32))
    npe.train()
    posterior = npe.build_posterior()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu

    def sample(n, x_o, seed):
        torch.manual_seed(seed)
        return posterior.sample((n,), x=torch.as_tensor(x_o, dtype=torch.float32),
                                show_progress_bars=False).numpy()

    return sample, {"seconds": seconds, "cpu_seconds": cpu, "epochs": npe.epoch}


def train_ours(task, theta, x, options):
    import automind

    start, cpu = time.perf_counter(), time.process_time()
    posterior = automind.train(theta, x, task.prior, progress=False, **options)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu

    def sample(n, x_o, seed):
        return posterior.sample(n, x_o, seed=seed)

    return sample, {"seconds": seconds, "cpu_seconds": cpu,
                    "epochs": len(posterior.metrics["training_curves"][0])}


def c2st(a, b, seed):
    from sbi.utils.metrics import c2st as sbi_c2st

    return float(sbi_c2st(torch.as_tensor(a, dtype=torch.float32),
                          torch.as_tensor(b, dtype=torch.float32), seed=seed))


def run_task(name, args, ours_options):
    from automind.inference.reference_tasks import get_task

    task = get_task(name)
    rng = np.random.default_rng(args.seed)
    theta = task.sample_prior(args.simulations, rng)
    x = task.simulate(theta, rng)
    theta_o = task.sample_prior(args.observations, np.random.default_rng(args.seed + 1000))
    x_o = task.simulate(theta_o, np.random.default_rng(args.seed + 2000))
    samplers, runs = {}, {}
    for method in args.methods:
        torch.manual_seed(args.seed)
        if method == "sbi":
            samplers[method], runs[method] = train_sbi(task, theta, x)
        else:
            samplers[method], runs[method] = train_ours(task, theta, x, ours_options)
        print(f"{name} {method}: trained in {runs[method]['seconds']:.1f} s, "
              f"{runs[method]['cpu_seconds']:.1f} CPU s ({runs[method]['epochs']} epochs)",
              file=sys.stderr)
        runs[method]["c2st"] = []
    for k, xo in enumerate(x_o):
        reference = task.reference(xo, args.samples, seed=args.seed + 3000 + k)
        for method in args.methods:
            drawn = samplers[method](args.samples, xo, args.seed + 4000 + k)
            runs[method]["c2st"].append(round(c2st(reference, drawn, seed=k), 4))
        print(f"{name} observation {k}: " + ", ".join(
            f"{m} {runs[m]['c2st'][-1]:.3f}" for m in args.methods), file=sys.stderr)
    result = {m: {"c2st": runs[m]["c2st"], "c2st_mean": round(float(np.mean(runs[m]["c2st"])), 4),
                  "train_seconds": round(runs[m]["seconds"], 1),
                  "train_cpu_seconds": round(runs[m]["cpu_seconds"], 1), "epochs": runs[m]["epochs"]}
              for m in args.methods}
    if set(args.methods) == {"sbi", "ours"}:
        result["c2st_excess"] = round(result["ours"]["c2st_mean"] - result["sbi"]["c2st_mean"], 4)
        result["train_time_ratio"] = round(runs["ours"]["seconds"] / runs["sbi"]["seconds"], 3)
        result["train_cpu_ratio"] = round(runs["ours"]["cpu_seconds"] / runs["sbi"]["cpu_seconds"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="gaussian_linear_uniform,two_moons,slcp")
    parser.add_argument("--methods", default="sbi,ours")
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--observations", type=int, default=3)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for both methods (the same for a fair time)")
    parser.add_argument("--ours", default="{}", help="JSON of extra automind.train options")
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    os.chdir(tempfile.mkdtemp(prefix="bench-estimators-"))  # sbi writes sbi-logs/ to the cwd
    tasks = {name: run_task(name, args, json.loads(args.ours)) for name in args.tasks.split(",")}
    summary = {"simulations": args.simulations, "observations": args.observations,
               "samples": args.samples, "threads": args.threads, "ours_options": json.loads(args.ours),
               "tasks": tasks}
    if all("c2st_excess" in t for t in tasks.values()):
        summary["max_c2st_excess"] = max(t["c2st_excess"] for t in tasks.values())
        summary["max_train_time_ratio"] = max(t["train_time_ratio"] for t in tasks.values())
        summary["max_train_cpu_ratio"] = max(t["train_cpu_ratio"] for t in tasks.values())
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
