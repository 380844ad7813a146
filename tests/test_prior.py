"""Prior specs and the Prior type."""

import numpy as np
import pytest
import torch

from automind.errors import UserError
from automind.prior import Prior


def test_mk1_prior_matches_the_spec_table():
    prior = Prior.load("mk1")
    assert prior.dim == 28
    assert prior.names[0] == "exc_prop" and prior.names[-1] == "I.poisson_rate"
    by_name = {p.name: p for p in prior.parameters}
    assert (by_name["E.tau_w"].low, by_name["E.tau_w"].high, by_name["E.tau_w"].unit) == (5, 20000, "ms")
    assert by_name["n_clusters"].discrete == "floor"
    assert by_name["E.a"].low == -10 and by_name["E.C"].unit == "pF"


def test_brunel_prior_bounds():
    prior = Prior.load("brunel")
    assert prior.names == ["g", "nu_ext"]
    np.testing.assert_array_equal(prior.low, [0, 0])
    np.testing.assert_array_equal(prior.high, [8, 4])


def test_sampling_is_reproducible_and_uniform():
    prior = Prior.load("mk1")
    a, b = prior.sample(20000, seed=3), prior.sample(20000, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, prior.sample(20000, seed=4))
    assert ((a >= prior.low) & (a <= prior.high)).all()
    # uniform: mean at the midpoint, sd = width / sqrt(12), within sampling error
    np.testing.assert_allclose(a.mean(0), (prior.low + prior.high) / 2,
                               atol=0.02 * (prior.high - prior.low).max())
    np.testing.assert_allclose(prior.standardise(a).std(0), 1.0, atol=0.03)


def test_log_prob_and_torch_distribution():
    prior = Prior.load("brunel")
    inside = prior.log_prob([[4.0, 2.0]])
    assert inside[0] == pytest.approx(-np.log(8 * 4))
    assert prior.log_prob([[9.0, 2.0]])[0] == -np.inf
    sample = prior.distribution.sample((5,))
    assert isinstance(sample, torch.Tensor) and sample.shape == (5, 2)


def test_standardise_round_trip():
    prior = Prior.load("mk1")
    theta = prior.sample(10, seed=0)
    np.testing.assert_allclose(prior.destandardise(prior.standardise(theta)), theta)
    mid = (prior.low + prior.high) / 2
    np.testing.assert_allclose(prior.standardise(mid), 0, atol=1e-12)


def test_to_simulator_applies_units_and_floor():
    prior = Prior.load("mk1")
    theta = (prior.low + prior.high) / 2
    theta[prior.names.index("n_clusters")] = 7.9
    values = prior.to_simulator(theta)
    assert values["n_clusters"] == 7
    assert values["E.C"] == pytest.approx(260e-12)
    assert values["E.v_rest"] == pytest.approx(-65e-3)
    assert values["E.tau_w"] == pytest.approx(10.0025)
    import brian2

    quantities = prior.to_quantities(theta)
    assert quantities["E.C"].has_same_dimensions(brian2.farad)
    assert float(quantities["E.C"] / brian2.pF) == pytest.approx(260)


def test_log_scale_parameters():
    prior = Prior.from_dict({"parameter": [{"name": "tau", "low": 1, "high": 1000, "unit": "ms",
                                            "scale": "log"}]})
    x = prior.sample(40000, seed=1)[:, 0]
    assert np.median(x) == pytest.approx(np.sqrt(1000), rel=0.05)
    lp = prior.log_prob([[10.0]])[0]
    assert lp == pytest.approx(-np.log(np.log(1000)) - np.log(10), rel=1e-4)


@pytest.mark.parametrize("entry, message", [
    ({"name": "x", "low": 2, "high": 1}, "low < high"),
    ({"name": "x", "low": 0, "high": 1, "unit": "furlong"}, "unknown unit"),
    ({"name": "x", "low": 0, "high": 1, "colour": "red"}, "unknown key"),
    ({"name": "x", "low": 0, "high": 1, "scale": "log"}, "low > 0"),
    ({"low": 0, "high": 1}, "missing 'name'"),
])
def test_bad_prior_specs(entry, message):
    with pytest.raises(UserError, match=message):
        Prior.from_dict({"parameter": [entry]})


def test_bad_theta():
    prior = Prior.load("brunel")
    with pytest.raises(UserError, match="must have 2 values"):
        prior.validate([1.0, 2.0, 3.0])
    with pytest.raises(UserError, match="outside the prior support"):
        prior.validate([9.0, 1.0])
    with pytest.raises(UserError, match="NaN"):
        prior.validate([np.nan, 1.0])


def test_unknown_and_malformed_specs(tmp_path):
    with pytest.raises(UserError, match="unknown prior 'nope'"):
        Prior.load("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[parameter]\nname = ")
    with pytest.raises(UserError, match="malformed spec"):
        Prior.load(bad)


def test_constants_reach_the_simulator_but_not_theta():
    from automind.simulators import SimulatorSpec
    from automind.simulators.simulator import check_prior_fits

    mk1 = Prior.load("mk1")
    data = mk1.to_dict()
    data["parameter"] = [p for p in data["parameter"] if p["name"] in ("E.b", "E.Q_ge")]
    data["constant"] = [{"name": p.name, "value": (p.low + p.high) / 2, "unit": p.unit}
                        for p in mk1.parameters if p.name not in ("E.b", "E.Q_ge")]
    prior = Prior.from_dict(data)
    assert prior.names == ["E.b", "E.Q_ge"] and prior.dim == 2
    assert sorted(prior.simulator_names) == sorted(mk1.names)
    values = prior.to_simulator([100.0, 2.0])
    assert values["E.b"] == pytest.approx(100e-12) and values["E.Q_ge"] == pytest.approx(2e-9)
    assert values["E.C"] == pytest.approx(260e-12)                  # a constant, in SI
    assert Prior.from_dict(prior.to_dict()).to_simulator([100.0, 2.0]) == values
    check_prior_fits(SimulatorSpec.load("mk1"), prior)               # constants count
    data["constant"] = data["constant"][1:]
    with pytest.raises(UserError, match="lacks parameters"):
        check_prior_fits(SimulatorSpec.load("mk1"), Prior.from_dict(data))
    data["constant"].append({"name": "E.b", "value": 1.0})
    with pytest.raises(UserError, match="'E.b' is both"):
        Prior.from_dict(data)
