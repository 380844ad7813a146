"""`automind fit` vs one prior bank at equal simulations (issue: automind fit). Prints, as the
last line, one JSON object with, for each method, the information at the target in nats (KL
from the prior and log q(θ*) − log p(θ*) at the truth), the consistent configurations found
by re-simulating the same number of posterior samples, CPU hours (this process and its
workers), and per CPU-hour figures; ``ratio`` = fit / bank for each; and the validated
``consistent_mass_gain_nats`` (``fit.baseline``: log of the fit's consistent share over the
bank posterior's, with its 95 % lower bound).

    python benchmarks/fit.py [--model brunel|mk1] [--budget N] [--refine G] [--out DIR]

Brunel (reduced, N = 250, budget 1,500) runs in minutes; ``--model mk1`` (N = 500, 4.5 s runs,
the settings of studies/mk1_targets: budget 10,000 with up to 17 refinement generations, stopping
at a yield of 0.9; the target drawn by the study's written rule, as the MK1 demo draws its own)
is the figure that matters and takes about 30 min on 2 quiet cores (session 20: fit 0.9475 vs
bank 0, 1,058 vs 0 consistent configurations per CPU-hour). The bank gets as many simulations
as the fit spent.
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = {
    # reduced Brunel: the asynchronous irregular point of the demo
    "brunel": {"theta": [5.0, 2.0], "features": "spikes", "duration": 2.0, "t0": 0.05,
               "probe_duration": 0.3, "probe_rounds": 1, "budget": 1500, "refine": 3},
    # MK1 at laptop size: a target drawn from the prior by the mk1_targets rule (sustained E
    # activity, asynchronous or synchronous), the fit settings of studies/mk1_targets
    "mk1": {"features": "mk1_compact", "duration": 4.5, "t0": 0.5,
            "probe_duration": 1.0, "probe_rounds": 2, "budget": 10000, "refine": 17,
            "probe_fraction": 0.15, "final_samples": 400},
}


def cpu_seconds() -> float:
    """CPU seconds of this process and every descendant: finished children (rusage) and the live
    ones — the simulation workers live through a whole phase, and rusage alone counts a child
    only once it has exited (session 20's first MK1 run reported 0.04 CPU-h for a 36-min fit).
    A phase's difference of two readings is its CPU time whichever children exit in between."""
    import psutil  # with dask[distributed]

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:  # exited since the listing: counted once reaped
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def spec_for(model: str, duration: float, t0: float):
    from automind.simulators import SimulatorSpec
    from automind.simulators.brunel import reduced_spec

    if model == "brunel":  # the reduced network of the tests and the demo's quick size
        return reduced_spec(250, 100, duration, t0)
    return SimulatorSpec.load("mk1").with_overrides(N=500, duration=duration, t_analysis_start=t0)


def make_target(model: str, spec, prior, out: Path, seed: int, workers: int):
    """(recording path, θ*): Brunel at its configured θ; MK1 the first draw of a 100-draw pool
    that the written rule of studies/mk1_targets accepts (sustained E activity at 1-30 Hz;
    ``automind.demo_mk1.draw_target``, as the MK1 demo draws its target)."""
    from automind.recordings.write import write_nwb
    from automind.simulators import Simulator

    if model == "mk1":
        from automind.demo_mk1 import draw_target, write_recording

        target = draw_target(out / "pool", spec, prior, 100, seed, workers, progress=False)
        return Path(write_recording(spec, prior, target, seed, out / "target.nwb")["recording"]), \
            np.array(target["theta"])
    from automind.features.spikedata import SpikeData

    theta = np.array(MODELS[model]["theta"])
    result = Simulator(spec).run(prior.to_simulator(theta), seed=seed)
    if result.status != "ok":
        raise SystemExit(f"the {model} target θ = {theta.tolist()} ran {result.status}")
    data = SpikeData.from_simulation(result).window(spec.t_analysis_start)
    return write_nwb(data, out / "target.nwb"), theta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=tuple(MODELS), default="brunel")
    parser.add_argument("--budget", type=int, help="simulations (default: the model's)")
    parser.add_argument("--refine", type=int, help="refinement generations (default: the model's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()

    from automind.fit import fit
    from automind.fit.baseline import consistent_mass_gain, evaluate, prior_bank_posterior
    from automind.inference.noise import NoiseModel
    from automind.prior import Prior

    conf = MODELS[args.model]
    budget = args.budget or conf["budget"]
    refine = conf["refine"] if args.refine is None else args.refine
    options = {k: conf[k] for k in ("probe_fraction", "final_samples") if k in conf}
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-fit-"))
    out.mkdir(parents=True, exist_ok=True)
    spec = spec_for(args.model, conf["duration"], conf["t0"])
    prior = Prior.load(args.model)
    recording, truth = make_target(args.model, spec, prior, out, args.seed, args.workers)

    figures = {}
    start_cpu, start = cpu_seconds(), time.perf_counter()
    summary = fit(recording, out / "fit", simulator=spec, features=conf["features"],
                  budget=budget, workers=args.workers, progress=False, truth=truth,
                  seed=args.seed, report=False, probe_rounds=conf["probe_rounds"],
                  probe_duration=conf["probe_duration"], refine=refine, **options)
    figures["fit"] = {k: summary[k] for k in ("yield", "n_consistent", "nats", "simulations")} | {
        "truth_log_ratio_nats": summary.get("truth_log_ratio_nats"),
        "cpu_hours": (cpu_seconds() - start_cpu) / 3600, "wall_s": time.perf_counter() - start}

    start_cpu, start = cpu_seconds(), time.perf_counter()
    x = np.array([np.nan if v is None else v for v in
                  json.loads((out / "fit" / "fit.json").read_text())["target"]["x"]])
    posterior = prior_bank_posterior(out / "bank", spec, prior, conf["features"],
                                     summary["simulations"] - summary["n_simulated_final"] - 8,
                                     args.seed + 1, x, args.workers)
    bank = evaluate(posterior, x, out / "bank_final", summary["n_simulated_final"], truth=truth,
                    seed=args.seed, workers=args.workers,
                    noise=NoiseModel.load(out / "fit" / "final"))
    figures["bank"] = bank | {"simulations": summary["simulations"],
                              "cpu_hours": (cpu_seconds() - start_cpu) / 3600,
                              "wall_s": time.perf_counter() - start}
    for method in figures.values():
        method["consistent_per_cpu_hour"] = method["n_consistent"] / method["cpu_hours"]
        method["nats_per_cpu_hour"] = method["nats"] / method["cpu_hours"]
    ratio = {k: figures["fit"][k] / figures["bank"][k] if figures["bank"][k] else None
             for k in ("nats", "consistent_per_cpu_hour", "nats_per_cpu_hour", "yield")}
    gain = consistent_mass_gain(summary["n_consistent"], summary["n_simulated_final"],
                                bank["n_consistent"], bank["n_simulated_final"])
    print(json.dumps({"model": args.model, "budget": budget, "refine": refine, "truth": truth.tolist(),
                      "fit": figures["fit"], "bank": figures["bank"], "ratio": ratio,
                      "nats_gain": figures["fit"]["nats"] - figures["bank"]["nats"],
                      "consistent_mass_gain_nats": gain}))


if __name__ == "__main__":
    main()
