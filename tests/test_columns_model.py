"""The column as an SBI simulator: registry model, rate-based features, a bank, recovery."""

import numpy as np
import pytest

from automind.bank import Bank, extend
from automind.columns import dmf, model
from automind.columns.features import NAMES
from automind.features.sets import simulation_features
from automind.prior import Prior
from automind.simulators import Simulator, SimulatorSpec, simulate

PUBLISHED = {"nu_bg": 8.0, "g": 4.0, "J_E": 87.8e-12, "l4_to_l23_gain": 2.0}


def test_noise_free_simulation_gives_the_steady_state_and_its_features():
    spec = SimulatorSpec.load("column")
    spec = spec.with_overrides(duration=1.0, fixed=spec.fixed | {"sigma": 0.0})
    result = Simulator(spec).run(PUBLISHED, seed=3)
    assert result.status == "ok" and result.state["rate"].shape == (1000, 8)
    np.testing.assert_allclose(result.state["rate"][-1], dmf.steady_rates(), rtol=1e-9)
    x = simulation_features(result, ["column"], t_start=0.5)["column"]
    assert x.shape == (len(NAMES),)
    np.testing.assert_allclose(x[:8], dmf.steady_rates(), rtol=1e-3)
    assert np.all(x[8:] < 1e-12)  # a fixed point has no power


def test_same_seed_same_rates_whatever_the_batch():
    spec = SimulatorSpec.load("column").with_overrides(duration=0.6)
    rows = [PUBLISHED, PUBLISHED | {"g": 5.0}, PUBLISHED | {"nu_bg": 6.0}]
    batch = model.run_batch(spec, rows, [11, 12, 13], 0.6)
    alone = model.run(spec, rows[1], 12, 0.6)
    np.testing.assert_array_equal(batch[1]["state"]["rate"], alone["state"]["rate"])
    other = model.run(spec, rows[1], 99, 0.6)
    assert not np.array_equal(other["state"]["rate"], alone["state"]["rate"])
    # the published noise level moves the rates but keeps them near the fixed point
    assert np.abs(alone["state"]["rate"][-100:].mean(0) / dmf.steady_rates() - 1).max() > 0
    results = simulate("column", theta=[[8.0, 4.0, 87.8, 2.0]], seed=5, duration=0.6)
    assert results[0].status == "ok" and results[0].state["rate"].shape == (600, 8)


def test_runaway_and_bad_specs():
    spec = SimulatorSpec.load("column").with_overrides(duration=0.3)
    out = model.run(spec, PUBLISHED | {"g": 0.5, "nu_bg": 30.0}, 1, 0.3)
    assert out["status"] == "runaway"
    from automind.errors import UserError

    with pytest.raises(UserError, match="N must be 8"):
        spec.with_overrides(N=16)


TWO_PARAMETERS = {
    "name": "column2",
    "parameter": [{"name": "nu_bg", "unit": "Hz", "low": 6.0, "high": 10.0},
                  {"name": "g", "unit": "1", "low": 3.5, "high": 5.0}],
    "constant": [{"name": "J_E", "value": 87.8, "unit": "pA"},
                 {"name": "l4_to_l23_gain", "value": 2.0}],
}


def test_a_bank_of_columns_has_features_and_is_reproducible(tmp_path):
    spec = SimulatorSpec.load("column").with_overrides(duration=1.0)  # 0.5 s analysed
    prior = Prior.from_dict(TWO_PARAMETERS)
    for name in ("a", "b"):
        extend(tmp_path / name, spec, prior, n=12, seed=4, workers=1, chunk_size=6,
               features=["column"], progress=False)
    a, b = (Bank(tmp_path / name).arrays(features="column") for name in ("a", "b"))
    assert (a["status"] == "ok").all() and np.isfinite(a["x"]).all()
    np.testing.assert_array_equal(a["x"], b["x"])
    np.testing.assert_array_equal(a["theta"], b["theta"])


@pytest.mark.slow  # ~1.5 CPU-minutes, mostly training the flow
def test_a_small_bank_recovers_a_known_parameter_pair(tmp_path):
    from automind.inference.train import train_on_bank

    spec = SimulatorSpec.load("column").with_overrides(duration=1.5)
    prior = Prior.from_dict(TWO_PARAMETERS)
    extend(tmp_path / "bank", spec, prior, n=400, seed=0, workers=1, chunk_size=100,
           features=["column"], progress=False)
    bank = Bank(tmp_path / "bank")
    posterior = train_on_bank(bank, "column", max_epochs=150, progress=False, seed=0)
    truth = np.array([7.2, 4.4])
    result = Simulator(spec).run(prior.to_simulator(truth), seed=12345)
    x = simulation_features(result, ["column"], spec.t_analysis_start)["column"]
    samples = posterior.sample(2000, x, seed=0)
    width = prior.high - prior.low
    low, high = np.quantile(samples, [0.01, 0.99], axis=0)
    assert np.all((low < truth) & (truth < high))
    assert np.all(np.abs(np.median(samples, 0) - truth) < 0.15 * width)
    assert np.all(samples.std(0) < 0.1 * width)  # the data are informative
