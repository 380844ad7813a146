"""Brunel (2000) sparse network of LIF neurons with delta synapses (J Comput Neurosci 8:183).

Free parameters (run arguments): g (relative inhibition) and nu_ext = ν_ext/ν_thr. The
in-degree C_E is kept at its published value when N is reduced (connection probability
C_E / N_E), which is what keeps Brunel's four regimes at small N.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError

populations = ("E", "I")
state_variables = ("v",)
required_fixed = ("tau_m", "theta", "v_reset", "t_refrac", "J", "delay", "exc_fraction", "C_E")
compile_time_fixed = ("delay", "exc_fraction")
theta_names = ("g", "nu_ext")

EQUATIONS = """
dv/dt = -v / tau_m : volt (unless refractory)
tau_m : second (shared, constant)
theta : volt (shared, constant)
v_reset : volt (shared, constant)
t_refrac : second (shared, constant)
J : volt (shared, constant)
g : 1 (shared, constant)
p_conn : 1 (shared, constant)
lambda_ext : 1 (shared, constant)
"""
SHARED = ("tau_m", "theta", "v_reset", "t_refrac", "J", "g", "p_conn", "lambda_ext")


def check_spec(spec) -> None:
    n_e = n_excitatory(spec)
    if not 1 <= n_e < spec.N:
        raise UserError("brunel: exc_fraction must leave at least one E and one I neuron")
    if spec.fixed["C_E"] > n_e:
        raise UserError(f"brunel: in-degree C_E = {spec.fixed['C_E']:g} needs N_E >= C_E, but "
                        f"N = {spec.N} gives N_E = {n_e}; raise N or lower C_E")
    if spec.fixed["delay"] < spec.dt:
        raise UserError("brunel: delay must be at least one time step")


def n_excitatory(spec) -> int:
    return int(math.floor(spec.N * spec.fixed["exc_fraction"] + 0.5))


def build(spec, b2, declare_run_args, begin_run_time_section) -> dict:
    G = b2.NeuronGroup(spec.N, EQUATIONS, threshold="v > theta", reset="v = v_reset",
                       refractory="t_refrac", method="exact", name="neurons")
    declare_run_args(G, SHARED)
    begin_run_time_section()
    # A refractory neuron is insensitive to input (Brunel 2000, section 2).
    G.run_regularly("v += J * poisson(lambda_ext) * int(not_refractory)", when="before_synapses",
                    name="neurons_drive")
    n_e = n_excitatory(spec)
    exc_syn = b2.Synapses(G[:n_e], G, on_pre="v_post += J_post * int(not_refractory_post)",
                          delay=spec.fixed["delay"] * b2.second, name="syn_exc")
    exc_syn.connect(p="p_conn_post")
    inh_syn = b2.Synapses(G[n_e:], G, on_pre="v_post += -g_post * J_post * int(not_refractory_post)",
                          delay=spec.fixed["delay"] * b2.second, name="syn_inh")
    inh_syn.connect(p="p_conn_post")
    G.v = "theta * rand()"
    return {"neurons": G, "objects": [G, exc_syn, inh_syn]}


def layout(spec, params: dict) -> dict[str, tuple[int, int]]:
    n_e = n_excitatory(spec)
    return {"E": (0, n_e), "I": (n_e, spec.N)}


def probe(spec, params: dict) -> tuple[int, float]:
    return n_excitatory(spec), spec.fixed["t_refrac"]


def threshold_rate(spec) -> float:
    """ν_thr = θ / (C_E J τ_m): the external rate that alone brings v to threshold."""
    f = spec.fixed
    return f["theta"] / (f["C_E"] * f["J"] * f["tau_m"])


def run_args(spec, params: dict, rng: np.random.Generator) -> dict:
    f = spec.fixed
    c_ext = f["C_E"]  # as many external sources as excitatory inputs (Brunel's C_ext = C_E)
    args = {f"neurons.{k}": f[k] for k in ("tau_m", "theta", "v_reset", "t_refrac", "J")}
    args["neurons.g"] = params["g"]
    args["neurons.p_conn"] = f["C_E"] / n_excitatory(spec)
    args["neurons.lambda_ext"] = c_ext * params["nu_ext"] * threshold_rate(spec) * spec.dt
    return args


def reduced_spec(N: int, C_E: int, duration: float, t_analysis_start: float, **changes):
    """The Brunel spec at another size and in-degree (demo, studies, tests): the regimes
    move when C_E / N_E departs from the published 0.5."""
    from .spec import SimulatorSpec

    spec = SimulatorSpec.load("brunel")
    return spec.with_overrides(N=N, duration=duration, t_analysis_start=t_analysis_start,
                               fixed=spec.fixed | {"C_E": C_E}, **changes)
