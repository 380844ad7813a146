"""Campbell moments against a non-spiking Brian2 MK1 neuron (spec §4: μ_V ± 0.2 mV, σ_V ± 5 %),
and the reduction's exact identities."""

import numpy as np
import pytest

from automind.cheap.moments import Neuron, adiabatic_w, dimensionless, membrane, source
from automind.simulators import Simulator, SimulatorSpec
from conftest import quiet_mk1


@pytest.fixture(scope="module")
def recorded():
    """40 MK1 neurons, unconnected, every E neuron driven, v_cut = -30 mV: never spikes."""
    spec = SimulatorSpec.load("mk1").with_overrides(N=40, duration=3.0, record_state=("v",),
                                                    state_units=32)
    params = quiet_mk1(**{"E.poisson_rate": 1.0, "E.v_thresh": -30e-3, "E.delta_T": 0.0,
                          "E.tau_ge": 5e-3, "E.a": 2e-9, "E.tau_w": 50e-3})
    result = Simulator(spec).run(params, seed=4)
    assert result.status == "silent" and len(result.spikes["E"][0]) == 0
    v = result.state["v"][int(0.3 / spec.dt):]
    return params, spec, v


def _neuron(p, spec):
    return Neuron(C=p["E.C"], g_L=p["E.g_L"], v_rest=p["E.v_rest"], v_thresh=p["E.v_thresh"],
                  v_reset=p["E.v_reset"], t_refrac=p["E.t_refrac"], delta_T=p["E.delta_T"],
                  a=p["E.a"], b=p["E.b"], tau_w=p["E.tau_w"], tau_e=p["E.tau_ge"],
                  tau_i=p["E.tau_gi"], E_e=spec.fixed["E_ge"], E_i=p["E.E_gi"])


def test_moments_match_a_non_spiking_brian2_neuron(recorded):
    params, spec, v = recorded
    neuron = _neuron(params, spec)
    drive = source(spec.fixed["N_poisson"] * params["E.poisson_rate"], spec.fixed["Q_poisson"], True)
    mom = membrane(neuron, drive, adiabatic_w(neuron, drive, 0.0))
    assert abs(v.mean() - mom.mu_V) <= 0.2e-3, (v.mean(), mom.mu_V)
    assert v.std() == pytest.approx(mom.sigma_V, rel=0.05)


def test_reduction_identities():
    n = Neuron(C=200e-12, g_L=10e-9, v_rest=-65e-3, v_thresh=-50e-3, v_reset=-60e-3, t_refrac=2e-3,
               delta_T=2e-3, a=0.0, b=0.0, tau_w=0.1, tau_e=5e-3, tau_i=10e-3, E_e=0.0, E_i=-80e-3)
    drive = source(2000.0, 1e-9, True) + source(500.0, 4e-9, False)
    mom = membrane(n, drive, 0.0)
    # μ_G = g_L + τ_e λ_e Q_e + τ_i λ_i Q_i = 10 + 10 + 20 nS; ℓ = ln 4
    assert mom.mu_G == pytest.approx(40e-9) and mom.tau_eff == pytest.approx(5e-3)
    inputs = dimensionless(n, mom)
    theta_star = -50e-3 + 2e-3 * np.log(4.0)
    assert inputs.ell == pytest.approx(np.log(4.0))
    assert inputs.m == pytest.approx((mom.mu_V - theta_star) / mom.sigma_V)
    assert inputs.r == pytest.approx((theta_star + 60e-3) / mom.sigma_V)
    assert inputs.delta == pytest.approx(2e-3 / mom.sigma_V)
    assert inputs.rho == pytest.approx(2e-3 / 5e-3) and not inputs.deterministic
    assert 5e-3 < mom.tau_syn < 10e-3  # σ_V²-weighted between the two synaptic time constants
    assert inputs.kappa == pytest.approx(mom.tau_syn / 5e-3)
    # adaptation: w̄ solves w = a(μ_V(w) − v_rest) + b τ_w ν
    n.a, n.b = 4e-9, 30e-12
    w = adiabatic_w(n, drive, 7.0)
    mu_v = membrane(n, drive, w).mu_V
    assert w == pytest.approx(4e-9 * (mu_v + 65e-3) + 30e-12 * 0.1 * 7.0)
