"""The cheap model's iso-rate normals (``invariance/cheap_normals.py``): the alignment measures
on Hessians whose answer is known, and Brunel's normals against its physics and against
finite differences of the predictions themselves. The posterior side runs in
tests/test_invariance_cli.py (``--cheap analytic``)."""

import numpy as np
import pytest

from automind.cheap.screen import CheapModel
from automind.invariance.cheap_normals import (_random_abs_cosine, iso_rate_normals,
                                               normal_alignment, rate_subspace_report,
                                               rate_subspaces, set_alignment, subspace_share)
from automind.prior import Prior
from conftest import small_brunel_spec


def test_alignment_of_known_hessians():
    # H = diag(4, 1, 1) in a rotated basis: its stiffest direction is the basis' first vector
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    values = np.array([[4.0, 1.0, 1.0]] * 3)
    vectors = np.stack([basis] * 3)
    normals = np.stack([basis[:, 0], basis[:, 1], [np.nan] * 3])
    found = normal_alignment(normals, values, vectors)
    assert found["stiff_cosine"][:2] == pytest.approx([1.0, 0.0], abs=1e-12)
    # curvature along the normal over the mean curvature tr(H)/d = 2
    assert found["curvature_over_mean"][:2] == pytest.approx([2.0, 0.5])
    assert np.isnan(found["stiff_cosine"][2]) and found["n_predicted"] == 2
    assert found["stiff_cosine_median"] == pytest.approx(0.5)


def test_set_alignment_of_a_set_thin_along_a_known_direction():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(4000, 3)) * [0.05, 1.0, 1.0]  # thin along e0
    found = set_alignment(np.eye(3), u)
    # variance along e0 / mean variance = 0.0025 / (2.0025 / 3); along e1, e2: ≈ 1.5
    assert found["set_variance_over_mean"] == pytest.approx([0.0037, 1.5, 1.5], rel=0.1)
    assert found["set_thinnest_cosine"][0] == pytest.approx(1.0, abs=1e-3)
    assert max(found["set_thinnest_cosine"][1:]) < 0.05


@pytest.mark.parametrize("d, expected", [(2, 2 / np.pi), (3, 0.5)])
def test_random_direction_expectation(d, expected):
    assert _random_abs_cosine(d) == pytest.approx(expected)
    v = np.random.default_rng(1).normal(size=(200_000, d))
    assert np.mean(np.abs(v[:, 0]) / np.linalg.norm(v, axis=1)) == pytest.approx(expected, abs=0.005)


def test_brunel_normals_point_up_the_drive_and_down_the_inhibition():
    prior = Prior.load("brunel")
    model = CheapModel.for_spec(small_brunel_spec(), prior, "analytic")
    theta = np.array([[3.0, 1.5], [5.0, 2.5], [6.0, 3.5]])  # g, nu_ext: inhibition-dominated
    u = prior.standardise(theta)
    normals, method = iso_rate_normals(model, u)
    assert method.tolist() == ["linear_response"] * 3
    assert np.linalg.norm(normals, axis=1) == pytest.approx(1.0)
    assert np.all(normals[:, prior.names.index("g")] < 0)
    assert np.all(normals[:, prior.names.index("nu_ext")] > 0)
    # the same direction as central differences of the predicted log rate taken in u itself
    h = 1e-3
    rate = lambda v: np.log10(model.predict(prior.destandardise(v)).rate_E)  # noqa: E731
    direct = np.stack([(rate(u + h * e) - rate(u - h * e)) / (2 * h) for e in np.eye(2)], 1)
    direct /= np.linalg.norm(direct, axis=1, keepdims=True)
    assert np.abs(np.sum(direct * normals, 1)) == pytest.approx(1.0, abs=1e-4)


def test_mk1_linear_response_is_the_derivative_of_the_equilibrium():
    """dν/dθ = (I − ∂Φ/∂ν)⁻¹ ∂Φ/∂θ against re-solving the equilibrium at θ ± 10⁻³ of each
    prior width (the analytic Φ, asynchronous ok draws of the MK1 prior); bursting or
    non-ok draws have no equilibrium to respond and are NaN."""
    from automind.cheap.solve import fixed_point
    from automind.simulators import SimulatorSpec

    prior = Prior.load("mk1")
    model = CheapModel.for_spec(SimulatorSpec.load("mk1").with_overrides(N=500, duration=2.0),
                                prior, "analytic")
    theta = prior.sample(120, seed=3)
    response = model.rate_response(theta)
    pred = model.predict(theta)
    usable = np.isfinite(response["rate_E"]).all(1)
    assert usable.sum() >= 20
    assert not usable[(pred.status != "ok") | (pred.regime != "async")].any()
    assert np.isnan(response["rates"][~usable]).all()
    theta = theta[usable][:30]
    start, _, _ = fixed_point(model.network(theta), model.predict(theta).rates)
    width = prior.high - prior.low
    direct = np.zeros_like(theta)
    for j in range(theta.shape[1]):
        sides = []
        for sign in (1, -1):
            shifted = theta.copy()
            shifted[:, j] = np.clip(theta[:, j] + sign * 1e-3 * width[j], prior.low[j],
                                    prior.high[j])
            net = model.network(shifted)
            sides.append((shifted[:, j], np.log10(net.status_rate(fixed_point(net, start)[0]))))
        direct[:, j] = (sides[0][1] - sides[1][1]) / (sides[0][0] - sides[1][0])
    found = response["rate_E"][usable][:30]
    cos = np.abs((found * direct).sum(1)) / np.linalg.norm(found, axis=1) / np.linalg.norm(
        direct, axis=1)
    assert np.median(cos) > 0.99 and np.percentile(cos, 10) > 0.95, np.sort(cos)


def test_subspace_share_of_known_matrices():
    """The mean of M over span(e0, e1) over its mean over all directions: (1 + 2) / 2 over
    12 / 4 = 0.5 for diag(1, 2, 3, 6); a stiff Hessian along e0 gives (8 + 1) / 2 over 11 / 4."""
    bases = np.stack([np.eye(4)[:, :2]] * 2)
    assert subspace_share(bases, np.diag([1.0, 2, 3, 6])) == pytest.approx([0.5, 0.5])
    hessians = np.stack([np.diag([8.0, 1, 1, 1]), np.diag([1.0, 1, 1, 1])])
    assert subspace_share(bases, hessians) == pytest.approx([4.5 / 2.75, 1.0])


def test_mk1_rate_subspace_spans_every_population_normal():
    """MK1's three populations (E_d, E_n, I): the basis is orthonormal and holds each
    population's normal, which is the linear response's row in standardised coordinates."""
    from automind.simulators import SimulatorSpec

    prior = Prior.load("mk1")
    model = CheapModel.for_spec(SimulatorSpec.load("mk1").with_overrides(N=500, duration=2.0),
                                prior, "analytic")
    u = prior.standardise(prior.sample(60, seed=5))
    normals, bases = rate_subspaces(model, u)
    usable = np.isfinite(bases).all((1, 2))
    assert usable.sum() >= 10 and np.isnan(bases[~usable]).all()
    for q, n in zip(bases[usable], normals[usable]):
        assert q.T @ q == pytest.approx(np.eye(3), abs=1e-9)
        assert q @ (q.T @ n.T) == pytest.approx(n.T, abs=1e-9)  # each normal lies in the span
    # the E_d population's normal is d log ν_Ed / du: the θ response times dθ/du, normalised
    some, h = u[usable][:3], 1e-3
    theta = prior.destandardise(some)
    dtheta_du = (prior.destandardise(some + h) - prior.destandardise(some - h)) / (2 * h)
    g = model.rate_response(theta)["rates"][:, 0] * dtheta_du
    assert normals[usable][:3, 0] == pytest.approx(g / np.linalg.norm(g, axis=1, keepdims=True),
                                                   abs=1e-9)


def test_brunel_rate_subspace_is_its_one_normal():
    """One population: the subspace is the E normal, so the set's variance in it is its
    variance along the normal and the Hessian's curvature in it the curvature along it."""
    prior = Prior.load("brunel")
    model = CheapModel.for_spec(small_brunel_spec(), prior, "analytic")
    u = prior.standardise(np.array([[3.0, 1.5], [5.0, 2.5], [6.0, 3.5]]))
    u_set = np.random.default_rng(4).normal(size=(500, 2)) * [0.3, 1.0]
    values = np.array([[5.0, 1.0]] * 3)
    vectors = np.stack([np.eye(2)] * 3)
    report = rate_subspace_report(model, u, values, vectors, u_set)
    normals, _ = iso_rate_normals(model, u)
    assert report["populations"] == ["E"] and report["n_predicted"] == 3
    assert report["set_variance_over_mean_median"] == pytest.approx(
        set_alignment(normals, u_set)["set_variance_over_mean_median"])
    assert report["curvature_over_mean_median"] == pytest.approx(
        normal_alignment(normals, values, vectors)["curvature_over_mean_median"])
