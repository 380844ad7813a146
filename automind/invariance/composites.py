"""Composite MK1 parameters: combinations a consistent set may keep constant while its raw
parameters vary (from the reference analysis; ``../shared/spec/invariance.md``).

Inputs are in the prior's units (pF, nS, mV, ms, Hz). Quantal "charges" are conductance
integrals Q·τ (nS·ms; times a driving force they give the charge); budgets multiply them by
the expected in-degree, so budget × presynaptic rate (kHz) is the mean synaptic
conductance (nS). The network size N comes from the simulator spec.
"""

from __future__ import annotations

from math import comb

import numpy as np

#: name -> (unit, description)
COMPOSITES = {
    "tau_m": ("ms", "membrane time constant E.C / E.g_L"),
    "gap_thresh": ("mV", "E.v_thresh - E.v_rest"),
    "gap_reset": ("mV", "E.v_reset - E.v_rest"),
    "gap_inhibition": ("mV", "E.E_gi - E.v_rest (inhibitory driving force at rest)"),
    "charge_e2e": ("nS·ms", "E.Q_ge · E.tau_ge, quantal excitatory conductance integral onto E"),
    "charge_i2e": ("nS·ms", "E.Q_gi · E.tau_gi, quantal inhibitory conductance integral onto E"),
    "indegree_e2e": ("1", "expected E→E in-degree, p_e2e · N_E with the in-cluster boost"),
    "indegree_i2e": ("1", "expected I→E in-degree, p_i2e · N_I"),
    "budget_e2e": ("nS·ms", "charge_e2e × in-degree (in-cluster pairs weighted by R_Qe2e)"),
    "budget_i2e": ("nS·ms", "charge_i2e × indegree_i2e"),
    "budget_ratio": ("1", "budget_i2e / budget_e2e: inhibitory over excitatory budget"),
    "drive_e": ("nS", "mean external conductance of E: poisson_rate · N_poisson · Q_poisson · "
                      "E.tau_ge · p_igniters"),
}


def shared_cluster_fraction(n_clusters, per_neuron: int = 2) -> np.ndarray:
    """Probability that two E neurons, each in ``per_neuron`` of ``n_clusters`` clusters
    drawn at random, share at least one cluster."""
    n = np.maximum(np.floor(np.asarray(n_clusters, dtype=float)), per_neuron).astype(int)
    return np.array([1 - comb(k - per_neuron, per_neuron) / comb(k, per_neuron) for k in n.ravel()]
                    ).reshape(n.shape)


def mk1_composites(theta: np.ndarray, names: list[str], N: int, N_poisson: int = 500,
                   Q_poisson_nS: float = 1.0) -> dict[str, np.ndarray]:
    """Composite parameters of θ rows (prior units) as {name: values (n,)}."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    p = {name: theta[:, k] for k, name in enumerate(names)}
    n_e = np.round(N * p["exc_prop"])
    n_i = N - n_e
    in_cluster = shared_cluster_fraction(p["n_clusters"])
    indegree_e2e = p["p_e2e"] * n_e * (1 + (p["R_pe2e"] - 1) * in_cluster)
    weighted_e2e = p["p_e2e"] * n_e * (1 + (p["R_pe2e"] * p["R_Qe2e"] - 1) * in_cluster)
    charge_e2e = p["E.Q_ge"] * p["E.tau_ge"]
    charge_i2e = p["E.Q_gi"] * p["E.tau_gi"]
    out = {
        "tau_m": p["E.C"] / p["E.g_L"],                  # pF / nS = ms
        "gap_thresh": p["E.v_thresh"] - p["E.v_rest"],
        "gap_reset": p["E.v_reset"] - p["E.v_rest"],
        "gap_inhibition": p["E.E_gi"] - p["E.v_rest"],
        "charge_e2e": charge_e2e, "charge_i2e": charge_i2e,
        "indegree_e2e": indegree_e2e, "indegree_i2e": p["p_i2e"] * n_i,
        "budget_e2e": charge_e2e * weighted_e2e,
        "budget_i2e": charge_i2e * p["p_i2e"] * n_i,
        "drive_e": p["E.poisson_rate"] * N_poisson * Q_poisson_nS * p["E.tau_ge"] * 1e-3
                   * p["p_igniters"],                    # Hz · nS · ms = 1e-3 nS
    }
    out["budget_ratio"] = out["budget_i2e"] / out["budget_e2e"]
    return out


def composite_spread(theta_set: np.ndarray, prior, N: int, seed: int = 0) -> dict[str, float]:
    """For each composite: sd of its log over the set / sd of its log under the prior
    (10,000 prior draws). Near 0: the set keeps it constant; near 1: left free."""
    names = prior.names
    in_set = mk1_composites(theta_set, names, N)
    under_prior = mk1_composites(prior.sample(10000, seed=seed), names, N)

    def log_sd(values):
        values = np.asarray(values, float)
        return np.std(np.log(np.abs(values[np.abs(values) > 0])))

    return {name: float(log_sd(in_set[name]) / log_sd(under_prior[name])) for name in COMPOSITES}
