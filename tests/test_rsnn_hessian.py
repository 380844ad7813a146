"""The Gauss-Newton loss Hessian (rsnn/hessian.py): exact on linear residuals, unbiased by the
seeds' noise, and on a coupled MK1 network its stiff direction is Brian2's rate gradient."""

import numpy as np
import pytest

from automind.prior import Prior
from automind.rsnn.hessian import abs_cos, flat_subspace_share, gauss_newton_hessian
from conftest import QUIET_MK1

BOX = Prior.from_dict({"parameter": [{"name": "a", "low": 0.0, "high": 2.0},
                                     {"name": "b", "low": 0.0, "high": 4.0}]})
A = np.array([[3.0, 1.0], [1.0, 0.5], [0.0, 2.0]])  # 3 residuals of 2 parameters


def linear_residuals(noise: float, common: bool):
    """r = A·u + ε: ε the same for every point of a seed (common) or drawn per point."""
    def residuals(theta, seeds):
        u = BOX.standardise(np.asarray(theta))
        rng = np.random.default_rng(seeds[0])
        eps = rng.normal(0, noise, (1 if common else len(u), 3))
        return u @ A.T + eps
    return residuals


def test_gauss_newton_hessian_of_linear_residuals_is_exact_and_unbiased():
    expected = 2 / 3 * A.T @ A
    found = gauss_newton_hessian(linear_residuals(0.5, common=True), BOX, [1.2, 1.5], repeats=2)
    np.testing.assert_allclose(found["hessian"], expected, rtol=1e-9)  # common noise cancels
    np.testing.assert_allclose(found["jacobian"], A, rtol=1e-9)
    np.testing.assert_allclose(found["jacobian_se"], 0, atol=1e-9)
    values, vectors = np.linalg.eigh(expected)
    assert abs_cos(found["sloppiest"], vectors[:, 0]) > 1 - 1e-9
    # noise per point: JᵀJ from pairs of different seeds is unbiased, J's own square is not
    # (each J entry carries variance 2·0.05²/0.2² = 0.125, inflating the diagonal by 3 × that)
    runs = [gauss_newton_hessian(linear_residuals(0.05, common=False), BOX, [1.2, 1.5],
                                 repeats=3, seed=s) for s in range(400)]
    mean = np.mean([r["hessian"] for r in runs], 0)
    np.testing.assert_allclose(mean, expected, atol=0.05)
    naive = np.mean([2 / 3 * r["jacobian"].T @ r["jacobian"] for r in runs], 0)
    assert np.diag(naive - expected).min() > 0.05  # the mean J's square: biased up
    with pytest.raises(ValueError, match="repeats >= 2"):
        gauss_newton_hessian(linear_residuals(0.0, True), BOX, [1.0, 1.0], repeats=1)


@pytest.mark.usefixtures("one_torch_thread")
def test_gauss_newton_stiff_direction_is_brian2s_rate_gradient():
    """A coupled 40-neuron MK1 (E→E, E→I, I→E at p = 0.3) with the drive rate and the
    adaptation increment free, the loss on the E rate only: H has rank one, and its stiff
    direction (from torch forward runs) is the gradient of the rate measured in Brian2 (the
    arbiter: 32 seeds at each of u ± 0.2 e_i), on two independent sets of seeds."""
    from automind.features.sets import get_feature_set, simulation_features
    from automind.rsnn.fit import Loss
    from automind.simulators import Simulator, SimulatorSpec

    free = {"E.poisson_rate": (0.5, 5.0, "Hz"), "E.b": (0.0, 200.0, "pA")}
    network = QUIET_MK1 | {"p_e2e": 0.3, "p_i2e": 0.3, "p_e2i": 0.3, "E.Q_ge": 0.5e-9}
    prior = Prior.from_dict({"name": "two", "parameter": [
        {"name": k, "low": lo, "high": hi, "unit": unit} for k, (lo, hi, unit) in free.items()],
        "constant": [{"name": k, "value": v} for k, v in network.items() if k not in free]})
    spec = SimulatorSpec.load("mk1").with_overrides(N=40, dt=5e-4, duration=0.55,
                                                    t_analysis_start=0.05)
    spikes, simulator = get_feature_set("spikes"), Simulator(spec)

    def brian2_rate(theta, seeds) -> float:
        rows = [simulation_features(simulator.run(prior.to_simulator(theta), seed=s),
                                    ["spikes"], spec.t_analysis_start)["spikes"] for s in seeds]
        return float(spikes.transform(np.array(rows))[:, spikes.names.index("rate_mean")].mean())

    theta = np.array([3.0, 60.0])
    loss = Loss(spec, prior, {"rate_mean": brian2_rate(theta, range(100, 108))},
                {"rate_mean": 0.05}, list(free))
    u0 = prior.standardise(theta[None])[0]
    gradient = []
    for i in range(2):
        step = 0.2 * np.eye(2)[i]
        gradient.append((brian2_rate(prior.destandardise((u0 + step)[None])[0], range(200, 232))
                         - brian2_rate(prior.destandardise((u0 - step)[None])[0], range(300, 332)))
                        / 0.4)
    for seed in (0, 50):
        found = gauss_newton_hessian(loss.residuals, prior, theta, step=0.2, repeats=4, seed=seed)
        small, large = found["eigenvalues"]
        assert abs(small) < 0.01 * large, found["eigenvalues"]  # one feature: rank one
        assert abs_cos(found["eigenvectors"][:, 1], gradient) > 0.98, (found, gradient)
        assert abs_cos(found["sloppiest"], gradient) < 0.2
        assert (np.abs(found["jacobian"]) > 2 * found["jacobian_se"]).all()  # both resolved


def test_the_flat_subspace_share_of_known_directions():
    """H = diag(10, 5, 0.01, −0.001) in a rotated basis: two stiff directions, two flat (below
    2 % of the largest |λ|, whatever the sign); a direction's share in the flat subspace is its
    squared projection there."""
    basis = np.linalg.qr(np.random.default_rng(3).normal(size=(4, 4)))[0]
    values = np.array([10.0, 5.0, 0.01, -0.001])
    e = basis.T  # e[i]: the eigenvector of values[i]
    assert flat_subspace_share(values, basis, e[2])["share"] == pytest.approx(1.0)
    assert flat_subspace_share(values, basis, e[0])["share"] == pytest.approx(0.0, abs=1e-12)
    mixed = flat_subspace_share(values, basis, 3 * (e[1] + e[3]))  # not a unit vector
    assert mixed == {"share": pytest.approx(0.5), "flat_dimensions": 2, "stiff_dimensions": 2}
