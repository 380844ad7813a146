"""fit_weights: per-synapse weights of a realised graph fitted with exponentiated Adam; a target
made by doubling the E→E weights is reached, no weight changes sign, zeros stay zero."""

import numpy as np
import pytest
import torch

from automind.prior import Prior
from automind.rsnn import weights as W
from automind.rsnn.mk1 import TorchMK1
from automind.simulators import SimulatorSpec
from conftest import QUIET_MK1

SPEC = SimulatorSpec.load("mk1").with_overrides(N=40, dt=5e-4, duration=0.3, t_analysis_start=0.05)
#: E→E and I→E pathways (the I neurons get no input and stay silent); E rate ~23 Hz, ~52 Hz
#: with the E→E weights doubled
THETA = QUIET_MK1 | {"p_e2e": 0.3, "p_i2e": 0.3, "E.poisson_rate": 2.0, "E.Q_ge": 1.5e-9,
                     "E.Q_gi": 1e-9}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def log_rates(graphs, seed):
    runs = W.resimulate_weights(SPEC, [THETA] * len(graphs), graphs, seed, "spikes")
    assert all(r.status == "ok" for r in runs)
    return np.log10([r.features["spikes"][0] for r in runs])


def test_realised_graph_is_the_drawn_graph_and_dense_equals_event():
    graph = W.realise(SPEC, [THETA], [7])[0]
    drawn = TorchMK1(SPEC).run_batch([THETA], [7], connectivity=True)[0].connectivity
    for key in ("syn_exc", "syn_inh"):
        assert all(np.array_equal(a, b) for a, b in zip(graph[key], drawn[key]))
    assert np.allclose(graph["q_exc"], 1.5e-9) and np.allclose(graph["q_inh"], 1e-9)
    assert len(graph["syn_exc"][0]) > 200 and len(graph["syn_inh"][0]) > 40
    S = W.to_signed(SPEC, [graph])
    assert (S[0, :32] >= 0).all() and (S[0, 32:] <= 0).all()  # Dale: E rows +, I rows −
    back = W.from_signed([graph], S)[0]
    assert np.array_equal(back["q_exc"], graph["q_exc"]) and np.array_equal(back["q_inh"], graph["q_inh"])
    # the dense differentiable run on |S| = the event run on the graph, spike for spike
    sign = torch.as_tensor(W.exc_flags(SPEC, THETA), dtype=torch.float64)[None, :, None] * 2 - 1
    z, _ = TorchMK1(SPEC, propagation="dense").run_differentiable(
        [THETA], [5], SPEC.duration, trainable=(), weights=S * sign)
    event = TorchMK1(SPEC).run_batch([THETA], [5], imported=[graph])[0]
    dense = z[0].detach().nonzero().numpy()
    times = np.concatenate([event.spikes["E"][0], event.spikes["I"][0]])
    ids = np.concatenate([event.spikes["E"][1], event.spikes["I"][1] + 32])
    order = np.lexsort((ids, times))
    assert len(dense) == len(times) > 100
    assert np.array_equal(dense[:, 0], np.round(times[order] / SPEC.dt).astype(int))
    assert np.array_equal(dense[:, 1], ids[order])


def test_weight_fit_reaches_doubled_e_to_e_weights_without_sign_flips():
    graph = W.realise(SPEC, [THETA], [7])[0]
    doubled = graph | {"q_exc": graph["q_exc"] * 2}
    target = float(log_rates([doubled] * 4, 11).mean())
    assert target - log_rates([graph] * 4, 11).mean() > 0.3  # the target is far from the start
    result = W.fit_weights(SPEC, Prior.load("mk1"), [THETA], [graph], {"rate_mean": target},
                           {"rate_mean": 0.03}, steps=40, lr=0.05, seed=3)
    assert result.status == ["ok"]
    assert result.loss[0, 0] > 50 and np.mean(result.loss[-10:, 0]) < 3  # d² ~ 1: the noise floor
    fitted, start = W.to_signed(SPEC, result.fitted), W.to_signed(SPEC, [graph])
    assert torch.equal(fitted != 0, start != 0)                        # zeros stay zero
    assert torch.equal(torch.sign(fitted), torch.sign(start))          # no sign flips
    ratio = result.fitted[0]["q_exc"] / graph["q_exc"]
    assert 1.7 < ratio.mean() < 2.3, ratio.mean()
    # the I neurons never fire, so their weights get no gradient and do not move
    assert np.allclose(result.fitted[0]["q_inh"], graph["q_inh"])
    again = log_rates([result.fitted[0]] * 4, 12)
    assert abs(again.mean() - target) < 2 * 0.03, (again, target)


def test_an_interrupted_weight_fit_resumes_from_its_checkpoint_exactly(tmp_path):
    """Checkpoints every 3 steps; killed during step 9 (after step 8's checkpoint, inside the last
    quarter) and run again, the weight fit equals the uninterrupted one: weights, loss curve,
    ExpAdam's state and the last quarter's log-sum carry over."""
    from automind.errors import UserError

    graph = W.realise(SPEC, [THETA], [7])[0]
    args = (SPEC, Prior.load("mk1"), [THETA], [graph], {"rate_mean": 1.6}, {"rate_mean": 0.03})
    options = dict(steps=10, lr=0.05, seed=3, duration=0.15)
    whole = W.fit_weights(*args, **options)

    def killed(step, losses):
        if step == 9:
            raise KeyboardInterrupt

    file = tmp_path / "checkpoint.npz"
    with pytest.raises(KeyboardInterrupt):
        W.fit_weights(*args, **options, checkpoint=file, checkpoint_every=3, progress=killed)
    assert int(np.load(file)["step"]) == 8
    ran = []
    resumed = W.fit_weights(*args, **options, checkpoint=file, checkpoint_every=3,
                            progress=lambda step, losses: ran.append(step))
    assert ran == [9]  # from the checkpoint on
    np.testing.assert_array_equal(resumed.loss, whole.loss)
    for key in ("q_exc", "q_inh"):
        np.testing.assert_array_equal(resumed.fitted[0][key], whole.fitted[0][key])
    assert not np.array_equal(whole.fitted[0]["q_exc"], graph["q_exc"])  # the fit moved them
    with pytest.raises(UserError, match="checkpoint of another fit"):
        W.fit_weights(*args, **(options | {"steps": 12}), checkpoint=file)
