"""The MK1 binary run on an explicit graph (``Simulator(spec, explicit_graph=True)``): on the
builder's own drawn graph and weights it reproduces the builder's spikes exactly (same seed,
same random stream); doubled E→E weights raise the rate as in torch; bad graphs refused."""

import numpy as np
import pytest

from automind.errors import UserError
from automind.rsnn.mk1 import TorchMK1
from automind.rsnn.weights import realise
from automind.simulators import Simulator, SimulatorSpec
from conftest import QUIET_MK1

SPEC = SimulatorSpec.load("mk1").with_overrides(N=40, dt=5e-4, duration=0.3, t_analysis_start=0.05)
#: E→E and I→E, clustered (in-cluster E→E twice as likely and twice as strong): per-synapse
#: weights differ, so the explicit run must get each synapse's own weight
CLUSTERED = QUIET_MK1 | {"p_e2e": 0.2, "p_i2e": 0.3, "n_clusters": 4.0, "R_pe2e": 2.0,
                         "R_Qe2e": 2.0, "E.poisson_rate": 2.0, "E.Q_ge": 1.5e-9, "E.Q_gi": 1e-9}
#: tests/test_rsnn_weights.py's network
THETA = QUIET_MK1 | {"p_e2e": 0.3, "p_i2e": 0.3, "E.poisson_rate": 2.0, "E.Q_ge": 1.5e-9,
                     "E.Q_gi": 1e-9}


@pytest.fixture(scope="module")
def explicit():
    return Simulator(SPEC, explicit_graph=True)


def builder_graph(result, params, seed) -> dict:
    """A Brian2 run's drawn synapses with the builder's weights (torch's rule, the run's
    clusters), as an explicit graph."""
    net = TorchMK1(SPEC).build([params], [seed], imported=[result.connectivity])
    pre, post, q = net["graph"].synapses[0]
    graph = TorchMK1.connectivity(net["graph"], 0, net["exc"][0])
    from_e = net["exc"][0][pre]
    return graph | {"q_exc": q[from_e].numpy(), "q_inh": q[~from_e].numpy()}


@pytest.mark.parametrize("seed", [5, 6])
def test_the_builders_own_graph_reproduces_its_spikes_exactly(explicit, seed):
    drawn = Simulator(SPEC).run(CLUSTERED, seed, connectivity=True)
    graph = builder_graph(drawn, CLUSTERED, seed)
    assert len(np.unique(graph["q_exc"])) == 2  # in- and out-of-cluster E→E weights
    again = explicit.run(CLUSTERED, seed, graph=graph)
    assert drawn.status == again.status == "ok"
    for pop in ("E", "I"):
        assert all(np.array_equal(a, b) for a, b in zip(drawn.spikes[pop], again.spikes[pop]))
    assert len(drawn.spikes["E"][0]) > 200
    # the in-cluster weights matter: all at the out-of-cluster value, the spikes change
    flat = explicit.run(CLUSTERED, seed,
                        graph=graph | {"q_exc": np.full_like(graph["q_exc"], 1.5e-9)})
    assert len(flat.spikes["E"][0]) < len(drawn.spikes["E"][0])


def test_doubled_e_to_e_weights_raise_the_rate_as_in_torch(explicit):
    """On torch's realised graph (weight fits' graphs), 12 seeds each: E rate ~33 Hz, ~73 Hz
    with the E→E weights doubled, in Brian2 and torch alike (means within 3 standard errors)."""
    graph = realise(SPEC, [THETA], [7])[0]
    seeds = list(range(100, 112))
    for graph, low, high in ((graph, 25, 42), (graph | {"q_exc": graph["q_exc"] * 2}, 60, 90)):
        brian = np.array([explicit.run(THETA, s, graph=graph).rate("E") for s in seeds])
        torch_ = np.array([r.rate("E") for r in TorchMK1(SPEC).run_batch(
            [THETA] * len(seeds), seeds, imported=[graph] * len(seeds))])
        assert low < brian.mean() < high, brian
        se = np.sqrt((brian.var(ddof=1) + torch_.var(ddof=1)) / len(seeds))
        assert abs(brian.mean() - torch_.mean()) < 3 * se, (brian.mean(), torch_.mean(), se)


def test_graphs_that_do_not_fit_are_refused(explicit):
    graph = realise(SPEC, [THETA], [7])[0]
    (pre, post), n_e = graph["syn_exc"], 32
    bad = {"I pre in syn_exc": graph | {"syn_exc": (np.r_[pre[:-1], n_e], np.r_[post[:-1], 0])},
           "autapse": graph | {"syn_exc": (np.r_[pre[:-1], 3], np.r_[post[:-1], 3])},
           "twice": graph | {"syn_exc": (np.r_[pre[:-1], pre[0]], np.r_[post[:-1], post[0]])}}
    for g in bad.values():
        with pytest.raises(UserError, match="outside its pathway"):
            explicit.run(THETA, 1, graph=g)
    with pytest.raises(UserError, match="finite and >= 0"):
        explicit.run(THETA, 1, graph=graph | {"q_inh": -graph["q_inh"]})
    with pytest.raises(UserError, match="differ in length"):
        explicit.run(THETA, 1, graph=graph | {"q_exc": graph["q_exc"][1:]})
    with pytest.raises(UserError, match="explicit-graph simulator"):
        explicit.run(THETA, 1)
    with pytest.raises(UserError, match="explicit-graph simulator"):
        Simulator(SPEC).run(THETA, 1, graph=graph)
    with pytest.raises(UserError, match="cannot run on an explicit graph"):
        Simulator(SimulatorSpec.load("brunel"), explicit_graph=True)
