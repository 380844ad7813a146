"""Features in banks: computed while simulating, or later from stored spikes; same numbers."""

import numpy as np
import pytest

from automind.bank import Bank, BankError, extend
from automind.bank.featurise import featurise
from automind.features import SpikeData, get_feature_set
from automind.prior import Prior
from automind.simulators import SimulatorSpec


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    path = tmp_path_factory.mktemp("feat") / "bank"
    spec = SimulatorSpec.load("brunel").with_overrides(duration=0.5)
    extend(path, spec, Prior.load("brunel"), n=6, seed=3, chunk_size=2, keep_spikes=True,
           features=["spikes"], progress=False)
    return path


def test_features_while_simulating_equal_features_from_stored_spikes(bank):
    report = featurise(bank, "bursts", workers=2, progress=False)
    assert report["shards_computed"] == 3
    b = Bank(bank)
    stored = b.arrays(features="spikes")
    t_start = b.meta["simulator"]["t_analysis_start"]
    for row, index in enumerate(stored["index"]):
        data = SpikeData.from_simulation(b.spikes(int(index)))
        if t_start < data.duration:
            data = data.window(t_start)
        direct = get_feature_set("spikes").compute(data)
        np.testing.assert_allclose(stored["x"][row], direct, rtol=1e-6, equal_nan=True)
    assert b.arrays(features="bursts")["x"].shape == (6, len(get_feature_set("bursts").names))
    assert b.feature_sets["spikes"]["transforms"][0] == "log10"


def test_featurise_resumes(bank):
    featurise(bank, "psd", progress=False)
    b = Bank(bank)
    victim = b.records[1].name
    (bank / "features" / "psd" / f"{victim}.json").unlink()  # as if killed before committing
    report = featurise(bank, "psd", progress=False)
    assert report["shards_computed"] == 1
    assert len(Bank(bank).arrays(features="psd")["index"]) == 6


def test_extension_keeps_feature_sets_complete(bank):
    spec = SimulatorSpec.load("brunel").with_overrides(duration=0.5)
    extend(bank, spec, Prior.load("brunel"), n=8, seed=3, progress=False)
    b = Bank(bank)
    for name in ("spikes", "bursts", "psd"):
        assert len(b.arrays(features=name)["index"]) == 8


def test_featurise_needs_stored_spikes(tmp_path):
    spec = SimulatorSpec.load("brunel").with_overrides(duration=0.3)
    extend(tmp_path / "b", spec, Prior.load("brunel"), n=1, seed=1, progress=False)
    with pytest.raises(BankError, match="stores no spike trains"):
        featurise(tmp_path / "b", "spikes", progress=False)
