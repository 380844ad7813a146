"""The slow-inhibition limit (``cheap/inhibition.py``): the inhibitory conductance's
distribution against the generalized Dickman law, its quadrature nodes, and the blend's
limits."""

import numpy as np
import pytest
from scipy.special import gamma

from automind.cheap.baseline import AnalyticPhi
from automind.cheap.inhibition import (EVENTS, _node_table, conductance_nodes,
                                       conductance_samples, slow_inhibition_rate, table_rate)
from automind.cheap.moments import Neuron, source


def test_filtered_poisson_conductance_follows_the_generalized_dickman_law():
    """Known answer: X = Σ e^{−T_k} over Poisson arrivals at rate n has P(X ≤ x) =
    e^{−γn} xⁿ / Γ(n + 1) for x ≤ 1, mean n and variance n/2 (Campbell)."""
    x = conductance_samples()
    for k, n in enumerate(EVENTS):
        if n <= 3:
            for at in (0.3, 0.8):
                exact = np.exp(-np.euler_gamma * n) * at ** n / gamma(n + 1)
                assert np.mean(x[:, k] <= at) == pytest.approx(exact, abs=0.025)
        if n >= 0.3:  # below, the mean rests on a few rare draws
            assert x[:, k].mean() == pytest.approx(n, rel=0.05)
            assert x[:, k].var() == pytest.approx(n / 2, rel=0.15)


def test_nodes_keep_the_mean_conductance_and_are_ordered():
    nodes = _node_table()
    assert np.allclose(nodes.mean(axis=1), 1.0)
    assert np.all(np.diff(nodes, axis=1) >= 0)
    # many events: a narrow distribution around the mean (sd √(1/2n) of it); none: no spread
    assert np.ptp(conductance_nodes(100.0)) < 0.3
    assert np.array_equal(conductance_nodes(np.inf), np.ones(nodes.shape[1]))


def _neuron(tau_i):
    return Neuron(C=np.array(150e-12), g_L=np.array(10e-9), v_rest=np.array(-0.065),
                  v_thresh=np.array(-0.05), v_reset=np.array(-0.065), t_refrac=np.array(2e-3),
                  delta_T=np.array(2e-3), a=np.array(0.0), b=np.array(0.0),
                  tau_w=np.array(0.1), tau_e=np.array(3e-3), tau_i=np.array(tau_i),
                  E_e=np.array(0.0), E_i=np.array(-0.08))


def test_the_blend_keeps_the_table_where_inhibition_is_fast_or_absent():
    """Limits: no inhibitory input → the table's rate; a fast synapse (κ_i → 0) → the table's
    rate. (Against Brian2 neurons: tests/test_cheap_reduction.py.)"""
    table = AnalyticPhi()
    excite = source(6000.0, 1e-9, True)
    for neuron, drive in ((_neuron(10e-3), excite),
                          (_neuron(1e-7), excite + source(300.0, 12e-9, False))):
        rate, mom = table_rate(table, neuron, drive, 0.0)[:2]
        assert 0 < rate < 1 / 2e-3
        assert slow_inhibition_rate(table, neuron, drive, 0.0, rate, mom) == pytest.approx(
            rate, rel=1e-3)


def test_slow_inhibition_is_refused_for_a_model_without_conductances():
    from automind.cheap.screen import CheapModel
    from automind.errors import UserError
    from automind.simulators import SimulatorSpec

    with pytest.raises(UserError, match="conductance synapses"):
        CheapModel.for_spec(SimulatorSpec.load("brunel"), table="analytic", slow_inhibition=True)
