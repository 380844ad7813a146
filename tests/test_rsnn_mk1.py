"""TorchMK1 against the Brian2 builder, the arbiter (spec rsnn.md §2, X1-X3): identical spike
steps for single neurons, Campbell's theorem on the drive, pathway counts, and the
per-neuron arrays, statuses and seeds of ``Simulator.run``."""

import math

import numpy as np
import pytest
import torch

from automind.errors import UserError
from automind.rsnn.mk1 import TorchMK1, last_step
from automind.rsnn.network import element_structure
from automind.simulators import Simulator, SimulatorSpec, mk1
from conftest import quiet_mk1

BIASES = (0.1e-9, 0.3e-9, 0.6e-9, 1.0e-9)
ACTIVE = quiet_mk1(p_e2e=0.05, p_e2i=0.1, p_i2e=0.15, p_i2i=0.15, n_clusters=4.0, R_pe2e=2.5,
                   R_Qe2e=1.5, p_igniters=0.5, **{"E.poisson_rate": 4.0, "I.poisson_rate": 3.0,
                                                  "E.Q_ge": 2e-9, "E.Q_gi": 3e-9})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fi_spec(dt, bias):
    spec = SimulatorSpec.load("mk1").with_overrides(N=2, dt=dt, duration=0.3)
    return spec.with_overrides(fixed=spec.fixed | {"I_bias": bias, "v_init_sd": 0.0})


def spike_steps(result, dt):
    return {pop: np.round(result.spikes[pop][0] / dt).astype(int) for pop in ("E", "I")}


def compare_fi(dt, dtype, biases=BIASES):
    """(spike pairs compared, off by one step, mismatched counts) over biases and ΔT ∈ {2, 0} mV."""
    compared = off = mismatched = 0
    for delta_T in (2e-3, 0.0):
        params = quiet_mk1(**{"E.delta_T": delta_T})
        for bias in biases:
            spec = fi_spec(dt, bias)
            brian = spike_steps(Simulator(spec).run(params, seed=1), dt)
            torch_ = spike_steps(TorchMK1(spec, dtype=dtype).run_batch([params], [1])[0], dt)
            for pop in ("E", "I"):
                a, b = brian[pop], torch_[pop]
                if len(a) != len(b):
                    mismatched += 1
                    continue
                compared += len(a)
                assert np.abs(a - b).max(initial=0) <= 1, (pop, bias, delta_T)
                off += int(np.count_nonzero(a != b))
    return compared, off, mismatched


def test_x1_fi_spike_steps_identical_to_brian2():
    compared, off, mismatched = compare_fi(2e-4, torch.float64)
    assert compared > 150 and mismatched == 0
    assert off <= 0.01 * compared


def test_x5_fi_float32_as_float64():
    compared, off, mismatched = compare_fi(2e-4, torch.float32, biases=(0.3e-9, 1.0e-9))
    assert mismatched == 0 and off <= 0.01 * compared


@pytest.mark.slow
def test_x1_fi_fine_time_step():
    compared, off, mismatched = compare_fi(1e-5, torch.float64)
    assert compared > 150 and mismatched == 0
    assert off <= 0.01 * compared


def test_x2_drive_conductance_obeys_campbell():
    rate, tau, Q, n_src = 4.0, 5e-3, 1e-9, 500
    spec = SimulatorSpec.load("mk1").with_overrides(N=200, duration=1.0, record_state=("g_e",),
                                                    state_units=200)
    params = quiet_mk1(**{"E.poisson_rate": rate, "I.poisson_rate": rate})
    result = TorchMK1(spec).run_batch([params], [3])[0]
    g = result.state["g_e"][int(0.1 / spec.dt):]  # past the 5 τ transient
    assert g.mean() == pytest.approx(Q * n_src * rate * tau, rel=0.02)
    assert g.var(axis=0).mean() == pytest.approx(Q ** 2 * n_src * rate * tau / 2, rel=0.05)


def expected_counts(structure, params):
    """{pathway: (expected synapses, binomial sd)} from the element's E flags and clusters."""
    exc, c1, c2 = structure["exc"], structure["c1"], structure["c2"]
    same = (c1[:, None] == c1[None, :]) | (c2[:, None] == c2[None, :]) \
        | (c1[:, None] == c2[None, :]) | (c2[:, None] == c1[None, :])
    off = ~np.eye(len(exc), dtype=bool)
    ee = exc[:, None] & exc[None, :] & off
    p_ee = params["p_e2e"] * np.where(same, params["R_pe2e"], 1.0)[ee]
    n_e, n_i = exc.sum(), (~exc).sum()
    out = {"EE": (p_ee.sum(), math.sqrt((p_ee * (1 - p_ee)).sum()))}
    for key, n_pairs, p in (("EI", n_e * n_i, params["p_e2i"]), ("IE", n_i * n_e, params["p_i2e"]),
                            ("II", n_i * (n_i - 1), params["p_i2i"])):
        out[key] = (n_pairs * p, math.sqrt(n_pairs * p * (1 - p)))
    return out


def test_x3_pathway_counts_and_weights():
    spec = SimulatorSpec.load("mk1").with_overrides(N=200, duration=0.01)
    net = TorchMK1(spec, propagation="dense").build([ACTIVE], [7])
    W, exc = net["graph"][0], net["exc"][0].numpy()
    pre, post, weight = TorchMK1(spec).build([ACTIVE], [7])["graph"].synapses[0]  # event mode
    assert torch.equal(torch.stack((pre, post)), torch.stack(W.nonzero(as_tuple=True)))
    assert torch.equal(weight, W[pre, post])
    structure = element_structure(spec, ACTIVE, 7)
    conn = (W != 0).numpy()
    got = {"EE": conn[exc][:, exc].sum(), "EI": conn[exc][:, ~exc].sum(),
           "IE": conn[~exc][:, exc].sum(), "II": conn[~exc][:, ~exc].sum()}
    for key, (mean, sd) in expected_counts(structure, ACTIVE).items():
        assert abs(got[key] - mean) <= 4 * sd, (key, got[key], mean, sd)
    assert not np.diag(conn).any()
    # weights: Q of the target population, × R_Qe2e for in-cluster E→E
    w = W.numpy()
    assert set(np.unique(w[~exc][:, exc][conn[~exc][:, exc]])) == {ACTIVE["E.Q_gi"]}
    assert set(np.unique(w[exc][:, ~exc][conn[exc][:, ~exc]])) == {ACTIVE["I.Q_ge"]}
    assert set(np.round(np.unique(w[exc][:, exc][conn[exc][:, exc]]) / 1e-9, 9)) == {2.0, 3.0}


@pytest.mark.parametrize("quirks", [False, True])
def test_per_neuron_arrays_equal_the_brian2_run_arguments(quirks):
    spec = SimulatorSpec.load("mk1").with_overrides(N=100, reference_quirks=quirks)
    params = ACTIVE | {"E.delta_T": 3e-3}
    net = TorchMK1(spec).build([params], [11])
    args = mk1.run_args(spec, params, np.random.default_rng(11))
    for key in mk1.PER_NEURON + ("v_cut", "lambda_ext"):
        np.testing.assert_allclose(net["arrays"][key][0].numpy(), args[f"neurons.{key}"],
                                   rtol=1e-12, err_msg=key)
    np.testing.assert_array_equal(net["exc"][0].numpy(), args["neurons.exc"].astype(bool))


def test_same_seed_same_spikes_whatever_the_batch_and_early_stop_per_element():
    spec = SimulatorSpec.load("mk1").with_overrides(N=100, duration=0.3, probe=0.1)
    sim = TorchMK1(spec)
    silent = quiet_mk1()
    batch = sim.run_batch([silent, ACTIVE, ACTIVE], [1, 5, 6])
    alone = sim.run_batch([ACTIVE], [5])[0]
    assert [r.status for r in batch] == ["silent", "ok", "ok"]
    assert batch[0].t_end == pytest.approx(0.1) and batch[1].t_end == pytest.approx(0.3)
    for pop in ("E", "I"):
        np.testing.assert_array_equal(batch[1].spikes[pop][0], alone.spikes[pop][0])
        np.testing.assert_array_equal(batch[1].spikes[pop][1], alone.spikes[pop][1])
    assert len(batch[1].spikes["E"][0]) > 50
    assert not np.array_equal(batch[1].spikes["E"][0], batch[2].spikes["E"][0])


def test_event_and_dense_propagation_agree():
    spec = SimulatorSpec.load("mk1").with_overrides(N=100, duration=0.2)
    event = TorchMK1(spec).run_batch([ACTIVE], [2])[0]
    dense = TorchMK1(spec, propagation="dense").run_batch([ACTIVE], [2])[0]
    np.testing.assert_array_equal(event.spikes["E"][0], dense.spikes["E"][0])


def test_steps_as_the_compiled_controller():
    assert last_step(0.3, 2e-4) == 1500 and last_step(1.0, 1e-5) == 100000


def test_bad_input_refused():
    spec = SimulatorSpec.load("mk1").with_overrides(N=10, dt=0.3e-3)
    with pytest.raises(UserError, match="does not divide 1 ms"):
        TorchMK1(spec)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            TorchMK1(SimulatorSpec.load("mk1").with_overrides(N=10), device="cuda")


def test_poisson_block_has_poisson_counts_per_step():
    from scipy import stats

    from automind.rsnn.mk1 import poisson_block

    lam = torch.tensor([0.0, 0.5, 2.0], dtype=torch.float64).repeat_interleave(2000)
    counts = poisson_block(lam, 100, torch.Generator().manual_seed(0)).numpy()
    assert counts[:, :2000].sum() == 0
    for k, mean in ((1, 0.5), (2, 2.0)):
        c = counts[:, k * 2000:(k + 1) * 2000].astype(int).ravel()
        freq = np.bincount(c, minlength=6)[:6] / c.size
        se = np.sqrt(stats.poisson.pmf(np.arange(6), mean) / c.size)
        assert np.all(np.abs(freq - stats.poisson.pmf(np.arange(6), mean)) < 5 * se + 1e-12)
    # steps are independent: lag-1 correlation of a neuron's counts ~ 0
    x = counts[:, 2000:4000]
    r = np.mean((x[1:] - 0.5) * (x[:-1] - 0.5)) / 0.5
    assert abs(r) < 0.02


def test_surrogate_gradients_have_the_known_signs():
    """Uncoupled neurons driven by Poisson input: more drive or a lower threshold -> more spikes."""
    from automind.rsnn.features import bin_ms

    spec = SimulatorSpec.load("mk1").with_overrides(N=40, duration=0.2)
    params = quiet_mk1(**{"E.poisson_rate": 4.0, "I.poisson_rate": 4.0, "E.Q_ge": 1e-9})
    sim = TorchMK1(spec)
    z, P = sim.run_differentiable([params], [4], 0.2,
                                  trainable=("E.poisson_rate", "E.v_thresh", "E.tau_ge"))
    assert z.shape == (1, 1000, 40) and z.sum() > 20
    n_e = 32
    rate = bin_ms(z, 5)[..., :n_e].sum() / (n_e * 0.2)
    rate.backward()
    assert P["E.poisson_rate"].grad.item() > 0
    assert P["E.v_thresh"].grad.item() < 0
    assert P["E.tau_ge"].grad.item() > 0
    # the forward pass is the event simulation's
    event = sim.run_batch([params], [4], duration=0.2)[0]
    assert int(z[0, :, :n_e].sum()) == len(event.spikes["E"][0])
    with pytest.raises(UserError, match="cannot be trained"):
        sim.run_differentiable([params], [4], 0.2, trainable=("exc_prop",))
    with pytest.raises(UserError, match="GiB"):
        sim.run_differentiable([params], [4], 0.2, memory_limit=1e6)


def test_imported_brian2_graph_is_used_as_given():
    spec = SimulatorSpec.load("mk1").with_overrides(N=60, duration=0.05)
    conn = {"syn_exc": (np.array([0, 0, 5]), np.array([7, 1, 2])), "syn_inh": (np.array([59]), np.array([0]))}
    net = TorchMK1(spec).build([ACTIVE], [1], imported=[conn])
    pre, post, w = net["graph"].synapses[0]
    assert pre.tolist() == [0, 0, 5, 59] and post.tolist() == [1, 7, 2, 0]
    assert w[-1].item() == pytest.approx(ACTIVE["E.Q_gi"])


def organoid_baseline() -> dict:
    import tomllib
    from pathlib import Path

    from automind.prior import Prior

    path = Path(__file__).parents[1] / "studies" / "organoid_development" / "study.toml"
    baseline = tomllib.loads(path.read_text())["baseline"]
    prior = Prior.load("mk1")
    return prior.to_simulator(np.array([baseline[name] for name in prior.names]))


@pytest.mark.slow
def test_x4_statistics_on_brian2_realised_graph():
    """P1 (the organoid-like bursting baseline, N = 500): Brian2's own graph imported, torch's
    own noise; 8 seeds; E rate, psd_bands, fano_100ms and burst intervals as Brian2's."""
    from automind.features.sets import simulation_features

    duration, seeds = 6.0, list(range(8))
    spec = SimulatorSpec.load("mk1").with_overrides(N=500, duration=duration)
    params = organoid_baseline()
    brian = [Simulator(spec).run(params, seed=s, connectivity=True) for s in seeds]
    # the same seeds: the E/I split, clusters and igniters (which set the weights) must be the
    # ones Brian2 drew its graph with; torch's drive and initial v are its own draws anyway
    ours = TorchMK1(spec).run_batch([params] * len(seeds), seeds,
                                    imported=[r.connectivity for r in brian])

    def summary(results):
        feats = [simulation_features(r, ["spikes", "psd_bands", "bursts"], 0.5) for r in results]
        rate = np.array([r.rate("E") for r in results])
        fano = np.array([f["spikes"][12] for f in feats])
        bands = np.log10(np.maximum(np.array([f["psd_bands"] for f in feats]), 1e-12)).mean(0)
        interval = np.nanmean([f["bursts"][1] for f in feats])
        return rate, fano, bands, interval

    rb, fb, bb, ib = summary(brian)
    rt, ft, bt, it = summary(ours)
    se = np.sqrt(rb.var(ddof=1) / len(rb) + rt.var(ddof=1) / len(rt))
    assert abs(rt.mean() - rb.mean()) <= max(0.03 * rb.mean(), 2 * se), (rt.mean(), rb.mean())
    assert np.abs(bt - bb).mean() <= 0.1
    assert ft.mean() == pytest.approx(fb.mean(), rel=0.1)
    assert it == pytest.approx(ib, rel=0.1)
