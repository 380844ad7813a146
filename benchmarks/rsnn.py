"""TorchMK1 against the Brian2 engine in the same run (issue 14, spec rsnn.md §7).

(a) Forward speed: θ drawn from the MK1 prior (simulate.py's seed), N = 2000, dt = 0.2 ms,
    DURATION s, early stop off. Brian2: the compiled engine, one θ per process (its CPU time
    from the children's rusage). Torch: one batch of B θ, event propagation, float32, in this
    process (CPU time of all its threads). Figure: biological seconds per CPU second, and the
    ratio torch / Brian2 (spec target >= 0.25; the issue asks >= 0.5).
(b) Exponentiated Adam vs plain Adam on the spec's Dale problem: sign flips.
(c) Gradient step time: dense differentiable run (B 10, N 500, 0.1 s) forward + backward,
    with the graph's gradient deferred (rsnn/recurrent.py, the default) and with autograd's
    per-step outer product (the baseline, same θ and seeds); ratio baseline / deferred.
(d) ``--device cuda``: (a)'s torch side on the GPU, or a skip with its reason.
Prints one JSON object as the last line.

    python benchmarks/rsnn.py [--batch 32] [--N 2000] [--duration 1] [--n-brian 4]
"""

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch

from automind.prior import Prior
from automind.rsnn.features import bin_ms
from automind.rsnn.mk1 import TorchMK1
from automind.rsnn.optim import ExpAdam
from automind.simulators import Simulator, SimulatorSpec
from automind.simulators.execution import simulation_seed


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def forward(args, device: str) -> dict:
    prior = Prior.load("mk1")
    spec = SimulatorSpec.load("mk1").with_overrides(N=args.N, duration=args.duration, silent=0.0,
                                                    runaway=1e12)
    params = [prior.to_simulator(t) for t in prior.sample(args.batch, seed=args.seed)]
    seeds = [simulation_seed(args.seed, k) for k in range(args.batch)]
    out = {}
    if device == "cpu":
        sim = Simulator(spec)  # compiled (or cached) before timing
        cpu0, wall0 = children_cpu(), time.perf_counter()
        brian = [sim.run(p, s, index=k) for k, (p, s) in
                 enumerate(zip(params[:args.n_brian], seeds[:args.n_brian]))]
        brian_cpu, brian_wall = children_cpu() - cpu0, time.perf_counter() - wall0
        out["brian2_bio_s_per_cpu_s"] = args.n_brian * args.duration / brian_cpu
        out["brian2_wall_s_per_network_bio_s"] = brian_wall / (args.n_brian * args.duration)
        out["brian2_E_rates_Hz"] = [round(r.rate("E"), 2) for r in brian]
    model = TorchMK1(spec, device=device, dtype=torch.float32)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = model.run_batch(params, seeds)
    if device != "cpu":
        torch.cuda.synchronize()
    torch_cpu, torch_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    statuses = [r.status for r in results]
    out["torch_statuses"] = {s: statuses.count(s) for s in set(statuses)}
    out["torch_bio_s_per_cpu_s"] = args.batch * args.duration / torch_cpu
    out["torch_wall_s_per_network_bio_s"] = torch_wall / (args.batch * args.duration)
    out["torch_E_rates_Hz"] = [round(r.rate("E"), 2) for r in results[:args.n_brian]]
    if device == "cpu":
        out["bio_s_per_cpu_s_ratio"] = out["torch_bio_s_per_cpu_s"] / out["brian2_bio_s_per_cpu_s"]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def flips(steps: int = 2000) -> dict:
    """The spec §4 problem with 10 % wrong-signed targets: entries whose sign ever flipped."""
    g = torch.Generator().manual_seed(0)
    n = 100
    X, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    signs = torch.ones(n, dtype=torch.float64)
    signs[80:] = -1
    W0 = torch.exp(torch.randn(n, n, dtype=torch.float64, generator=g) * 0.5 - 2.3) * signs
    T = torch.exp(torch.randn(n, n, dtype=torch.float64, generator=g) * 0.5 - 2.3) * signs
    wrong = torch.rand(n, n, generator=g) < 0.1
    T = torch.where(wrong, -T, T)
    out = {"wrong_signed_targets": int(wrong.sum())}
    for name, make in (("exp_adam", lambda p: ExpAdam(p, lr=0.01)),
                       ("adam", lambda p: torch.optim.Adam(p, lr=0.01, eps=1e-11))):
        W = W0.clone().requires_grad_(True)
        opt = make([W])
        flipped = torch.zeros_like(W0, dtype=torch.bool)
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            (0.5 * (X @ (W - T)).square().sum()).backward()
            opt.step()
            flipped |= torch.sign(W.detach()) != torch.sign(W0)
        out[f"{name}_flips"] = int(flipped.sum())
        out[f"{name}_ms_per_step"] = round(1e3 * (time.perf_counter() - start) / steps, 3)
    return out


def gradient_step(B: int = 10, N: int = 500, duration: float = 0.1, repeats: int = 2) -> dict:
    prior = Prior.load("mk1")
    spec = SimulatorSpec.load("mk1").with_overrides(N=N, duration=duration)
    params = [prior.to_simulator(t) for t in prior.sample(B, seed=7)]
    out, best = {"grad_B": B, "grad_N": N}, {}
    for _ in range(repeats):  # alternate the two, keep each one's fastest
        for label, defer in (("baseline_", False), ("", True)):
            model = TorchMK1(spec, dtype=torch.float32, defer_weight_grad=defer)
            start = time.perf_counter()
            z, P = model.run_differentiable(params, list(range(B)), duration)
            rate = bin_ms(z, round(1e-3 / spec.dt)).mean()
            middle = time.perf_counter()
            rate.backward()
            end = time.perf_counter()
            steps = z.shape[1]
            times = (1e3 * (middle - start) / steps, 1e3 * (end - middle) / steps)
            if sum(times) < sum(best.get(label, (np.inf,))):
                best[label] = times
            out[f"{label}gradients_finite"] = all(
                bool(torch.isfinite(p.grad).all()) for p in P.values() if p.grad is not None)
    for label, (fwd, bwd) in best.items():
        out |= {f"{label}forward_ms_per_step": round(fwd, 3),
                f"{label}backward_ms_per_step": round(bwd, 3)}
    out["grad_steps"] = steps
    out["gradient_step_speedup"] = round(sum(best["baseline_"]) / sum(best[""]), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--N", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--n-brian", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {"N": args.N, "batch": args.batch, "duration_s": args.duration,
              "threads": args.threads, "torch": torch.__version__}
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            report["cuda"] = "skipped: no CUDA device on this machine"
        else:
            report["cuda"] = forward(args, args.device)
        print(json.dumps(report))
        return
    report |= forward(args, "cpu")
    print(f"forward: {report}", file=sys.stderr)
    report |= flips()
    report |= gradient_step()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
