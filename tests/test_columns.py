"""The column DMF against the known answers of shared/spec/rsnn.md §6."""

import numpy as np
import pytest
import torch

from automind.columns import dmf, pd
from automind.columns.circuit import CircuitSpec
from automind.columns.network import Circuit
from automind.errors import UserError

DMF_RATES = np.array([0.925, 2.716, 4.322, 5.394, 5.616, 7.685, 1.125, 7.219])


@pytest.fixture(scope="module")
def steady():
    return dmf.steady_rates()


def test_in_degrees_use_the_outer_product_and_the_doubled_l4_to_l23():
    K = pd.in_degrees()
    assert K[0, 2] == pytest.approx(2004.3, abs=0.05)
    assert K[0, 0] == pytest.approx(2199.9, abs=0.05)
    assert pd.in_degrees(1.0)[0, 2] == pytest.approx(K[0, 2] / 2, rel=0.03)  # K ~ C N_pre
    # E's elementwise N² (the public DMF bug) would give a different number
    bug = np.log1p(-pd.C[0, 0]) / np.log1p(-1 / pd.N[0] ** 2) / pd.N[0]
    assert bug == pytest.approx(K[0, 0])  # same for a diagonal entry ...
    bug_off = np.log1p(-pd.C[0, 2] * 2) / np.log1p(-1 / pd.N[0] ** 2) / pd.N[0]
    assert abs(bug_off - K[0, 2]) > 50   # ... but not off the diagonal


def test_noise_free_steady_state_matches_the_spec(steady):
    np.testing.assert_allclose(steady, DMF_RATES, rtol=1e-3)
    undoubled = dmf.steady_rates(dmf.DMFParams(l4_to_l23_gain=1.0))
    assert undoubled[0] == pytest.approx(0.078, rel=5e-3)


def test_steady_state_is_near_the_spiking_microcircuit(steady):
    rel = np.abs(steady / pd.PD_SPIKING_RATES - 1)
    assert rel.max() <= 0.35
    named = [pd.population_index(p) for p in ("L2/3E", "L2/3I", "L4I", "L6I")]
    assert rel[named].max() <= 0.10


def test_rk4_agrees_with_euler_and_batches_are_independent(steady):
    params = dmf.DMFParams()
    W, drive = (torch.as_tensor(a) for a in dmf.column_weights(params))
    U = torch.zeros(3, 8, dtype=torch.float64)
    U[1, 2] = 500.0  # drive L4E of the second column only
    with torch.no_grad():
        rk4, _ = dmf.integrate(W, drive, 3000, 1e-4, params, inputs=lambda n: U, method="rk4",
                               record_every=3000, batch=3)
        euler, _ = dmf.integrate(W, drive, 3000, 1e-4, params, inputs=lambda n: U,
                                 record_every=3000, batch=3)
    np.testing.assert_allclose(rk4[-1].numpy(), euler[-1].numpy(), rtol=0.01)
    np.testing.assert_allclose(euler[-1, 0].numpy(), euler[-1, 2].numpy(), rtol=1e-12)
    assert euler[-1, 1, 2] > 1.5 * euler[-1, 0, 2]
    # after 0.3 s the undriven column is at its 1 s steady state
    np.testing.assert_allclose(euler[-1, 0].numpy(), steady, rtol=1e-3)


def test_gradient_of_the_fixed_step_solver_matches_finite_differences():
    params = dmf.DMFParams()
    W0, drive = (torch.as_tensor(a) for a in dmf.column_weights(params))
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)

    def loss(s):
        W = W0.clone()
        W[0, 0] = W0[0, 0] * s
        rates, _ = dmf.integrate(W, drive, 500, 1e-4, params, record_every=50)
        return rates[:, 0, 0].mean()

    (grad,) = torch.autograd.grad(loss(scale), scale)
    with torch.no_grad():
        h = 1e-5
        fd = (loss(torch.tensor(1 + h, dtype=torch.float64)) -
              loss(torch.tensor(1 - h, dtype=torch.float64))) / (2 * h)
    assert grad.item() == pytest.approx(fd.item(), rel=1e-5)


def test_transfer_is_smooth_through_zero_and_never_overflows():
    p = dmf.DMFParams()
    h = torch.tensor([p.b / p.a, p.b / p.a + 1e-9, -1e4], dtype=torch.float64, requires_grad=True)
    f = dmf.transfer(h, p)
    assert f[0].item() == pytest.approx(1 / p.d)
    assert f[1].item() == pytest.approx(1 / p.d, rel=1e-6)
    assert 0 <= f[2].item() < 1e-20
    f.sum().backward()
    assert torch.isfinite(h.grad).all()


def test_solver_and_dt_errors_name_the_problem():
    W, drive = (torch.as_tensor(a) for a in dmf.column_weights())
    with pytest.raises(UserError, match="unknown solver 'heun'"):
        dmf.integrate(W, drive, 10, method="heun")
    with pytest.raises(UserError, match="dt = 0.001"):
        dmf.integrate(W, drive, 10, dt=1e-3)


def test_circuit_spec_builds_block_matrices_and_rejects_bad_specs():
    spec = CircuitSpec.from_dict({
        "columns": ["A", "B"],
        "connections": [{"source": "A.L23E", "target": "B.L2/3I", "indegree": 100, "train": True},
                        {"source": "B.L23E", "target": "B.L23E", "train": True}],
        "inputs": [{"name": "s", "targets": {"A.L4E": 295}}], "readout": ["B.L23E"]})
    W, W_in, drive = spec.matrices()
    W_col, _ = dmf.column_weights()
    np.testing.assert_allclose(W[:8, :8], W_col)
    assert W[9, 0] == pytest.approx(100 * 87.8e-3) and W[0, 9] == 0
    assert W_in[2, 0] == pytest.approx(295 * 87.8e-3)
    circuit = Circuit(spec, n_sets=2)
    assert circuit.conn_values.shape == (2, 2)
    Wt, _ = circuit.weights()
    np.testing.assert_allclose(Wt[1].detach().numpy(), W, rtol=1e-6)
    bad = [({"columns": ["A"], "connections": [{"source": "A.L23E", "target": "C.L4E", "weight": 1}]},
            "does not declare"),
           ({"columns": ["A"], "connections": [{"source": "A.L7E", "target": "A.L4E"}]},
            "unknown population 'L7E'"),
           ({"columns": ["A", "B"], "connections": [{"source": "A.L23E", "target": "B.L4E"}]},
            "needs 'weight' or 'indegree'"),
           ({"columns": ["A"], "inputs": [{"name": "x", "targets": {}}]}, "targets"),
           ({"columns": ["A"], "wires": []}, "unknown key")]
    for data, message in bad:
        with pytest.raises(UserError, match=message):
            CircuitSpec.from_dict(data)




def _need_torchdiffeq():
    try:
        import torchdiffeq  # noqa: F401
    except ImportError:
        pytest.skip("torchdiffeq is not installed (optional: pip install automind[columns])")


def test_dopri5_agrees_with_euler(steady):
    _need_torchdiffeq()
    from automind.columns.odeint import integrate_odeint

    W, drive = (torch.as_tensor(a) for a in dmf.column_weights())
    rates, _ = integrate_odeint(W, drive.unsqueeze(0), 1.0, record_every=10000)
    np.testing.assert_allclose(rates[-1, 0].numpy(), steady, rtol=0.01)


def test_adjoint_gradient_equals_direct_backpropagation():
    _need_torchdiffeq()
    from automind.columns.odeint import integrate_odeint

    W0, drive = (torch.as_tensor(a) for a in dmf.column_weights())
    gain = torch.ones(8, dtype=torch.float64, requires_grad=True)
    U = torch.zeros(300, 1, 8, dtype=torch.float64)
    U[100:, 0, 2] = 800.0

    def loss(adjoint):
        rates, _ = integrate_odeint(W0 * gain[:, None], drive.unsqueeze(0), 0.03, inputs=U,
                                    record_every=30, method="rk4", adjoint=adjoint,
                                    options={"step_size": 1e-4})
        return (rates[..., 0] ** 2).mean()

    (direct,) = torch.autograd.grad(loss(False), gain)
    (adjoint,) = torch.autograd.grad(loss(True), gain)
    assert (direct - adjoint).abs().max() <= 1e-3 * direct.abs().max()


def test_missing_torchdiffeq_is_a_user_error(monkeypatch):
    import sys

    from automind.columns import odeint

    monkeypatch.setitem(sys.modules, "torchdiffeq", None)
    W, drive = (torch.as_tensor(a) for a in dmf.column_weights())
    with pytest.raises(UserError, match="needs torchdiffeq"):
        odeint.integrate_odeint(W, drive.unsqueeze(0), 0.01)
