"""Compile a model structure into a Brian2 ``cpp_standalone`` binary whose every θ is a run argument.

Run as ``python -m automind.simulators.build SPEC_JSON OUT_DIR`` by the engine, in a
fresh process, so Brian2's global device state never leaks between structures and the
parent process never imports Brian2.

What this adds around a model builder:

- a one-neuron controller group holding run-time scalars (stop time, probe window,
  early-stop thresholds) and calling :data:`CONTROL_CPP` every step, which stops the
  network when the requested duration is reached or the probe window shows a silent or
  runaway network;
- per-run seeding from the ``AUTOMIND_SEED`` environment variable (standalone seeds are
  otherwise compile-time constants);
- with ``explicit_graph`` in the structure, a function ``automind_graph(i, j)`` for the builder
  (:data:`GRAPH_CPP`): the weight of the synapse i → j in a dense (N, N) float64 matrix read at
  run time from ``GRAPH_FILE`` in the results folder (0: no synapse), so one binary runs any
  explicit graph of its size;
- an output writer that saves only the spike monitor, recorded state variables and the
  number of steps run, then exits, so the binary never writes its (large) synapse arrays
  (unless ``AUTOMIND_WRITE_CONNECTIVITY`` is set: then it writes each pathway's pre/post
  indices, for inspection and tests).
"""

from __future__ import annotations

import json

import numpy as np
import sys
from pathlib import Path

CONTROL_CPP = r"""
#include "network.h"
#include "objects.h"
double automind_control(double t, double dt, double t_stop, double t_probe, int32_t n_probe,
                        double t_refrac_probe, double silent, double runaway)
{
    static bool probed = false;
    if (t + 1.5 * dt > t_stop) {            // the step just run was the last one requested
        Network::_globally_stopped = true;
        return 1.0;
    }
    if (!probed && t + 1.5 * dt > t_probe) {  // the probe window [0, t_probe) is complete
        probed = true;
        const std::vector<int32_t>& ids = brian::_dynamic_array_spikemon_i;
        const std::vector<double>& times = brian::_dynamic_array_spikemon_t;
        double count = 0;
        for (size_t k = 0; k < ids.size(); k++)
            if (ids[k] < n_probe && times[k] < t_probe - 0.5 * dt) count += 1;
        const double activity = count / (n_probe * t_probe) * t_refrac_probe;
        if (activity < silent || activity > runaway) {
            Network::_globally_stopped = true;
            return 2.0;
        }
    }
    return 0.0;
}
"""

SEED_CPP = r"""
{
    const char* _automind_seed = std::getenv("AUTOMIND_SEED");
    if (_automind_seed == NULL) { std::cerr << "AUTOMIND_SEED is not set" << std::endl; std::exit(3); }
    const unsigned long _seed = std::stoul(_automind_seed);
    brian::_random_generators[0].seed(_seed);
}
"""

WRITE_CPP = r"""
{
    auto write_ints = [](const std::string& name, const std::vector<int32_t>& values) {
        std::ofstream f((brian::results_dir + name).c_str(), std::ios::binary);
        if (!values.empty()) f.write(reinterpret_cast<const char*>(&values[0]), values.size() * sizeof(int32_t));
    };
    write_ints("spikes_i.bin", brian::_dynamic_array_spikemon_i);
    {
        std::ofstream f_t((brian::results_dir + "spikes_t.bin").c_str(), std::ios::binary);
        const std::vector<double>& ts = brian::_dynamic_array_spikemon_t;
        if (!ts.empty()) f_t.write(reinterpret_cast<const char*>(&ts[0]), ts.size() * sizeof(double));
    }
    {
        std::ofstream f_s((brian::results_dir + "steps.txt").c_str());
        f_s << brian::_array_defaultclock_timestep[0] << std::endl;
    }
    {STATE}
    {CONNECTIVITY}
    std::exit(0);
}
"""

CONNECTIVITY_CPP = r"""
    if (std::getenv("AUTOMIND_WRITE_CONNECTIVITY") != NULL) {
        write_ints("SYN_pre.bin", brian::_dynamic_array_SYN__synaptic_pre);
        write_ints("SYN_post.bin", brian::_dynamic_array_SYN__synaptic_post);
    }
"""

#: the explicit graph's matrix W[pre, post] (siemens, float64, row-major), in the results folder
GRAPH_FILE = "automind_graph.bin"
GRAPH_CPP = r"""
#include <fstream>
#include "objects.h"
inline const std::vector<double>& automind_graph_matrix()
{
    static std::vector<double> W;
    if (W.empty()) {
        W.assign((size_t)NUNITS * NUNITS, 0.0);
        std::ifstream f((brian::results_dir + "GRAPHFILE").c_str(), std::ios::binary);
        if (!f.read(reinterpret_cast<char*>(&W[0]), W.size() * sizeof(double))) {
            std::cerr << "cannot read the explicit graph GRAPHFILE (NUNITS x NUNITS float64)"
                      << std::endl;
            std::exit(4);
        }
    }
    return W;
}
double automind_graph(int32_t i, int32_t j)
{
    return automind_graph_matrix()[(size_t)i * NUNITS + j];
}
"""

STATE_CPP = r"""
    {
        DynamicArray2D<double>& rec = brian::_dynamic_array_statemon_VAR;
        std::ofstream f((brian::results_dir + "state_VAR.bin").c_str(), std::ios::binary);
        for (int row = 0; row < rec.n; row++)
            if (!rec(row).empty()) f.write(reinterpret_cast<char*>(&rec(row, 0)), rec.m * sizeof(double));
        f.close();
    }
"""


def graph_function(b2, n: int):
    """``automind_graph(i, j)``: the explicit graph's weight of i → j in siemens (0: none)."""
    graph = b2.Function(lambda i, j: 0.0, arg_units=[1, 1], return_unit=b2.siemens,
                        arg_types=["integer", "integer"], return_type="float")
    graph.implementations.add_implementation(
        "cpp", GRAPH_CPP.replace("NUNITS", str(int(n))).replace("GRAPHFILE", GRAPH_FILE),
        name="automind_graph")
    return graph


def build(spec_dict: dict, structure: dict, out_dir: Path) -> None:
    import brian2 as b2

    from . import MODELS
    from .spec import SimulatorSpec

    spec = SimulatorSpec.from_plain(spec_dict)
    model = MODELS[spec.model]
    b2.set_device("cpp_standalone", directory=str(out_dir), build_on_run=False)
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    b2.prefs.core.default_float_dtype = b2.float64
    b2.defaultclock.dt = spec.dt * b2.second

    control = b2.Function(
        lambda *args: 0.0, arg_units=[b2.second, b2.second, b2.second, b2.second, 1, b2.second, 1, 1],
        return_unit=1, arg_types=["float", "float", "float", "float", "integer", "float", "float",
                                  "float"], return_type="float", stateless=False)
    control.implementations.add_implementation("cpp", CONTROL_CPP, name="automind_control")
    ctl = b2.NeuronGroup(1, """
        t_stop : second (shared, constant)
        t_probe : second (shared, constant)
        n_probe : integer (shared, constant)
        t_refrac_probe : second (shared, constant)
        silent_threshold : 1 (shared, constant)
        runaway_threshold : 1 (shared, constant)
        stop_code : 1 (shared)
        """, name="ctl")

    run_arg_vars: dict[str, tuple] = {}

    def declare_run_args(group, names):
        for name in names:
            var = group.variables[name]
            run_arg_vars[f"{group.name}.{name}"] = (np.dtype(var.dtype).str, int(var.size))

    def begin_run_time_section():
        """Called by the builder after creating its groups, before any connect()."""
        b2.device.apply_run_args()
        b2.device.insert_code("main", SEED_CPP)

    declare_run_args(ctl, ["t_stop", "t_probe", "n_probe", "t_refrac_probe", "silent_threshold",
                           "runaway_threshold"])
    options = {"graph": graph_function(b2, spec.N)} if structure.get("explicit_graph") else {}
    objects = model.build(spec, b2, declare_run_args, begin_run_time_section, **options)
    if not b2.device.run_args_applied:
        raise RuntimeError(f"builder {spec.model} did not call begin_run_time_section()")
    spikemon = b2.SpikeMonitor(objects["neurons"], name="spikemon")
    monitors = [spikemon]
    if spec.record_state:
        monitors.append(b2.StateMonitor(objects["neurons"], list(spec.record_state),
                                        record=range(spec.state_units), name="statemon"))
    ctl.run_regularly(
        "stop_code = automind_control(t, dt, t_stop, t_probe, n_probe, t_refrac_probe, "
        "silent_threshold, runaway_threshold)", when="end", name="ctl_control")
    net = b2.Network(ctl, *monitors, *objects["objects"])
    net.run(spec.max_duration * b2.second, namespace={"automind_control": control})
    state_code = "".join(STATE_CPP.replace("VAR", var) for var in spec.record_state)
    synapses = sorted(o.name for o in objects["objects"] if isinstance(o, b2.Synapses))
    connectivity_code = "".join(CONNECTIVITY_CPP.replace("SYN", name) for name in synapses)
    b2.device.insert_code("main", WRITE_CPP.replace("{STATE}", state_code)
                          .replace("{CONNECTIVITY}", connectivity_code))
    structure = structure | {"synapses": synapses}
    b2.device.build(directory=str(out_dir), compile=True, run=False, clean=False)
    (out_dir / "automind_structure.json").write_text(json.dumps(structure))
    (out_dir / "automind_run_args.json").write_text(json.dumps(run_arg_vars, indent=1))


if __name__ == "__main__":
    request = json.loads(Path(sys.argv[1]).read_text())
    build(request["spec"], request["structure"], Path(sys.argv[2]))
