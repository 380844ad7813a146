"""The reference posteriors of benchmarks/estimators.py against independent answers."""

import math

import numpy as np
from scipy import stats

from automind.inference.reference_tasks import get_task, moons_log_likelihood, slcp_log_likelihood


def test_gaussian_linear_uniform_reference_is_the_truncated_gaussian():
    task = get_task("gaussian_linear_uniform")
    x_o = np.linspace(-1.2, 1.2, 10)          # near and beyond the box edges
    samples = task.reference(x_o, 20000, seed=0)
    assert ((samples >= -1) & (samples <= 1)).all()
    sd = math.sqrt(0.1)
    truth = stats.truncnorm((-1 - x_o) / sd, (1 - x_o) / sd, loc=x_o, scale=sd)
    np.testing.assert_allclose(samples.mean(0), truth.mean(), atol=4 * truth.std().max() / math.sqrt(20000))
    np.testing.assert_allclose(samples.std(0), truth.std(), rtol=0.03)


def test_two_moons_reference_matches_the_likelihood_on_a_grid():
    """Histogram of reference samples vs p(x_o | θ) integrated over 80 x 80 bins of the box
    (a uniform prior): total variation within sampling noise."""
    task = get_task("two_moons")
    x_o = np.array([0.05, -0.1])
    samples = task.reference(x_o, 200_000, seed=1)
    edges = np.linspace(-1, 1, 81)
    centres = (edges[1:] + edges[:-1]) / 2
    h = edges[1] - edges[0]
    sub = (np.arange(10) + 0.5) / 10 - 0.5
    grid = np.stack(np.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 1, 2)
    offsets = h * np.stack(np.meshgrid(sub, sub, indexing="ij"), -1).reshape(1, -1, 2)
    density = np.exp(moons_log_likelihood((grid + offsets).reshape(-1, 2), x_o))
    expected = density.reshape(len(grid), -1).sum(1)
    expected /= expected.sum()
    observed = np.histogram2d(samples[:, 0], samples[:, 1], [edges, edges])[0].ravel() / len(samples)
    assert 0.5 * np.abs(observed - expected).sum() < 0.02
    # one branch only (a plausible bug) would be far off
    one_branch = samples[samples.sum(1) > 0]
    wrong = np.histogram2d(one_branch[:, 0], one_branch[:, 1], [edges, edges])[0].ravel() / len(one_branch)
    assert 0.5 * np.abs(wrong - expected).sum() > 0.3


def test_slcp_likelihood_and_reference():
    task = get_task("slcp")
    theta = np.array([[0.7, -2.9, -1.0, -0.9, 0.6]])
    x_o = task.simulate(theta, np.random.default_rng(0))[0]
    s1, s2, rho = 1.0, 0.81, math.tanh(0.6)
    cov = [[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]]
    expected = stats.multivariate_normal(theta[0, :2], cov).logpdf(x_o.reshape(4, 2)).sum()
    assert slcp_log_likelihood(theta, x_o)[0] == np.float64(expected) or \
        abs(slcp_log_likelihood(theta, x_o)[0] - expected) < 1e-9

    samples = task.reference(x_o, 3000, seed=2)
    assert ((samples >= -3) & (samples <= 3)).all()
    signs = (samples[:, 2:4] > 0).mean(0)
    assert (np.abs(signs - 0.5) < 0.05).all()            # the four modes balanced
    # independent check: self-normalised importance sampling of the orthant posterior
    # from a broad Gaussian around the reference (consistent whatever the proposal)
    folded = samples.copy()
    folded[:, 2:4] = np.abs(folded[:, 2:4])
    proposal = stats.multivariate_normal(folded.mean(0), 4 * np.cov(folded.T))
    draws = proposal.rvs(200_000, random_state=3)
    inside = ((draws >= [-3, -3, 0, 0, -3]) & (draws <= 3)).all(1)
    draws = draws[inside]
    log_w = slcp_log_likelihood(draws, x_o) - proposal.logpdf(draws)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    assert 1 / (w**2).sum() > 2000                       # enough effective samples
    is_mean = w @ draws
    is_sd = np.sqrt(w @ (draws - is_mean) ** 2)
    np.testing.assert_array_less(np.abs(folded.mean(0) - is_mean), 0.1 * is_sd + 0.02)
    np.testing.assert_allclose(folded.std(0), is_sd, rtol=0.15)
