"""The ODE-Column parameterisation (the column the published WTA/XOR scripts train) and why
the Evers/PD column cannot do WTA: the L2/3E response to L4 drive (docs/columns.md)."""

import numpy as np
import pytest
import torch

from automind.columns import dmf, pd, tasks, variants
from automind.columns.network import Circuit
from automind.columns.train import TrainConfig, _Task
from automind.errors import UserError

MUS = [0.0, 15.0, 25.0, 35.0, 45.0]


def l23e_response(params, steps=3000):
    """Steady L2/3E rate of one column for L4 input J_E (295, 186) μ, μ in MUS."""
    W, drive = (torch.as_tensor(a) for a in dmf.column_weights(params))
    U = torch.zeros(len(MUS), 8, dtype=torch.float64)
    mu = torch.tensor(MUS, dtype=torch.float64)
    U[:, 2], U[:, 3] = 295 * params.J_E * mu, 186 * params.J_E * mu
    with torch.no_grad():
        rates, _ = dmf.integrate(W, drive.expand(len(MUS), 8), steps, 1e-4, params,
                                 inputs=lambda n: U, record_every=steps)
    return rates[-1, :, 0].numpy()


def test_ode_column_weights_follow_its_published_constants():
    params = dmf.DMFParams.for_variant("ode_column", size_divisor=2.0)
    assert (params.tau_m, params.kappa, params.R) == (20e-3, 1.5, pytest.approx(80.0))
    W, drive = dmf.column_weights(params)
    N = np.array(variants.AREA_SIZES["mt"]) / 2
    K = pd.in_degrees(params.l4_to_l23_gain, N)
    assert K[0, 2] == pytest.approx(-np.log1p(-0.0880) * N[2], rel=1e-3)   # K ~ -ln(1-C) N_pre
    assert W[0, 1] / W[0, 0] * K[0, 0] / K[0, 1] == pytest.approx(-60606 / 17095)  # -N_E/N_I J
    assert W[4, 5] / K[4, 5] == pytest.approx(-14176 / 3113 * 0.0878)
    np.testing.assert_allclose(drive, 2510 * 0.0878 * 8.0)
    # the Evers column is untouched by the variant's existence
    assert dmf.column_weights(dmf.DMFParams())[0][0, 2] == pytest.approx(2004.3 * 0.0878, rel=1e-4)
    with pytest.raises(UserError, match="unknown column variant 'odecolumn'"):
        dmf.DMFParams(variant="odecolumn")
    with pytest.raises(UserError, match="unknown area 'v9'"):
        dmf.column_weights(dmf.DMFParams.for_variant("ode_column", area="v9"))


def test_l4_drive_suppresses_evers_l23e_but_raises_ode_column_l23e():
    evers = l23e_response(dmf.DMFParams())
    assert evers[1] > 0.85 and evers[-1] < 0.01 and np.any(np.diff(evers) < 0)
    ode = l23e_response(dmf.DMFParams.for_variant("ode_column", size_divisor=2.0))
    assert np.all(np.diff(ode) > 0.15)
    # the background in-degrees decide it: the Evers column with ODE-Column's uniform 2510
    # background (everything else PD) rises up to μ = 35 (0.73 -> 2.09 Hz; 1.96 at 45)
    import automind.columns.dmf as module

    W, _ = dmf.column_weights(dmf.DMFParams())
    drive = torch.full((len(MUS), 8), 2510 * 0.0878 * 8.0, dtype=torch.float64)
    U = torch.zeros(len(MUS), 8, dtype=torch.float64)
    U[:, 2], U[:, 3] = 295 * 0.0878 * torch.tensor(MUS), 186 * 0.0878 * torch.tensor(MUS)
    with torch.no_grad():
        rates, _ = module.integrate(torch.as_tensor(W), drive, 3000, 1e-4, dmf.DMFParams(),
                                    inputs=lambda n: U, record_every=3000)
    l23e = rates[-1, :, 0].numpy()
    assert np.all(np.diff(l23e[:4]) > 0.1) and l23e[-1] > 2 * l23e[0]


def test_adaptation_settles_at_kappa_times_the_l23e_rate_and_rk4_agrees():
    params = dmf.DMFParams.for_variant("ode_column", tau_a=0.02)   # fast, to reach A* in 0.3 s
    W, drive = (torch.as_tensor(a) for a in dmf.column_weights(params))
    with torch.no_grad():
        euler, (_, H, A) = dmf.integrate(W, drive.unsqueeze(0), 3000, 1e-4, params,
                                         record_every=3000)
        rk4, _ = dmf.integrate(W, drive.unsqueeze(0), 3000, 1e-4, params, method="rk4",
                               record_every=3000)
    F = euler[-1, 0].numpy()
    assert A[0, 0].item() == pytest.approx(1.5 * F[0], rel=1e-6)   # A* = κ F(H - A*)
    assert torch.all(A[0, 1:] == 0)                                  # L2/3E only
    np.testing.assert_allclose(rk4[-1, 0].numpy(), F, rtol=0.01)
    without = dmf.steady_rates(params.with_(kappa=0.0), duration=0.3)
    assert F[0] < without[0]                                          # adaptation lowers L2/3E
    with pytest.raises(UserError, match="hold A exactly when adaptation"):
        dmf.integrate(W, drive.unsqueeze(0), 2, 1e-4, params,
                      state=(torch.zeros(1, 8, dtype=torch.float64),) * 2)


def test_untrained_ode_column_wta_pair_matches_the_published_check():
    """R§3.4: the stronger-input column is higher in 32/32 held-out trials, WTA index 0.23,
    winner / loser L2/3E 1.70 / 1.07 (scaled units); the Evers pair has it backwards."""
    task = _Task(TrainConfig.for_task("wta"))
    circuit = Circuit(task.spec)
    scores = task.evaluate(circuit, torch)
    assert scores["correct_winner"] == [32]
    assert scores["wta_index"][0] == pytest.approx(0.23, abs=0.02)
    evers = _Task(TrainConfig.for_task("wta", column="evers"))
    assert evers.evaluate(Circuit(evers.spec), torch)["correct_winner"] == [0]


def test_task_circuits_use_the_variant_and_the_xor_hidden_layer():
    wta = tasks.wta_spec()
    assert wta.params.variant == "ode_column" and wta.params.size_divisor == 2.0
    xor = tasks.xor_spec()
    assert xor.params.size_divisor == 2.0
    names = [[xor.populations[p] for p, _ in ch.targets] for ch in xor.inputs]
    assert names == [["A.L4E", "A.L4I", "B.L4E", "B.L4I"]] * 2   # each input onto A and B
    with pytest.raises(UserError, match="unknown column variant 'pd'"):
        tasks.wta_spec("pd")
