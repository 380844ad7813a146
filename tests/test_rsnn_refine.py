"""The derivative-free Gauss–Newton refinement (rsnn/refine.py) on residuals with a known
answer: linear in the prior-standardised θ, noise common to a seed (as a network's)."""

import numpy as np
import pytest

from automind.errors import UserError
from automind.prior import Prior
from automind.rsnn.refine import averaged, refine_theta

PRIOR = Prior.from_dict({"name": "box", "parameter": [
    {"name": "a", "low": 0.0, "high": 10.0}, {"name": "b", "low": -1.0, "high": 1.0}]})
A = np.array([[3.0, 0.5], [0.0, 2.0], [1.0, -1.0], [2.0, 0.0], [0.5, 0.5], [0.0, 1.5]])
U_TRUE = np.array([0.4, -0.5])


def linear_residuals(noise: float = 0.3, broken=None):
    """r = A (u − u*) + ε(seed): every row of one seed shares ε (common random numbers);
    ``broken``: θ rows with a = this value give NaN (a start whose runs define no feature)."""
    def residuals(thetas, seeds):
        u = PRIOR.standardise(thetas)
        eps = np.array([np.random.default_rng(s).normal(0, noise, len(A)) for s in seeds])
        r = (u - U_TRUE) @ A.T + eps
        if broken is not None:
            r[np.abs(thetas[:, 0] - broken) < 1.0] = np.nan
        return r
    return residuals


def test_refinement_reaches_the_least_squares_point_and_its_curvature():
    starts = PRIOR.destandardise(np.array([[-1.2, 1.0], [1.2, 0.8], [0.0, -1.3]]))
    result = refine_theta(linear_residuals(), PRIOR, starts, steps=8, step_sd=0.3, seed=1)
    u = PRIOR.standardise(result.theta)
    # damped steps contract towards u* (rate λm / (eig + λm) <= 0.3 here); the averaged
    # iterates carry the per-step noise 0.3 / sqrt(eig) / sqrt(4)
    assert np.abs(u - U_TRUE).max() < 0.1, u
    assert np.all(result.d2[0] > 1.0) and np.all(result.d2[-1] < 0.5)
    # linear residuals: central differences are exact, JᵀJ / m is AᵀA / m
    np.testing.assert_allclose(result.jtj, np.repeat((A.T @ A / len(A))[None], 3, 0), atol=1e-9)
    assert result.status == ["ok"] * 3 and result.path.shape == (9, 3, 2)
    np.testing.assert_allclose(PRIOR.standardise(result.path[-averaged(8):].reshape(-1, 2))
                               .reshape(-1, 3, 2).mean(0), u, atol=1e-9)
    again = refine_theta(linear_residuals(), PRIOR, starts, steps=8, step_sd=0.3, seed=1)
    np.testing.assert_array_equal(again.theta, result.theta)  # same seed, same result


def test_a_start_without_features_fails_and_the_others_go_on():
    starts = PRIOR.destandardise(np.array([[-1.2, 1.0], [1.2, 0.8]]))
    broken = float(starts[1, 0])
    result = refine_theta(linear_residuals(broken=broken), PRIOR, starts, steps=4, seed=2)
    assert result.status == ["ok", "failed"] and "no feature is defined" in result.messages[1]
    np.testing.assert_allclose(result.theta[1], starts[1])  # where it stopped
    assert np.isnan(result.d2[:, 1]).all() and np.abs(PRIOR.standardise(result.theta)[0]
                                                      - U_TRUE).max() < 0.2


def test_an_interrupted_refinement_resumes_to_the_same_result(tmp_path):
    starts = PRIOR.destandardise(np.array([[-1.2, 1.0], [1.2, 0.8]]))
    whole = refine_theta(linear_residuals(), PRIOR, starts, steps=5, seed=4)

    def stop_after_two(step, d2):
        if step == 1:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "checkpoint.npz"
    with pytest.raises(KeyboardInterrupt):
        refine_theta(linear_residuals(), PRIOR, starts, steps=5, seed=4, progress=stop_after_two,
                     checkpoint=checkpoint)
    assert checkpoint.is_file()
    resumed = refine_theta(linear_residuals(), PRIOR, starts, steps=5, seed=4,
                           checkpoint=checkpoint)
    np.testing.assert_array_equal(resumed.theta, whole.theta)
    with pytest.raises(UserError, match="checkpoint of another refinement"):
        refine_theta(linear_residuals(), PRIOR, starts, steps=6, seed=4, checkpoint=checkpoint)
    with pytest.raises(UserError, match=r"in \(0, 1\]"):
        refine_theta(linear_residuals(), PRIOR, starts, steps=5, step_sd=2.0)


def test_correlated_noise_is_whitened_to_the_generalised_least_squares_point():
    """r = A (u − u*) + b with b outside A's range: the steps minimise rᵀR⁻¹r, so they end
    at the generalised least-squares point u* − (AᵀR⁻¹A)⁻¹AᵀR⁻¹b (without R: at the ordinary
    one), and d² is the acceptance's zᵀR⁻¹z / m."""
    R = 0.2 * np.eye(len(A)) + 0.8  # one common noise mode, as the spectral bands'
    b = np.array([1.5, 0.0, -1.0, 0.0, 0.0, 0.0])

    def residuals(thetas, seeds):
        return (PRIOR.standardise(thetas) - U_TRUE) @ A.T + b

    gls = U_TRUE - np.linalg.solve(A.T @ np.linalg.solve(R, A), A.T @ np.linalg.solve(R, b))
    ols = U_TRUE - np.linalg.lstsq(A, b, rcond=None)[0]
    assert np.abs(gls - ols).max() > 0.3
    start = PRIOR.destandardise(np.array([[0.0, 0.0]]))
    whitened = refine_theta(residuals, PRIOR, start, steps=12, seed=1, correlation=R)
    plain = refine_theta(residuals, PRIOR, start, steps=12, seed=1)
    np.testing.assert_allclose(PRIOR.standardise(whitened.theta)[0], gls, atol=1e-3)
    np.testing.assert_allclose(PRIOR.standardise(plain.theta)[0], ols, atol=1e-3)
    r = residuals(whitened.theta, [0])[0]
    assert whitened.d2[-1, 0] == pytest.approx(r @ np.linalg.solve(R, r) / len(A), rel=1e-3)


def test_residuals_averaged_over_seeds_shrink_the_fits_noise_by_their_root():
    """Linear residuals: the central differences are exact on every seed, so the iteration is
    linear in the noise and averaging each step's residuals over S seeds scales the fits' error
    by 1/√S (here S = 4: one half); d² stays one run's (the mean over seeds of each seed's)."""
    noise = 0.6
    starts = PRIOR.destandardise(np.tile([[0.5, -0.3]], (200, 1)))

    def rms_error(seeds):
        result = refine_theta(linear_residuals(noise), PRIOR, starts, steps=6, seed=1,
                              seeds=seeds)
        return np.sqrt(np.mean((PRIOR.standardise(result.theta) - U_TRUE) ** 2)), result.d2

    one, _ = rms_error(1)
    four, d2 = rms_error(4)
    assert 0.4 < four / one < 0.6, (one, four)
    assert np.mean(d2[-3:]) > 0.8 * noise ** 2  # not the averaged residuals' noise² / 4
    with pytest.raises(UserError, match="seeds must be >= 1"):
        refine_theta(linear_residuals(), PRIOR, starts, seeds=0)


def test_curvature_across_seeds_is_free_of_the_differences_noise():
    """Noise that differs between the 2d + 1 runs of a seed (a chaotic network's) puts σ²/(2h²)
    per feature into each seed's JᵀJ; across seeds (S ≥ 2) JᵀJ / m is AᵀA / m unbiased."""
    sigma, h = 0.3, 0.3

    def residuals(thetas, seeds):
        rows = np.arange(len(thetas)) % (2 * len(U_TRUE) + 1)
        eps = np.array([np.random.default_rng([s, i]).normal(0, sigma, len(A))
                        for s, i in zip(seeds, rows)])
        return (PRIOR.standardise(thetas) - U_TRUE) @ A.T + eps

    starts = PRIOR.destandardise(np.tile([[0.4, -0.5]], (40, 1)))
    exact = A.T @ A / len(A)
    one = refine_theta(residuals, PRIOR, starts, steps=4, step_sd=h, seed=3).jtj.mean(0)
    three = refine_theta(residuals, PRIOR, starts, steps=4, step_sd=h, seed=3, seeds=3).jtj.mean(0)
    bias = sigma ** 2 / (2 * h ** 2)  # 0.5 on the diagonal
    np.testing.assert_allclose(one - exact, bias * np.eye(2), atol=0.1)
    np.testing.assert_allclose(three, exact, atol=0.1)
