"""Feature speed (issue: summary features). Prints, as the last line, one JSON object:

- features_s: the `mk1` feature set (spikes + psd + bursts) on a 2000-unit, 200 s, ~10 Hz
  raster (~4 M spikes);
- fraction_of_sim_time: features_s over the measured time of an MK1 simulation of the same
  length (a θ from the prior whose E rate is near 10 Hz; target <= 0.02);
- speedup_vs_elephant: Elephant's time over ours for the statistics both compute
  (per-unit rate, ISI mean and CV) on the same raster (target >= 20).

    python benchmarks/features.py [--sim-duration 200]
"""

import argparse
import json
import sys
import time

import numpy as np

from automind.features import SpikeData, get_feature_set
from automind.features.stats import per_unit_isi, unit_index


def raster(n_units=2000, duration=200.0, rate=10.0, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate * duration, n_units)
    ids = np.repeat(np.arange(n_units), counts)
    times = rng.uniform(0, duration, counts.sum())
    order = np.argsort(times)
    return SpikeData(times[order], ids[order], duration, np.arange(n_units))


def ours(data):
    rates = np.bincount(unit_index(data), minlength=data.n_units) / data.duration
    isi = per_unit_isi(data, quartiles=False)  # Elephant has no per-unit ISI quartiles
    return rates, isi["mean"], isi["cv"]


def elephant_version(data):
    import neo
    import quantities as pq
    from elephant.statistics import cv, isi, mean_firing_rate

    order = np.argsort(data.unit_ids, kind="stable")
    units, times = data.unit_ids[order], data.times[order]
    bounds = np.searchsorted(units, data.units), np.searchsorted(units, data.units, side="right")
    rates, means, cvs = [], [], []
    for lo, hi in zip(*bounds):
        train = neo.SpikeTrain(times[lo:hi] * pq.s, t_stop=data.duration * pq.s)
        rates.append(float(mean_firing_rate(train).rescale("Hz")))
        intervals = isi(train)
        means.append(float(np.mean(intervals)))
        cvs.append(cv(intervals))
    return np.array(rates), np.array(means), np.array(cvs)


def mk1_simulation_seconds(duration: float) -> tuple[float, float]:
    """Wall time of one MK1 run of ``duration`` s (early stop off) for the prior θ whose
    E rate in a 1 s probe run is nearest 10 Hz (log scale)."""
    from automind.prior import Prior
    from automind.simulators import Simulator, SimulatorSpec

    prior = Prior.load("mk1")
    spec = SimulatorSpec.load("mk1").with_overrides(silent=0.0, runaway=1e12)
    probe = Simulator(spec.with_overrides(duration=1.0))
    thetas = prior.sample(150, seed=11)
    rates = np.array([probe.run(prior.to_simulator(t), seed=1).rate("E") for t in thetas])
    distance = np.abs(np.log10(np.maximum(np.nan_to_num(rates), 1e-3)) - 1.0)
    best = thetas[int(np.argmin(distance))]
    long = Simulator(spec.with_overrides(duration=duration))
    result = long.run(prior.to_simulator(best), seed=1)
    print(f"MK1 {duration:g} s at E {result.rate('E'):.1f} Hz: {result.wall_time:.1f} s "
          f"({result.status})", file=sys.stderr)
    return result.wall_time, result.rate("E")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-duration", type=float, default=200.0)
    args = parser.parse_args()
    data = raster()
    mk1 = get_feature_set("mk1")
    mk1.compute(data)  # warm up
    start = time.perf_counter()
    mk1.compute(data)
    features_s = time.perf_counter() - start
    start = time.perf_counter()
    a = ours(data)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    b = elephant_version(data)
    elephant_s = time.perf_counter() - start
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-9)  # same numbers, or the comparison is void
    sim_s, sim_rate = mk1_simulation_seconds(args.sim_duration)
    print(json.dumps({"spikes": data.n_spikes, "features_s": round(features_s, 3),
                      "mk1_sim_s": round(sim_s, 2), "mk1_sim_rate_hz": round(sim_rate, 2),
                      "fraction_of_sim_time": round(features_s / sim_s, 4),
                      "ours_stats_s": round(ours_s, 3), "elephant_stats_s": round(elephant_s, 3),
                      "speedup_vs_elephant": round(elephant_s / ours_s, 1)}))


if __name__ == "__main__":
    main()
