"""Every entry of every registry — simulator models, feature sets, study folders — is what its
protocol (``automind.protocols``) says, and works with what it is registered beside."""

from pathlib import Path

import numpy as np
import pytest

from automind.features.sets import FEATURE_SETS
from automind.prior import Prior
from automind.protocols import FeatureSetLike, PythonModel, SimulatorModel, StudyKind
from automind.simulators import MODELS, SimulatorSpec
from automind.simulators.simulator import check_prior_fits
from automind.studies import load_study, study_kind

STUDIES = Path(__file__).resolve().parents[1] / "studies"
ENTRIES = ([("model", name) for name in MODELS] + [("feature_set", name) for name in FEATURE_SETS]
           + [("study", folder.name) for folder in sorted(STUDIES.iterdir())
              if (folder / "study.toml").is_file()])


def check_model(name):
    """The model satisfies the protocol; its spec (simulators/NAME.toml) loads and names it;
    its prior (priors/NAME.toml) provides every value it reads; for a prior sample the units
    are laid out contiguously in population order and the run arguments are made."""
    model = MODELS[name]
    assert isinstance(model, SimulatorModel)
    if getattr(model, "backend", "brian2") != "brian2":
        assert isinstance(model, PythonModel)
    spec, prior = SimulatorSpec.load(name), Prior.load(name)
    assert spec.model == name
    assert set(model.compile_time_fixed) <= set(model.required_fixed) <= set(spec.fixed)
    check_prior_fits(spec, prior)
    params = prior.to_simulator(prior.sample(1, seed=0)[0])
    layout = model.layout(spec, params)
    assert tuple(layout) == tuple(model.populations)
    bounds = list(layout.values())
    assert bounds[0][0] == 0 and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    units, threshold = model.probe(spec, params)
    assert 0 < units <= bounds[-1][1] and threshold >= 0
    assert isinstance(model.run_args(spec, params, np.random.default_rng(0)), dict)


def tiny_input(feature_set):
    """4 s of Poisson spikes (32 E and 8 I units) with a network burst every second, or eight
    noisy population rates."""
    rng = np.random.default_rng(0)
    if feature_set.source == "rates":
        return (5 + rng.standard_normal((2000, 8)).clip(-4), 1e-3)
    from automind.features.spikedata import SpikeData

    bursts = (np.arange(0.5, 4.0)[:, None] + rng.normal(0, 0.01, (4, 400))).ravel()
    times = np.concatenate([rng.uniform(0, 4.0, 3200), bursts])
    return (SpikeData(times, rng.integers(0, 40, times.size), 4.0, np.arange(40),
                      groups={"E": np.arange(32), "I": np.arange(32, 40)}),)


def check_feature_set(name):
    """The set satisfies the protocol, is registered under its own name and computes one
    value per declared name (mostly finite on bursting activity), with one transform each."""
    feature_set = FEATURE_SETS[name]
    assert isinstance(feature_set, FeatureSetLike) and feature_set.name == name
    assert len(feature_set.log10) == len(feature_set.names) == len(set(feature_set.names))
    values = feature_set.compute(*tiny_input(feature_set))
    assert values.shape == (len(feature_set.names),)
    assert np.isfinite(values).mean() > 0.5
    meta = feature_set.metadata()
    assert meta["names"] == list(feature_set.names) and len(meta["transforms"]) == len(values)
    assert feature_set.transform(values[None]).shape == (1, len(values))


def check_study(folder):
    """The folder's study.toml names a known kind whose module satisfies the protocol."""
    config = load_study(STUDIES / folder)
    assert isinstance(study_kind(config["kind"]), StudyKind)


CHECKS = {"model": check_model, "feature_set": check_feature_set, "study": check_study}


@pytest.mark.parametrize("registry,entry", ENTRIES, ids=[f"{r}:{e}" for r, e in ENTRIES])
def test_every_registry_entry_satisfies_its_protocol(registry, entry):
    CHECKS[registry](entry)


def test_the_registries_are_not_empty():
    assert {r for r, _ in ENTRIES} == set(CHECKS) and len(ENTRIES) >= 3 + 8 + 5
