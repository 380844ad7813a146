"""MK1: the adaptive (AdEx), clustered E/I network of AutoMIND (see ``shared/spec/mk1-model.md``).

One NeuronGroup holds all N neurons; which are excitatory (the first N_E), every
intrinsic parameter, cluster membership and external drive are per-neuron run
arguments, and connection probabilities are shared run arguments read before
``connect()``. So any θ of the prior, including ``exc_prop`` and ``n_clusters``, runs
on the same compiled binary.

``reference_quirks = true`` reproduces the public reference code where it differs from
the model as published: slot-wise cluster membership, v_cut frozen at -40 mV, E's ΔT
used for I too, and igniters taken as the first block of E indices.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError

populations = ("E", "I")
#: Variables a spec may record with record.state.
state_variables = ("v", "w", "g_e", "g_i")

#: Fixed (not inferred) settings a spec must give; I.* are the inhibitory intrinsics.
I_INTRINSICS = ("C", "g_L", "v_rest", "v_thresh", "delta_T", "a", "b", "tau_w", "v_reset",
                "t_refrac", "tau_ge", "tau_gi", "E_gi")
required_fixed = ("N_poisson", "Q_poisson", "I_bias", "E_ge", "delay", "clusters_per_neuron",
                  "v_init_sd") + tuple(f"I.{k}" for k in I_INTRINSICS)
#: Fixed settings that are compiled into the binary (the rest are run arguments).
compile_time_fixed = ("delay",)
#: Prior parameter names this model reads (the mk1 prior).
theta_names = ("exc_prop", "p_e2e", "p_e2i", "p_i2e", "p_i2i", "R_pe2e", "R_Qe2e", "p_igniters",
               "n_clusters", "E.C", "E.g_L", "E.v_rest", "E.v_thresh", "E.v_reset", "E.t_refrac",
               "E.delta_T", "E.a", "E.b", "E.tau_w", "E.E_gi", "E.Q_ge", "E.Q_gi", "E.tau_ge",
               "E.tau_gi", "E.poisson_rate", "I.Q_ge", "I.Q_gi", "I.poisson_rate")

#: Per-neuron parameters set at run time, from E.* (θ) for E neurons and I.* for I neurons.
PER_NEURON = ("C", "g_L", "v_rest", "v_thresh", "v_reset", "t_refrac", "delta_T", "a", "b",
              "tau_w", "E_gi", "tau_ge", "tau_gi", "Q_ge", "Q_gi")
FROZEN_V_CUT = -0.040  # V; the reference code's v_thresh + 5 ΔT from defaults

EQUATIONS = """
dv/dt = (g_L*(v_rest - v) + g_L*delta_T*exp(clip((v - v_thresh)/dT_safe, -50, 30)) - w
         + g_e*(E_ge - v) + g_i*(E_gi - v) + I_bias) / C : volt (unless refractory)
dT_safe = delta_T + mV*int(delta_T <= 0*mV) : volt
dw/dt = (a*(v - v_rest) - w) / tau_w : amp
dg_e/dt = -g_e / tau_ge : siemens
dg_i/dt = -g_i / tau_gi : siemens
C : farad (constant)
g_L : siemens (constant)
v_rest : volt (constant)
v_thresh : volt (constant)
v_reset : volt (constant)
v_cut : volt (constant)
t_refrac : second (constant)
delta_T : volt (constant)
a : siemens (constant)
b : amp (constant)
tau_w : second (constant)
E_gi : volt (constant)
tau_ge : second (constant)
tau_gi : second (constant)
Q_ge : siemens (constant)
Q_gi : siemens (constant)
exc : integer (constant)
c1 : integer (constant)
c2 : integer (constant)
lambda_ext : 1 (constant)
E_ge : volt (shared, constant)
I_bias : amp (shared, constant)
Q_poisson : siemens (shared, constant)
v_init_sd : volt (shared, constant)
p_e2e : 1 (shared, constant)
p_e2i : 1 (shared, constant)
p_i2e : 1 (shared, constant)
p_i2i : 1 (shared, constant)
R_pe2e : 1 (shared, constant)
R_Qe2e : 1 (shared, constant)
slotwise : integer (shared, constant)
"""
SHARED = ("E_ge", "I_bias", "Q_poisson", "v_init_sd", "p_e2e", "p_e2i", "p_i2e", "p_i2i",
          "R_pe2e", "R_Qe2e", "slotwise")

# Two E neurons are in-cluster when their 2-cluster sets intersect (slot-wise under quirks).
IN_CLUSTER = ("int(c1_pre == c1_post or c2_pre == c2_post or "
              "(slotwise_pre == 0 and (c1_pre == c2_post or c2_pre == c1_post)))")


def check_spec(spec) -> None:
    if spec.fixed["clusters_per_neuron"] != 2:
        raise UserError("mk1: clusters_per_neuron must be 2 (the published model)")
    if spec.fixed["delay"] < 0:
        raise UserError("mk1: delay must be >= 0")


def build(spec, b2, declare_run_args, begin_run_time_section, graph=None) -> dict:
    """Create the Brian2 objects (standalone device already active). ``graph``: a Brian2
    function (i, j) -> weight (``build.graph_function``) that replaces the drawn graph and its
    weights (0: no synapse); its p is 0 or 1 but still compared with one rand() per candidate
    pair, so the random stream after the graph (initial v, drive) is the drawn builder's."""
    G = b2.NeuronGroup(spec.N, EQUATIONS, threshold="v > v_cut", reset="v = v_reset; w += b",
                       refractory="t_refrac", method="euler", name="neurons")
    declare_run_args(G, PER_NEURON + ("v_cut", "exc", "c1", "c2", "lambda_ext") + SHARED)
    begin_run_time_section()
    # External drive: N_poisson sources at rate r add Poisson(N_poisson r dt) quanta per step.
    G.run_regularly("g_e += Q_poisson * poisson(lambda_ext)", when="before_synapses",
                    name="neurons_drive")
    pathways = {  # name: (on_pre, condition, p, q), as drawn by the builder
        "syn_exc": ("g_e_post += q", "exc_pre == 1 and i != j",
                    f"exc_post * p_e2e_pre * (1 + (R_pe2e_pre - 1) * {IN_CLUSTER})"
                    " + (1 - exc_post) * p_e2i_pre",
                    f"Q_ge_post * (1 + (R_Qe2e_pre - 1) * exc_post * {IN_CLUSTER})"),
        "syn_inh": ("g_i_post += q", "exc_pre == 0 and i != j",
                    "exc_post * p_i2e_pre + (1 - exc_post) * p_i2i_pre", "Q_gi_post")}
    synapses = []
    for name, (on_pre, condition, p, q) in pathways.items():
        if graph is not None:
            p, q = "int(automind_graph(i, j) > 0*siemens)", "automind_graph(i, j)"
        syn = b2.Synapses(G, G, "q : siemens", on_pre=on_pre, name=name,
                          namespace=None if graph is None else {"automind_graph": graph})
        syn.connect(condition=condition, p=p)
        syn.q = q
        if spec.fixed["delay"] > 0:
            syn.delay = spec.fixed["delay"] * b2.second
        synapses.append(syn)
    G.v = "v_rest + v_init_sd * randn()"
    return {"neurons": G, "objects": [G, *synapses]}


def n_excitatory(N: int, exc_prop: float) -> int:
    """N_E = round(N exc_prop), kept in [1, N-1] so both populations exist."""
    return min(max(int(math.floor(N * exc_prop + 0.5)), 1), N - 1)


def layout(spec, params: dict) -> dict[str, tuple[int, int]]:
    """Neuron index range [start, stop) of each population for this θ."""
    n_e = n_excitatory(spec.N, params["exc_prop"])
    return {"E": (0, n_e), "I": (n_e, spec.N)}


def probe(spec, params: dict) -> tuple[int, float]:
    """(neurons watched by the early-stop probe = E, their refractory period)."""
    return layout(spec, params)["E"][1], params["E.t_refrac"]


def graph_matrix(spec, params: dict, graph: dict) -> np.ndarray:
    """(N, N) weights W[pre, post] (siemens) of an explicit graph {"syn_exc" | "syn_inh": (pre,
    post), "q_exc" | "q_inh": weights} for the explicit-graph binary; refuses synapses the
    builder's pathways cannot hold (E pre in syn_exc, I pre in syn_inh, no autapses, none
    twice) and weights that are not finite and ≥ 0 (a weight 0 acts as no synapse)."""
    N, n_e = spec.N, layout(spec, params)["E"][1]
    W = np.zeros((N, N))
    for key in ("exc", "inh"):
        pre, post = (np.asarray(a, np.int64) for a in graph[f"syn_{key}"])
        q = np.asarray(graph[f"q_{key}"], float)
        if not len(pre) == len(post) == len(q):
            raise UserError(f"mk1 graph: syn_{key} and q_{key} differ in length")
        inside = (pre >= 0) & (post >= 0) & (pre < N) & (post < N) & (pre != post)
        if not (inside & ((pre < n_e) if key == "exc" else (pre >= n_e))).all() \
                or len(np.unique(pre * N + post)) < len(pre):
            raise UserError(f"mk1 graph: syn_{key} holds synapses outside its pathway (N {N}, "
                            f"{n_e} excitatory) or autapses or one synapse twice")
        if not (np.isfinite(q).all() and (q >= 0).all()):
            raise UserError(f"mk1 graph: q_{key} must be finite and >= 0")
        W[pre, post] = q
    return W


def cluster_ids(n_exc: int, n_total: int, n_clusters: float, R_pe2e: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two distinct clusters per E neuron, drawn uniformly; unique negative ids otherwise."""
    c1 = -(2 * np.arange(n_total, dtype=np.int32) + 1)
    c2 = c1 - 1
    k = int(math.floor(n_clusters))
    if k >= 2 and R_pe2e > 1:
        draws = np.argsort(rng.random((n_exc, k)), axis=1)[:, :2].astype(np.int32)
        c1[:n_exc], c2[:n_exc] = draws[:, 0], draws[:, 1]
    return c1, c2


def run_args(spec, params: dict, rng: np.random.Generator) -> dict:
    """θ (SI floats by prior name) -> {"group.var": value} for the compiled binary."""
    N, fixed, quirks = spec.N, spec.fixed, spec.reference_quirks
    n_e = layout(spec, params)["E"][1]
    is_e = np.arange(N) < n_e
    e_values = {k: params[f"E.{k}"] for k in PER_NEURON}
    i_values = {k: fixed[f"I.{k}"] for k in I_INTRINSICS}
    i_values |= {"Q_ge": params["I.Q_ge"], "Q_gi": params["I.Q_gi"]}
    if quirks:
        i_values["delta_T"] = e_values["delta_T"]
    args = {f"neurons.{k}": np.where(is_e, e_values[k], i_values[k]) for k in PER_NEURON}
    v_cut = np.where(is_e, e_values["v_thresh"] + 5 * e_values["delta_T"],
                     i_values["v_thresh"] + 5 * i_values["delta_T"])
    args["neurons.v_cut"] = np.full(N, FROZEN_V_CUT) if quirks else v_cut
    args["neurons.exc"] = is_e.astype(np.int32)
    c1, c2 = cluster_ids(n_e, N, params["n_clusters"], params["R_pe2e"], rng)
    args["neurons.c1"], args["neurons.c2"] = c1, c2
    n_igniters = int(math.floor(params["p_igniters"] * n_e + 0.5))
    igniters = np.arange(n_igniters) if quirks else rng.choice(n_e, n_igniters, replace=False)
    rate = np.where(is_e, 0.0, params["I.poisson_rate"])
    rate[igniters] = params["E.poisson_rate"]
    args["neurons.lambda_ext"] = fixed["N_poisson"] * rate * spec.dt
    for k in ("p_e2e", "p_e2i", "p_i2e", "p_i2i", "R_pe2e", "R_Qe2e"):
        args[f"neurons.{k}"] = params[k]
    args |= {"neurons.E_ge": fixed["E_ge"], "neurons.I_bias": fixed["I_bias"],
             "neurons.Q_poisson": fixed["Q_poisson"], "neurons.v_init_sd": fixed["v_init_sd"],
             "neurons.slotwise": int(quirks)}
    return args
