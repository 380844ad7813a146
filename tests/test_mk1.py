"""MK1 semantics against known answers: AdEx dynamics, shot noise, connectivity, clusters, seeds."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from automind.simulators import Simulator, SimulatorSpec, mk1
from automind.simulators.execution import Job, run_chunk
from conftest import quiet_mk1

# ---- single neuron: compiled Euler vs an independent scipy integration ------------------------

DT_FINE = 1e-5  # 0.01 ms, so that Euler's error is well below the tolerance


@pytest.fixture(scope="module")
def single_neuron():
    spec = SimulatorSpec.load("mk1").with_overrides(N=2, dt=DT_FINE, duration=0.3,
                                                    record_state=("v",), state_units=1)
    return lambda bias: Simulator(spec.with_overrides(fixed=spec.fixed | {"I_bias": bias}))


def reference_spike_times(p: dict, v0: float, I: float, t_end: float) -> np.ndarray:
    """Integrate C dv/dt = -gL(v-EL) + gL ΔT exp((v-VT)/ΔT) - w + I, τw dw/dt = a(v-EL) - w
    with scipy (RK45, tight tolerances), spike at v_cut = VT + 5ΔT, reset and refractoriness."""
    C, gL, EL, VT, dT = p["E.C"], p["E.g_L"], p["E.v_rest"], p["E.v_thresh"], p["E.delta_T"]
    a, b, tau_w, v_reset, t_ref = p["E.a"], p["E.b"], p["E.tau_w"], p["E.v_reset"], p["E.t_refrac"]
    v_cut = VT + 5 * dT

    def rhs(t, y):
        v, w = y
        spike_current = gL * dT * math.exp((v - VT) / dT) if dT > 0 else 0.0
        return [(-gL * (v - EL) + spike_current - w + I) / C, (a * (v - EL) - w) / tau_w]

    def frozen(t, y):  # refractory: v clamped, w keeps evolving
        return [0.0, (a * (y[0] - EL) - y[1]) / tau_w]

    crossing = lambda t, y: y[0] - v_cut  # noqa: E731
    crossing.terminal, crossing.direction = True, 1
    t, y, spikes = 0.0, [v0, 0.0], []
    while t < t_end:
        sol = solve_ivp(rhs, (t, t_end), y, events=crossing, rtol=1e-9, atol=1e-12, max_step=1e-4)
        if not sol.t_events[0].size:
            break
        t_spike = sol.t_events[0][0]
        spikes.append(t_spike)
        w_after = sol.y_events[0][0][1] + b
        ref = solve_ivp(frozen, (t_spike, t_spike + t_ref), [v_reset, w_after], rtol=1e-9, atol=1e-12)
        t, y = t_spike + t_ref, [v_reset, ref.y[1][-1]]
    return np.array(spikes)


@pytest.mark.parametrize("delta_T", [2e-3, 0.0], ids=["AdEx", "adaptive-LIF"])
def test_single_neuron_matches_independent_integration(single_neuron, delta_T):
    params = quiet_mk1(**{"E.delta_T": delta_T, "exc_prop": 0.9})
    bias = 0.5e-9
    result = single_neuron(bias).run(params, seed=1)
    assert result.status == "ok", result.message
    v0 = result.state["v"][0, 0]
    expected = reference_spike_times(params, v0, bias, result.t_end)
    got = result.spikes["E"][0]
    assert len(expected) >= 10, "the test needs a train of adapting spikes"
    assert len(got) == len(expected)
    # adaptation: inter-spike intervals lengthen
    assert np.diff(got)[-1] > 1.5 * np.diff(got)[0]
    # every spike within 1 % of the mean interval (Euler at dt = 0.01 ms vs RK45)
    np.testing.assert_allclose(got, expected, atol=0.01 * np.diff(expected).mean())


# ---- external drive: Campbell's theorem for shot noise ------------------------------------------

def test_poisson_drive_conductance_matches_campbell(mk1_small):
    rate, tau = 4.0, 5e-3
    params = quiet_mk1(**{"E.poisson_rate": rate, "I.poisson_rate": rate, "E.tau_ge": tau,
                          "E.v_thresh": 0.0, "E.delta_T": 0.0})  # unconnected, never spike
    result = mk1_small.run(params, seed=5, duration=2.0)
    g = result.state["g_e"][int(0.1 / mk1_small.spec.dt):]  # drop the build-up
    fixed = mk1_small.spec.fixed
    n_sources, quantum = fixed["N_poisson"], fixed["Q_poisson"]
    assert g.mean() == pytest.approx(n_sources * rate * quantum * tau, rel=0.03)
    assert g.var(axis=0).mean() == pytest.approx(n_sources * rate * quantum**2 * tau / 2, rel=0.06)


def test_igniters_drive_only_a_fraction_of_E(mk1_small):
    spec = mk1_small.spec
    params = quiet_mk1(**{"p_igniters": 0.25, "E.poisson_rate": 2.0, "I.poisson_rate": 3.0})
    args = mk1.run_args(spec, params, np.random.default_rng(0))
    lam = args["neurons.lambda_ext"]
    n_e = mk1.n_excitatory(spec.N, params["exc_prop"])
    driven = lam[:n_e] > 0
    assert driven.sum() == round(0.25 * n_e)
    assert driven[:driven.sum()].mean() < 1  # chosen at random, not the first block
    np.testing.assert_allclose(lam[n_e:], 500 * 3.0 * spec.dt)
    quirky = mk1.run_args(spec.with_overrides(reference_quirks=True), params, np.random.default_rng(0))
    assert (quirky["neurons.lambda_ext"][:round(0.25 * n_e)] > 0).all()


# ---- connectivity: run-time probabilities, one compilation --------------------------------------

def _pair_counts(spec, params):
    n_e = mk1.n_excitatory(spec.N, params["exc_prop"])
    n_i = spec.N - n_e
    return {"EE": n_e * (n_e - 1), "EI": n_e * n_i, "IE": n_i * n_e, "II": n_i * (n_i - 1)}, n_e


def test_synapse_counts_follow_run_time_probabilities_without_recompiling(mk1_small):
    binary = mk1_small.compiled.binary
    stamp = binary.stat().st_mtime_ns
    for k, (pee, pei, pie, pii, exc) in enumerate([(0.01, 0.1, 0.05, 0.2, 0.8),
                                                    (0.1, 0.01, 0.2, 0.05, 0.7),
                                                    (0.05, 0.05, 0.1, 0.1, 0.95)]):
        params = quiet_mk1(p_e2e=pee, p_e2i=pei, p_i2e=pie, p_i2i=pii, exc_prop=exc)
        result = mk1_small.run(params, seed=10 + k, duration=0.01, connectivity=True)
        pairs, n_e = _pair_counts(mk1_small.spec, params)
        pre, post = result.connectivity["syn_exc"]
        assert not (pre == post).any()
        observed = {"EE": np.sum(post < n_e), "EI": np.sum(post >= n_e)}
        pre, post = result.connectivity["syn_inh"]
        assert (pre >= n_e).all()
        observed |= {"IE": np.sum(post < n_e), "II": np.sum(post >= n_e)}
        for path, p in zip(("EE", "EI", "IE", "II"), (pee, pei, pie, pii)):
            mean = p * pairs[path]
            assert abs(observed[path] - mean) < 4.5 * math.sqrt(mean * (1 - p)) + 1, (path, p)
    assert binary.stat().st_mtime_ns == stamp
    again = Simulator(mk1_small.spec)
    assert again.compiled.directory == mk1_small.compiled.directory
    assert again.compiled.compile_seconds == 0.0


# ---- clusters -----------------------------------------------------------------------------------

def _in_cluster_fraction(c1, c2, slotwise=False):
    same = (c1[:, None] == c1[None, :]) | (c2[:, None] == c2[None, :])
    if not slotwise:
        same |= (c1[:, None] == c2[None, :]) | (c2[:, None] == c1[None, :])
    off_diagonal = ~np.eye(len(c1), dtype=bool)
    return same[off_diagonal].mean()


@pytest.mark.parametrize("k", [2, 3, 5, 10, 20])
def test_in_cluster_pair_fraction(k):
    c1, c2 = mk1.cluster_ids(1500, 1500, k + 0.7, 3.0, np.random.default_rng(k))
    p_disjoint = math.comb(k - 2, 2) / math.comb(k, 2)
    assert _in_cluster_fraction(c1, c2) == pytest.approx(1 - p_disjoint, abs=0.01)
    # the reference code's slot-wise comparison: P(c1 = c1' or c2 = c2')
    slotwise = 2 / k - 1 / (k * (k - 1))
    assert _in_cluster_fraction(c1, c2, slotwise=True) == pytest.approx(slotwise, abs=0.01)


def test_no_clusters_below_two_or_without_ratio():
    for n_clusters, ratio in ((1.9, 3.0), (8.0, 1.0)):
        c1, c2 = mk1.cluster_ids(200, 200, n_clusters, ratio, np.random.default_rng(0))
        assert _in_cluster_fraction(c1, c2) == 0


@pytest.mark.parametrize("quirks", [False, True], ids=["intersecting-sets", "slot-wise"])
def test_compiled_connectivity_uses_cluster_membership(mk1_small, quirks):
    sim = mk1_small if not quirks else Simulator(mk1_small.spec.with_overrides(reference_quirks=True))
    params = quiet_mk1(p_e2e=0.02, R_pe2e=5.0, n_clusters=6.0, exc_prop=0.9)
    seed = 21
    result = sim.run(params, seed=seed, duration=0.01, connectivity=True)
    args = mk1.run_args(sim.spec, params, np.random.default_rng(seed))  # same draws as the run
    n_e = mk1.n_excitatory(sim.spec.N, 0.9)
    c1, c2 = args["neurons.c1"][:n_e], args["neurons.c2"][:n_e]
    same = (c1[:, None] == c1[None, :]) | (c2[:, None] == c2[None, :])
    if not quirks:
        same |= (c1[:, None] == c2[None, :]) | (c2[:, None] == c1[None, :])
    np.fill_diagonal(same, False)
    pre, post = result.connectivity["syn_exc"]
    ee = post < n_e
    connected = np.zeros((n_e, n_e), dtype=bool)
    connected[pre[ee], post[ee]] = True
    off = ~np.eye(n_e, dtype=bool)
    p_in = connected[same].mean()
    p_out = connected[~same & off].mean()
    assert p_in == pytest.approx(0.1, abs=0.012)
    assert p_out == pytest.approx(0.02, abs=0.004)


# ---- reproducibility and early stop --------------------------------------------------------------

ACTIVE = quiet_mk1(p_e2e=0.05, p_e2i=0.05, p_i2e=0.1, p_i2i=0.1, **{"E.poisson_rate": 4.0,
                   "I.poisson_rate": 4.0, "E.Q_gi": 5e-9})


def test_same_seed_same_spikes_different_seed_different(mk1_small):
    a = mk1_small.run(ACTIVE, seed=7, duration=0.5)
    b = mk1_small.run(ACTIVE, seed=7, duration=0.5)
    c = mk1_small.run(ACTIVE, seed=8, duration=0.5)
    assert a.status == "ok" and len(a.spikes["E"][0]) > 100
    for pop in ("E", "I"):
        np.testing.assert_array_equal(a.spikes[pop][0], b.spikes[pop][0])
        np.testing.assert_array_equal(a.spikes[pop][1], b.spikes[pop][1])
    assert len(a.spikes["E"][0]) != len(c.spikes["E"][0]) or \
        not np.array_equal(a.spikes["E"][0], c.spikes["E"][0])


def test_early_stop_silent(mk1_small):
    result = mk1_small.run(quiet_mk1(), seed=1, duration=3.0)
    assert result.status == "silent"
    assert result.t_end == pytest.approx(mk1_small.spec.probe)


def test_early_stop_runaway(mk1_small):
    # strong drive and recurrent excitation: E fires every refractory period
    params = quiet_mk1(p_e2e=0.1, **{"E.poisson_rate": 5.0, "E.Q_ge": 5e-9, "E.tau_ge": 20e-3,
                                     "E.t_refrac": 1e-3, "E.a": 0.0, "E.b": 0.0})
    result = mk1_small.run(params, seed=1, duration=3.0)
    assert result.status == "runaway", (result.status, result.rate("E"))
    assert result.t_end == pytest.approx(mk1_small.spec.probe)


def test_duration_is_a_run_argument(mk1_small):
    for duration in (0.3, 0.71):
        result = mk1_small.run(ACTIVE, seed=3, duration=duration)
        assert result.t_end == pytest.approx(duration)
        assert result.spikes["E"][0].max() < duration


def test_timeout_and_failure_are_statuses_and_never_stop_a_batch(mk1_small):
    timed_out = mk1_small.run(ACTIVE, seed=1, duration=50.0, timeout=0.05)
    assert timed_out.status == "timeout" and "wall-clock" in timed_out.message
    broken = dict(ACTIVE)
    del broken["E.C"]
    jobs = [Job(ACTIVE, 1, 0, 0.2, None), Job(broken, 2, 1, 0.2, None), Job(quiet_mk1(), 3, 2, 0.2, None)]
    results = run_chunk(mk1_small.spec, jobs, str(mk1_small.compiled.directory))
    assert [r.status for r in results] == ["ok", "failed", "silent"]
    assert "E.C" in results[1].message
