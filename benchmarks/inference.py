"""Training and sampling speed (issue: inference). Prints, as the last line, one JSON object:

- train_samples_per_s for our training loop and for sbi's default in-memory path
  (NPE.append_simulations(...).train(...)) on the same 100k x (28 θ, 30 features) data,
  same estimator, batch size and number of epochs, each in a fresh process;
  train_speed_ratio = ours / sbi (target >= 1.0); train_peak_rss_mb for both;
- sample_10k_s: drawing 10,000 posterior samples for one x (target < 1 s on 2 cores).

    python benchmarks/inference.py [--rows 100000] [--epochs 3] [--estimator zuko_maf]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WORKER = r'''
import json, resource, sys, time, warnings
import numpy as np, torch
warnings.filterwarnings("ignore")
data = np.load(sys.argv[1]); mode, estimator, epochs, batch = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
theta, x = data["theta"], data["x"]
from automind.prior import Prior
prior = Prior.load("mk1")
start = time.perf_counter()
if mode == "ours":
    from automind.inference import train
    post = train(theta, x, prior, estimator=estimator, max_epochs=epochs, patience=10**6,
                 batch_size=batch, progress=False, validation_fraction=0.1)
    seconds = time.perf_counter() - start
    t0 = time.perf_counter(); post.sample(10000, x[0], seed=1); sample_s = time.perf_counter() - t0
else:
    from sbi.inference import NPE
    npe = NPE(prior.distribution, density_estimator=estimator, show_progress_bars=False)
    npe.append_simulations(torch.as_tensor(theta, dtype=torch.float32), torch.as_tensor(x, dtype=torch.float32))
    npe.train(max_num_epochs=epochs, stop_after_epochs=10**6, training_batch_size=batch,
              validation_fraction=0.1, show_train_summary=False)
    seconds = time.perf_counter() - start
    sample_s = None
print(json.dumps({"seconds": seconds, "rows_per_s": 0.9 * len(theta) * epochs / seconds,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "sample_10k_s": sample_s}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--estimator", default="zuko_maf")
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    from automind.prior import Prior

    prior = Prior.load("mk1")
    theta = prior.sample(args.rows, seed=0)
    z = prior.standardise(theta)
    w = np.random.default_rng(1).standard_normal((28, 30)) / np.sqrt(28)
    x = np.tanh(z @ w) + 0.1 * np.random.default_rng(2).standard_normal((args.rows, 30))
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    np.savez(work / "data.npz", theta=theta, x=x)
    (work / "worker.py").write_text(WORKER)
    runs = {}
    for mode in ("sbi", "ours"):
        out = subprocess.run([sys.executable, str(work / "worker.py"), str(work / "data.npz"), mode,
                              args.estimator, str(args.epochs), str(args.batch)],
                             capture_output=True, text=True, check=True,
                             cwd=work)  # sbi writes its tensorboard logs (sbi-logs/) to the cwd
        runs[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{mode}: {runs[mode]}", file=sys.stderr)
    print(json.dumps({
        "rows": args.rows, "epochs": args.epochs, "estimator": args.estimator, "batch": args.batch,
        "train_samples_per_s": round(runs["ours"]["rows_per_s"]),
        "sbi_train_samples_per_s": round(runs["sbi"]["rows_per_s"]),
        "train_speed_ratio": round(runs["ours"]["rows_per_s"] / runs["sbi"]["rows_per_s"], 3),
        "train_peak_rss_mb": round(runs["ours"]["rss_mb"], 1),
        "sbi_train_peak_rss_mb": round(runs["sbi"]["rss_mb"], 1),
        "sample_10k_s": round(runs["ours"]["sample_10k_s"], 3)}))


if __name__ == "__main__":
    main()
