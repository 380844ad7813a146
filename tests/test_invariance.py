"""Geometry of consistent sets on toys with exact invariances (known manifolds, tangents,
normals, angles)."""

import numpy as np
import pytest

from automind.errors import UserError
from automind.inference import train
from automind.invariance.geometry import (conditional_correlations, fisher_information,
                                          global_geometry, hessian_directions,
                                          overlap_coefficients, principal_angles)
from automind.prior import Prior

NOISE = 0.03


def box(d):
    return Prior.from_dict({"name": "toy", "parameter": [
        {"name": f"t{k + 1}", "low": 0.5, "high": 2.0} for k in range(d)]})


def product(theta, seeds=None):
    """x = θ1·θ2 (·θ3) + noise; the same seed gives the same noise (common random numbers)."""
    rng = [np.random.default_rng(s) for s in seeds] if seeds is not None else None
    noise = (np.array([r.standard_normal() for r in rng]) if rng is not None
             else np.random.default_rng(0).standard_normal(len(theta)))
    return (np.prod(theta, axis=1) + NOISE * noise)[:, None]


@pytest.fixture(scope="module")
def toy2():
    prior = box(2)
    theta = prior.sample(4000, seed=1)
    posterior = train(theta, product(theta), prior, progress=False, hidden_features=32, patience=10)
    samples = posterior.sample(3000, [1.0], seed=2)
    consistent = samples[np.abs(product(samples)[:, 0] - 1.0) < 2 * NOISE]
    return prior, posterior, consistent


def unit(v):
    return np.asarray(v, float) / np.linalg.norm(v)


def test_consistent_set_lies_on_the_manifold_and_is_one_dimensional(toy2):
    prior, _, consistent = toy2
    assert len(consistent) > 500
    assert np.quantile(np.abs(np.prod(consistent, 1) - 1.0), 0.95) < 3 * NOISE
    geometry = global_geometry(prior.standardise(consistent))
    assert geometry["participation_ratio"] < 1.3                 # a curve: dimension ~1
    assert geometry["explained_variance_ratio"][0] > 0.85
    assert geometry["pearson"][0, 1] < -0.7                      # compensation: θ1 up, θ2 down


@pytest.mark.parametrize("point", [(1.0, 1.0), (0.8, 1.25), (1.25, 0.8)])
def test_hessian_sloppy_and_stiff_directions_match_tangent_and_normal(toy2, point):
    prior, posterior, _ = toy2
    a, b = point
    u = prior.standardise(np.array([point]))
    values, vectors = hessian_directions(posterior, [1.0], u)
    # both parameters share the prior sd, so standardised directions equal θ directions
    stiff, sloppy = vectors[0][:, 0], vectors[0][:, 1]
    assert abs(stiff @ unit([b, a])) >= 0.95                     # the normal of θ1·θ2 = 1
    assert abs(sloppy @ unit([a, -b])) >= 0.95                   # its tangent
    assert values[0][0] > 10 * abs(values[0][1])


def test_fisher_directions_agree_with_the_hessian_and_are_stable(toy2):
    prior, posterior, _ = toy2
    point = np.array([0.8, 1.25])
    fisher = fisher_information(product, prior, point, step=0.05, repeats=8, seed=1)
    assert fisher["simulations"] == (2 * 2 + 1) * 8
    assert abs(fisher["eigenvectors"][:, 0] @ unit([1.25, 0.8])) >= 0.99
    _, vectors = hessian_directions(posterior, [1.0], prior.standardise(point[None]))
    assert abs(fisher["eigenvectors"][:, 0] @ vectors[0][:, 0]) >= 0.95
    again = fisher_information(product, prior, point, step=0.05, repeats=8, seed=2)
    top = fisher["eigenvalues"][0], again["eigenvalues"][0]
    assert abs(top[0] - top[1]) / top[0] < 0.5   # 8 repeats: Σ from 8 samples of 1 feature


def test_conditional_correlation_has_the_compensating_sign(toy2):
    prior, posterior, consistent = toy2
    conditions = prior.standardise(consistent[:10])
    corr = conditional_correlations(posterior, [1.0], conditions, resolution=30)
    assert corr[0, 1] < -0.5 and corr[0, 1] == corr[1, 0] and corr[0, 0] == 1


def test_a_surface_in_three_dimensions_has_two_dimensions():
    prior = box(3)
    theta = prior.sample(200000, seed=3)
    consistent = theta[np.abs(product(theta)[:, 0] - 1.0) < 2 * NOISE]  # rejection from the prior
    geometry = global_geometry(prior.standardise(consistent))
    assert 1.6 < geometry["participation_ratio"] < 2.4
    assert geometry["explained_variance_ratio"][2] < 0.1


@pytest.mark.parametrize("angle", [0.0, 25.0, 60.0])
def test_principal_angle_between_invariant_directions(angle):
    """Targets w·θ = c with w at 0° and at `angle`: each set is a segment orthogonal to w."""
    prior = Prior.from_dict({"name": "lin", "parameter": [
        {"name": "a", "low": -1, "high": 1}, {"name": "b", "low": -1, "high": 1}]})
    theta = prior.sample(100000, seed=4)
    sets = []
    for phi in (0.0, np.radians(angle)):
        w = np.array([np.cos(phi), np.sin(phi)])
        sets.append(prior.standardise(theta[np.abs(theta @ w - 0.1) < 0.01]))
    first = [global_geometry(s)["components"][:, :1] for s in sets]
    assert principal_angles(*first)[0] == pytest.approx(angle, abs=5.0)
    overlap = overlap_coefficients(sets[0], sets[1])
    if angle == 0:
        assert (overlap > 0.9).all()                               # identical targets


def test_too_few_configurations_is_a_clear_error():
    with pytest.raises(UserError, match="needs at least 10 configurations; the consistent set has 3"):
        global_geometry(np.zeros((3, 2)))


def test_mk1_composites_known_values_and_a_kept_combination():
    from automind.invariance.composites import composite_spread, mk1_composites, shared_cluster_fraction

    prior = Prior.load("mk1")
    theta = prior.sample(1, seed=0)[0]
    values = dict(zip(prior.names, theta))
    out = mk1_composites(theta[None], prior.names, N=2000)
    assert out["tau_m"][0] == pytest.approx(values["E.C"] / values["E.g_L"])
    assert out["gap_thresh"][0] == pytest.approx(values["E.v_thresh"] - values["E.v_rest"])
    assert shared_cluster_fraction(2)[()] == 1.0                 # both neurons in both clusters
    assert shared_cluster_fraction(10)[()] == pytest.approx(1 - 28 / 45)
    # a set that varies C and g_L together at a fixed ratio keeps tau_m constant, nothing else
    rows = prior.sample(500, seed=1)
    c, g = prior.names.index("E.C"), prior.names.index("E.g_L")
    rows[:, g] = rows[:, c] / 20.0
    inside = (rows[:, g] >= prior.low[g]) & (rows[:, g] <= prior.high[g])
    spread = composite_spread(rows[inside], prior, N=2000)
    assert spread["tau_m"] < 0.01 and spread["gap_thresh"] > 0.8


def test_high_probability_path_stays_on_the_manifold_and_the_orthogonal_direction_leaves(toy2):
    from automind.invariance.geometry import high_probability_path, orthogonal_steps

    prior, posterior, _ = toy2
    ends = prior.standardise(np.array([[0.65, 1 / 0.65], [1 / 0.65, 0.65]]))
    found = high_probability_path(posterior, [1.0], ends[0], ends[1], n_points=30, iterations=30)
    assert found["loss"] < found["straight_loss"]
    on_path = prior.destandardise(found["path"])
    # "re-simulated" along the path, the output stays within the acceptance criterion ...
    assert np.quantile(np.abs(product(on_path)[:, 0] - 1.0), 0.9) < 2 * NOISE
    # ... whereas the straight line between the ends leaves it (θ1θ2 = 1.33 midway)
    assert np.abs(product(prior.destandardise(found["straight"]))[:, 0] - 1.0).max() > 0.2
    middle = len(found["path"]) // 2
    tangent = found["path"][middle + 1] - found["path"][middle - 1]
    away = prior.destandardise(orthogonal_steps(posterior, [1.0], found["path"][middle], tangent,
                                                n_steps=6, step=0.1))
    assert np.abs(np.prod(away[-1]) - 1.0) > 5 * NOISE        # the output changes fast


def test_path_check_resimulates_the_path_inside_and_the_contrasts_outside(toy2, tmp_path):
    from automind.invariance.paths import check_path, plot_path_check

    prior, posterior, consistent = toy2
    u = prior.standardise(consistent)
    report = check_path(posterior, [1.0], u, product, np.array([1.0]), np.array([NOISE]),
                        threshold=2.0, n_check=9, seed=3)
    ends = np.prod(consistent[report["ends"]], axis=1)
    assert np.abs(ends - 1).max() < 3 * NOISE and np.linalg.norm(np.subtract(*u[report["ends"]])) > 2
    assert report["simulations"] == 27
    # the output stays invariant: 7 or more of 9 path points (8/9 with the first training
    # defaults, 7/9 with TrainingConfig's), while the chord below leaves the set
    assert report["path"]["accepted_fraction"] >= 7 / 9
    assert report["straight"]["accepted_fraction"] <= 0.5      # the chord leaves the set
    away = report["orthogonal"]["distance"]
    assert away[0] <= 2.0 < away[-1] and away[-1] > 10         # and the normal leaves fast
    figure = plot_path_check(report, u, tmp_path / "path.png")
    assert figure.stat().st_size > 5000


def _linear_set(angle_deg, seed=4, offset=0.1):
    prior = Prior.from_dict({"name": "lin", "parameter": [
        {"name": "a", "low": -1, "high": 1}, {"name": "b", "low": -1, "high": 1}]})
    theta = prior.sample(100000, seed=seed)
    w = np.array([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))])
    keep = theta[np.abs(theta @ w - offset) < 0.01]
    return prior, keep


def test_compare_cli_reports_the_known_angle_and_separation(tmp_path, capsys):
    """Two 'runs' whose sets are segments at 0° and 30° invariant directions."""
    import json

    from automind.cli import main

    runs = []
    for name, angle in (("young", 0.0), ("old", 30.0)):
        prior, theta = _linear_set(angle)
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "consistent.npz", theta=theta, u=prior.standardise(theta),
                 names=np.array(prior.names))
        runs.append(str(tmp_path / name))
    assert main(["compare", *runs, "--out", str(tmp_path / "cmp"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    pair = report["pairs"]["young vs old"]
    assert report["subspace_dimension"] == 1
    assert pair["principal_angles_deg"][0] == pytest.approx(30.0, abs=5.0)
    assert (tmp_path / "cmp" / "compare_marginals.png").stat().st_size > 5000
    assert main(["compare", runs[0], "--out", str(tmp_path / "x")]) == 2
    assert "at least two runs" in capsys.readouterr().err


def test_identical_targets_overlap_and_shifted_ones_separate():
    from automind.invariance.compare import compare_sets

    prior, a = _linear_set(0.0, seed=5)
    _, b = _linear_set(0.0, seed=6)
    _, c = _linear_set(0.0, seed=7, offset=0.6)
    u = {k: prior.standardise(v) for k, v in (("a", a), ("b", b), ("c", c))}
    report = compare_sets(u, prior.names)
    same, moved = report["pairs"]["a vs b"], report["pairs"]["a vs c"]
    assert min(same["overlap"].values()) > 0.85 and same["separating_parameters"] == []
    assert same["principal_angles_deg"][0] < 5
    assert moved["separating_parameters"] == ["a"] and moved["overlap"]["a"] < 0.1


def test_compare_posteriors_for_two_targets_finds_the_known_shift_and_shared_geometry(tmp_path):
    """x = θ1 + θ2: targets 2.2 and 2.8 both leave the line θ1 + θ2 = x free, so their
    invariant and local sloppy directions agree, and the box-uniform segment's mean moves by
    0.3 in each parameter (0.69 prior sd)."""
    from automind.invariance.compare import compare_posteriors

    prior = box(2)
    theta = prior.sample(4000, seed=1)
    x = theta.sum(1, keepdims=True) + NOISE * np.random.default_rng(2).standard_normal((4000, 1))
    posterior = train(theta, x, prior, progress=False, hidden_features=32, patience=10)
    report = compare_posteriors(posterior, {"young": [2.2], "old": [2.8]}, tmp_path, n=3000,
                                n_local=40)
    pair = report["pairs"]["young vs old"]
    expected = 0.3 / (1.5 / np.sqrt(12))
    for name in ("t1", "t2"):
        assert pair["shift_prior_sd"][name] == pytest.approx(expected, abs=0.12)
    assert report["subspace_dimension"] == 1 and pair["principal_angles_deg"][0] < 8
    local = pair["local"]
    assert max(local["sloppy_subspace_angles_deg"]) < 10
    assert all(0.9 < d < 1.3 for d in local["local_dimensionality_median"])
    assert (tmp_path / "compare_local.png").stat().st_size > 5000
    with pytest.raises(UserError, match="at least two targets"):
        compare_posteriors(posterior, {"one": [2.2]}, tmp_path)
