"""The simulator's time step in the cheap model: Brian2's refractory steps, the first-step
threshold crossing that makes MK1 'runaway' (ν t_ref > 0.99), and runs that must not be
frozen on a saturated plateau while adaptation still drifts."""

import numpy as np
import pytest
from automind.cheap.moments import (Drive, Neuron, discrete_time_rate, first_step_crossing,
                                    first_step_z, membrane, refractory_steps, step_constants)
from automind.cheap.screen import CheapModel, probe_activity
from automind.prior import Prior
from automind.simulators import SimulatorSpec

DT = 2e-4  # MK1's time step


def test_refractory_steps_are_brian2_timesteps():
    # Brian2: timestep(t, dt) = int((t + 1e-3 dt) / dt); 1 ms / 0.2 ms is 4.999... in floats
    got = refractory_steps(np.array([1e-3, 1.1e-3, 1.19e-3, 1.2e-3, 5e-3, 5e-5]), DT)
    np.testing.assert_array_equal(got, [5, 5, 5, 6, 25, 1])


def test_discrete_time_rate_limits():
    t_ref = np.array([1.1e-3, 1.1e-3, 1.1e-3, 3e-3])
    free = np.array([0.0, 1e-5, 2e-4, 0.05])  # continuous free time T from reset
    rate = 1 / (t_ref + free)
    crossing = np.array([1.0, 0.0, 0.0, 0.0])
    got = discrete_time_rate(rate, t_ref, crossing, DT)
    # first-step crossing: the spike comes on the step the refractory period ends
    assert got[0] == pytest.approx(1 / (5 * DT)) and got[0] * t_ref[0] > 1
    # otherwise at least one more step; a long free time loses half a step on average
    assert got[1] == pytest.approx(1 / (6 * DT))
    assert got[2] == pytest.approx(1 / (6 * DT))
    assert got[3] == pytest.approx(1 / (15 * DT + 0.05 - DT / 2))
    # a continuous-time rate that underflowed to 0: first-step firing, or silence, never NaN
    zero = discrete_time_rate(np.zeros(2), t_ref[:2], np.array([1.0, 0.0]), DT)
    assert zero[0] == pytest.approx(1 / (5 * DT)) and zero[1] < 1e-290


def test_first_step_crossing_matches_monte_carlo_euler_steps():
    """P(one Euler step of the full AdEx equation from v_reset crosses v_cut) with Gaussian
    conductances of the Campbell moments, against the closed form."""
    rng = np.random.default_rng(0)
    n = Neuron(C=200e-12, g_L=10e-9, v_rest=-65e-3, v_thresh=-50e-3, v_reset=-60e-3,
               t_refrac=2e-3, delta_T=2e-3, a=4e-9, b=50e-12, tau_w=1.0, tau_e=5e-3,
               tau_i=10e-3, E_e=0.0, E_i=-80e-3)
    w = 0.3e-9
    for rate_e in (5.5e3, 6.6e3, 7.5e3):  # events/s of 10 nS quanta: around the crossing
        drive = Drive(np.array(rate_e * 1e-8), np.array(rate_e * 1e-16),
                      np.array(2e3 * 1e-9), np.array(2e3 * 1e-18))
        mom = membrane(n, drive, w)
        p = first_step_crossing(step_constants(n, DT), drive, mom)
        g_e = n.tau_e * drive.e1 + np.sqrt(0.5 * n.tau_e * drive.e2) * rng.standard_normal(200000)
        g_i = n.tau_i * drive.i1 + np.sqrt(0.5 * n.tau_i * drive.i2) * rng.standard_normal(200000)
        v = n.v_reset
        dv = DT / n.C * (n.g_L * (n.v_rest - v) + n.g_L * n.delta_T * np.exp((v - n.v_thresh) / n.delta_T)
                         - w + g_e * (n.E_e - v) + g_i * (n.E_i - v))
        mc = np.mean(v + dv > n.v_thresh + 5 * n.delta_T)
        assert 0.02 < p < 0.98 or rate_e != 6.6e3
        assert p == pytest.approx(mc, abs=0.005), (rate_e, p, mc)


def test_first_step_z_is_the_crossing_probit_and_saturated_z_is_monte_carlo_like():
    """z = (mean step − gap)/sd: the crossing probability is Φ(z) (known answer at Φ⁻¹ of
    the Monte Carlo fraction above); no noise gives ±inf; continuous time has no z."""
    from scipy.special import ndtr, ndtri

    n = Neuron(C=200e-12, g_L=10e-9, v_rest=-65e-3, v_thresh=-50e-3, v_reset=-60e-3,
               t_refrac=2e-3, delta_T=2e-3, a=4e-9, b=50e-12, tau_w=1.0, tau_e=5e-3,
               tau_i=10e-3, E_e=0.0, E_i=-80e-3)
    step = step_constants(n, DT)
    for rate_e in (5.5e3, 6.6e3, 7.5e3):
        drive = Drive(np.array(rate_e * 1e-8), np.array(rate_e * 1e-16),
                      np.array(2e3 * 1e-9), np.array(2e3 * 1e-18))
        mom = membrane(n, drive, 0.3e-9)
        z = first_step_z(step, drive, mom)
        p = first_step_crossing(step, drive, mom)
        assert ndtr(z) == pytest.approx(p) and z == pytest.approx(ndtri(p), abs=1e-9)
    quiet = Drive(np.array(9e3 * 1e-8), np.array(0.0), np.array(0.0), np.array(0.0))
    assert np.isinf(first_step_z(step, quiet, membrane(n, quiet, 0.0)))
    model, theta = _mk1()
    net = model.network(theta)
    z = net.saturated_step_z(np.zeros_like(net.max_rate))
    assert z.shape == (1, 3) and np.all(np.isfinite(z))
    net.step = None  # continuous time
    assert np.all(np.isnan(net.saturated_step_z(np.zeros_like(net.max_rate))))


def _mk1(**changes):
    spec = SimulatorSpec.load("mk1").with_overrides(N=500, duration=2.0)
    prior = Prior.load("mk1")
    theta = prior.sample_indexed(7, [990])  # a draw of our N = 500, 2 s bank (seed 7)
    for name, value in changes.items():
        theta[0, prior.names.index(name)] = value
    return CheapModel.for_spec(spec, prior, "analytic"), theta


def test_adaptation_ends_a_saturated_start_before_the_probe_ends():
    """θ 990 of the bank: Brian2 says ok (E activity 0.22). The model saturates at first
    (every E neuron fires on its first free step), then spike-triggered adaptation (b = 150
    pA, τ_w = 10 s) ends it; a run frozen on the plateau called it runaway (1.04)."""
    model, theta = _mk1()
    pred = model.predict(theta)
    activity = probe_activity(pred, model.t_refrac(theta))
    assert pred.status[0] == "ok" and 0.1 < activity[0] < 0.9
    # the same network without spike-triggered adaptation stays on the plateau: runaway,
    # at t_ref / (n_ref dt) > 1 as in Brian2
    model, theta = _mk1(**{"E.b": 0.0})
    pred = model.predict(theta)
    assert pred.status[0] == "runaway"
    assert probe_activity(pred, model.t_refrac(theta))[0] > 0.99


def test_continuous_time_never_reaches_runaway():
    from automind.cheap.networks import MK1Network
    from automind.cheap.screen import theta_to_si
    from automind.cheap.solve import Protocol, solve

    model, theta = _mk1(**{"E.b": 0.0})
    params = theta_to_si(model.prior, theta)
    spec = model.spec
    net = MK1Network(params, spec.fixed, spec.N, model.table, dt=None)
    pred = solve(net, Protocol.of_spec(spec))
    assert pred.status[0] == "ok"  # ν t_ref < 1 for any continuous-time rate
