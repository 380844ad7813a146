"""The coarse-grained solver: Brunel (2000) against its published mean-field rates and against
our Brian2 Brunel network; MK1 statuses never guessed."""

import numpy as np
import pytest

from automind.cheap import analytic
from automind.cheap.grid import Grid
from automind.cheap.networks import BrunelNetwork, MK1Network
from automind.cheap.nodes import NodeSettings
from automind.cheap.solve import Protocol, fixed_point, loop_gain, solve
from automind.cheap.table import Table, build_table, save_table
from automind.prior import Prior
from automind.simulators import SimulatorSpec

#: Brunel's example points (g, ν_ext/ν_thr) and his mean-field rates (Hz; spec §4).
BRUNEL_POINTS = {(5.0, 2.0): 37.9, (6.0, 4.0): 55.8, (3.0, 2.0): 327.0, (4.5, 0.9): 6.5}
#: The Brunel reduction lives on one slice: δ = ℓ = κ = 0, ρ = t_ref/τ_m = 0.1.
BRUNEL_SLICE = Grid(m=Grid.full().m, r=Grid.full().r, delta=(0.0,), ell=(0.0,), rho=(0.1,),
                    kappa=(0.0,))


BRUNEL_RUN = Protocol.of_spec(SimulatorSpec.load("brunel"))


def _brunel(table):
    spec = SimulatorSpec.load("brunel")
    g, nu = np.array(list(BRUNEL_POINTS)).T
    return BrunelNetwork({"g": g, "nu_ext": nu}, spec.fixed, table)


@pytest.fixture(scope="module")
def simulated_slice(tmp_path_factory):
    """The Brunel slice of the table, built by the compiled node group (200 nodes, 1 chunk)."""
    root = tmp_path_factory.mktemp("tables")
    return Table(build_table(BRUNEL_SLICE, NodeSettings(), seed=0, root=root))


def test_brunel_mean_field_rates_from_an_exact_siegert_table(tmp_path):
    nodes = BRUNEL_SLICE.nodes()
    rate = analytic.siegert(nodes["m"], nodes["r"], nodes["rho"])
    n = len(rate)
    table = Table(save_table(tmp_path / "t", BRUNEL_SLICE, rate, np.ones(n), np.zeros(n),
                             np.full(n, 1e6), {}))
    pred = solve(_brunel(table), BRUNEL_RUN)
    assert list(pred.status) == ["ok"] * 4
    for got, want in zip(pred.rate_E, BRUNEL_POINTS.values()):
        assert got == pytest.approx(want, rel=0.04)  # (3, 2) is beyond the m axis: ISI formula


def test_brunel_rates_within_15_percent_of_brian2(simulated_slice, brunel):
    prior = Prior.load("brunel")
    pred = solve(_brunel(simulated_slice), BRUNEL_RUN)
    for k, point in enumerate(BRUNEL_POINTS):
        if point == (4.5, 0.9):
            continue  # synchronous irregular slow: the mean field over-predicts (reported only)
        sim = brunel.run(prior.to_simulator(list(point)), seed=3)
        assert sim.status == "ok"
        simulated = len(sim.spikes["E"][0]) / (sim.n_units["E"] * sim.t_end)
        assert pred.rate_E[k] == pytest.approx(simulated, rel=0.15), (point, pred.rate_E[k], simulated)
    assert pred.rate_E[0] == pytest.approx(37.9, rel=0.03)  # the simulated table, not the formula


def test_loop_gain_is_the_derivative_of_brunels_siegert_transfer():
    """One population, white noise (analytic Φ = Siegert, Brunel 2000 eq. 21): the loop gain
    is dΦ/dν, here by the chain rule through y = (V − μ)/σ (σ² = C J² τ ν_in, twice the free
    variance), e^{y²}(1 + erf y) = erfcx(−y)."""
    from scipy.special import erfcx

    from automind.cheap.baseline import AnalyticPhi

    net = _brunel(AnalyticPhi())
    f, g = net.f, net.g
    nu = np.array([[5.0], [20.0], [50.0], [2.0]])
    c, j, tau = f["C_E"], f["J"], f["tau_m"]
    mu = c * j * tau * (net.nu_x + nu[:, 0] * (1 - net.gamma * g))
    sigma = np.sqrt(c * j ** 2 * tau * (net.nu_x + nu[:, 0] * (1 + net.gamma * g ** 2)))
    d_mu = c * j * tau * (1 - net.gamma * g)
    d_sigma = c * j ** 2 * tau * (1 + net.gamma * g ** 2) / (2 * sigma)
    y_t, y_r = (f["theta"] - mu) / sigma, (f["v_reset"] - mu) / sigma
    d_y = [-d_mu / sigma - y * d_sigma / sigma for y in (y_t, y_r)]
    isi = f["t_refrac"] + tau * np.sqrt(np.pi) * quad_erfcx(y_r, y_t)
    d_isi = tau * np.sqrt(np.pi) * (erfcx(-y_t) * d_y[0] - erfcx(-y_r) * d_y[1])
    want = -d_isi / isi ** 2
    got = loop_gain(net, nu, np.zeros_like(nu))
    assert np.all(np.abs(want) > 0.05)  # the points are not trivially flat
    assert got == pytest.approx(want, rel=1e-3, abs=1e-6)


def quad_erfcx(lower, upper):
    from scipy.integrate import quad
    from scipy.special import erfcx

    return np.array([quad(lambda u: erfcx(-u), lo, hi)[0] for lo, hi in zip(lower, upper)])


def test_table_build_resumes_without_resimulating(simulated_slice):
    folder = simulated_slice.folder
    before = (folder / "log10_rate.npy").read_bytes()
    chunk = folder / "chunks" / "c000000.npy"
    stamp = chunk.stat().st_mtime_ns
    (folder / "table.json").unlink()  # as if the build had died before writing it
    again = build_table(BRUNEL_SLICE, NodeSettings(), seed=0, root=folder.parent)
    assert again == folder and chunk.stat().st_mtime_ns == stamp
    assert (folder / "log10_rate.npy").read_bytes() == before


def test_unconverged_is_undetermined_never_a_guess(simulated_slice):
    # integrated for 20 ms of a 1 s probe window: not settled, so nothing is claimed
    pred = solve(_brunel(simulated_slice), Protocol(probe=1.0, duration=10.0), horizon=0.02)
    assert list(pred.status) == ["undetermined"] * 4 and list(pred.regime) == [""] * 4
    assert np.all(np.isnan(pred.margin)) and pred.flags["unsettled"].all()


def _mk1_params(n, seed, **changes):
    prior = Prior.load("mk1")
    theta = prior.sample(n, seed=seed)
    params = {p.name: theta[:, j] * p.si_factor for j, p in enumerate(prior.parameters)}
    params["n_clusters"] = np.floor(params["n_clusters"])
    return params | {k: np.full(n, v) for k, v in changes.items()}


def test_mk1_without_drive_is_silent_and_driven_unconnected_matches_one_neuron(tmp_path):
    from automind.cheap.baseline import AnalyticPhi
    from automind.cheap.moments import dimensionless, membrane

    spec = SimulatorSpec.load("mk1")
    phi = AnalyticPhi()
    quiet = MK1Network(_mk1_params(50, 1, **{"E.poisson_rate": 0.0, "I.poisson_rate": 0.0}),
                       spec.fixed, spec.N, phi)
    assert set(solve(quiet, Protocol(duration=2.0)).status) == {"silent"}
    # no recurrent connections: each population is one neuron under its drive alone
    alone = _mk1_params(50, 2, p_e2e=0.0, p_e2i=0.0, p_i2e=0.0, p_i2i=0.0)
    net = MK1Network(alone, spec.fixed, spec.N, phi)
    rates, converged, _ = fixed_point(net, np.zeros((50, 3)))
    w = net.adiabatic(rates, np.arange(50))
    mom = membrane(net.neuron(0), net.external[0], w[:, 0])
    expected = 10 ** phi.lookup(dimensionless(net.neuron(0), mom))[0] / mom.tau_eff
    assert converged.mean() > 0.9
    np.testing.assert_allclose(rates[converged, 0],
                               np.minimum(expected, 1 / alone["E.t_refrac"])[converged],
                               rtol=2e-3, atol=1e-6)
    assert np.all(rates[:, 1] < 1e-6)  # undriven E, no inputs


def test_burst_score_counts_adaptation_cycles_and_adds_the_loop_gain():
    """Without an adaptation current (a = b = 0, w stays 0) τ_w changes nothing but the cycles
    that fit in the analysed window: the score moves by exactly ln(τ_w ratio), the loop gain
    not at all; Brunel has no adaptation (−inf)."""
    from automind.cheap.baseline import AnalyticPhi

    spec = SimulatorSpec.load("mk1")
    run = Protocol(duration=3.0, t_start=0.1)
    preds = [solve(MK1Network(_mk1_params(20, 3, **{"E.a": 0.0, "E.b": 0.0, "E.tau_w": tau}),
                              spec.fixed, spec.N, AnalyticPhi()), run) for tau in (0.5, 2.0)]
    fast, slow = preds
    known = np.isfinite(fast.loop_gain)
    assert known.sum() >= 15
    np.testing.assert_allclose(fast.loop_gain[known], slow.loop_gain[known], rtol=1e-9)
    np.testing.assert_allclose(fast.burst_score[known], np.log(2.9 / 0.5) + fast.loop_gain[known])
    np.testing.assert_allclose(fast.burst_score[known] - slow.burst_score[known], np.log(4.0))
    brunel = solve(_brunel(AnalyticPhi()), BRUNEL_RUN)
    assert np.all(brunel.burst_score == -np.inf)


#: Four asynchronous ok runs of a 3,000-draw MK1 prior bank (N = 2000, seed 4001; bank index,
#: θ in prior units) re-simulated in Brian2 with their bank seeds, w recorded on 200 neurons
#: (docs/cheap.md, "The first volley"): the driven E neurons' mean w over 0.1–0.3 s (pA), and
#: whether they fire a first volley (mean rate over the first 0.1 s: 0.07, 15.6, 0.0, 9.8 Hz).
FIRST_VOLLEY_RUNS = {
    67: ([0.883418, 0.019134, 0.083323, 0.188458, 0.098463, 4.371323, 1.865272, 0.558517,
          7.061024, 291.91589, 3.953549, -70.084256, -30.517193, -66.789813, 4.599275, 0.933899,
          6.658123, 181.473769, 13043.779478, -79.444667, 1.656254, 6.206184, 18.651298,
          17.914226, 3.239577, 3.682622, 3.489832, 2.214515], 3.5),
    744: ([0.879739, 0.026205, 0.033998, 0.12824, 0.195201, 3.032265, 1.538177, 0.220261,
           0.472556, 437.679526, 22.738244, -57.561285, -48.881126, -62.318783, 2.631503,
           3.969927, -6.95893, 175.092228, 4442.552578, -75.972881, 3.466806, 14.98733, 6.065314,
           2.256531, 4.619786, 4.227704, 1.829109, 1.48661], 423.6),
    834: ([0.862251, 0.011637, 0.080902, 0.065739, 0.142905, 4.9675, 1.819331, 0.987419,
           8.778936, 396.161619, 1.563182, -59.547482, -44.301518, -62.434381, 4.530244, 2.56455,
           -3.021967, 127.504829, 2337.528099, -74.40861, 3.639612, 19.354915, 12.706989,
           5.311914, 2.094456, 1.362263, 2.059578, 4.958982], 0.5),
    2952: ([0.747715, 0.041354, 0.098849, 0.08077, 0.055489, 2.926755, 1.362528, 0.116119,
            0.655393, 471.445427, 36.075315, -57.155798, -47.353284, -63.658709, 3.201376,
            0.526141, -0.867286, 190.965296, 15745.763811, -73.071942, 2.882238, 15.260332,
            7.857648, 13.31963, 4.517747, 1.406479, 5.962777, 1.394387], 245.9),
}


def _driven_w_after_start(table, start):
    """The driven E population's w (pA) 0.2 s from rest: the start, or 10 ms steps from zero."""
    from automind.cheap.screen import CheapModel
    from automind.cheap.solve import run_from_rest

    model = CheapModel.for_spec(SimulatorSpec.load("mk1"), Prior.load("mk1"), table)
    net = model.network(np.array([theta for theta, _ in FIRST_VOLLEY_RUNS.values()]))
    run = run_from_rest(net, Protocol(0.2, 0.2, 0.0), horizon=0.2, start=start)
    return run["w"][:, 0] * 1e12


@pytest.mark.parametrize("table", ["analytic", "built"])
def test_the_start_from_rest_fires_a_first_volley_where_brian2_does(table):
    """Brian2's driven E neurons fire a first volley only where their membranes reach threshold
    before the I population's (runs 744 and 2952); the 10 ms steps from zero rates fired one
    everywhere and left up to ~130 pA of adaptation behind (τ_w 2–16 s here)."""
    if table == "built":
        from conftest import built_cheap_table

        table = built_cheap_table()
    brian2 = np.array([w for _, w in FIRST_VOLLEY_RUNS.values()])
    started = _driven_w_after_start(table, start=0.2)
    volley = brian2 > 100
    assert np.all(started[~volley] < 20) and np.all(started[volley] > 150), started
    if table != "analytic":  # the table's rates: Brian2's w within 20 pA or 30 %
        assert np.all(np.abs(started - brian2) <= np.maximum(20, 0.3 * brian2)), started
        from_zero = _driven_w_after_start(table, start=0.0)
        assert from_zero[~volley].min() > 50, from_zero
