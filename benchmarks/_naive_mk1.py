"""The reference approach, for benchmarks/simulate.py: build MK1 in Brian2 runtime (Cython)
mode and compile it afresh for one θ, in this fresh process. Prints the run's wall time."""

import json
import sys
import tempfile
import time

import numpy as np


def main(request_file: str) -> None:
    start = time.perf_counter()
    import brian2 as b2

    from automind.simulators import mk1
    from automind.simulators.spec import SimulatorSpec

    request = json.loads(open(request_file).read())
    spec = SimulatorSpec.load("mk1").with_overrides(N=request["N"], dt=request["dt"],
                                                    duration=request["duration"])
    b2.prefs.codegen.target = "cython"
    b2.prefs.codegen.runtime.cython.cache_dir = tempfile.mkdtemp(prefix="naive-cython-")
    b2.defaultclock.dt = spec.dt * b2.second
    args = mk1.run_args(spec, request["params"], np.random.default_rng(request["seed"]))
    b2.seed(request["seed"])
    holder = {}

    def set_values():  # where the engine applies run arguments, set the values directly
        group = holder["G"]
        for name, value in args.items():
            var = name.split(".", 1)[1]
            group.variables[var].set_value(np.asarray(value, dtype=group.variables[var].dtype))

    original = b2.NeuronGroup

    def capture(*a, **k):
        holder["G"] = original(*a, **k)
        return holder["G"]

    b2.NeuronGroup = capture
    objects = mk1.build(spec, b2, lambda group, names: None, set_values)
    b2.NeuronGroup = original
    monitor = b2.SpikeMonitor(objects["neurons"])
    net = b2.Network(monitor, *objects["objects"])
    net.run(spec.duration * b2.second)
    print(json.dumps({"seconds": time.perf_counter() - start, "spikes": int(monitor.num_spikes)}))


if __name__ == "__main__":
    main(sys.argv[1])
