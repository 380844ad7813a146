"""set_spread: how much of the prior a consistent set spans, and whether it holds the truth."""

import numpy as np

from automind.invariance.consistent import set_spread
from automind.prior import Prior


def _prior():
    return Prior.from_dict({"name": "t", "parameter": [
        {"name": "a", "low": 0.0, "high": 1.0}, {"name": "b", "low": 10.0, "high": 12.0}]})


def test_a_prior_sample_spans_the_prior_and_holds_a_central_truth(tmp_path):
    prior = _prior()
    np.savez(tmp_path / "consistent.npz", theta=prior.sample(4000, seed=0))
    out = set_spread(tmp_path, prior, truth=[0.5, 11.0])
    assert abs(out["set_sd_over_prior_sd"] - 1.0) < 0.05
    assert out["truth_in_set_5_95"] == 2 and out["truth_outside_set_5_95"] == []


def test_a_contracted_set_reports_its_width_and_the_parameters_it_misses(tmp_path):
    prior = _prior()
    rng = np.random.default_rng(0)
    # a tenth of the prior's width in a, a fifth in b; the truth in b lies below the 5th pct
    theta = np.column_stack([rng.uniform(0.45, 0.55, 300), rng.uniform(10.8, 11.2, 300)])
    np.savez(tmp_path / "consistent.npz", theta=theta)
    out = set_spread(tmp_path, prior, truth=[0.5, 10.81])
    assert abs(out["set_sd_over_prior_sd"] - 0.15) < 0.02  # median of 0.1 and 0.2
    assert (out["truth_in_set_5_95"], out["truth_outside_set_5_95"]) == (1, ["b"])
    assert "truth_in_set_5_95" not in set_spread(tmp_path, prior)
    np.savez(tmp_path / "consistent.npz", theta=theta[:9])
    assert set_spread(tmp_path, prior, truth=[0.5, 11.0]) == {}
