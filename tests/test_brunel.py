"""Brunel (2000): two of the published regimes at the paper's example points (C_E = 1000 kept)."""

import numpy as np
import pytest

from automind.prior import Prior
from conftest import mean_isi_cv, synchrony_chi


@pytest.fixture(scope="module")
def regimes(brunel):
    prior = Prior.load("brunel")
    return {name: brunel.run(prior.to_simulator(theta), seed=1)
            for name, theta in {"SR": [3.0, 2.0], "AI": [5.0, 2.0]}.items()}


def test_synchronous_regular_at_g3_nu2(regimes):
    sr = regimes["SR"]
    assert sr.status == "ok"
    assert 250 < sr.rate("E") < 400          # Brunel's SR state fires near saturation (~310 Hz)
    assert mean_isi_cv(sr, 0.1) < 0.1        # nearly regular single units
    assert synchrony_chi(sr, 0.1) > 0.4      # strong population synchrony


def test_asynchronous_irregular_at_g5_nu2(regimes):
    ai = regimes["AI"]
    assert ai.status == "ok"
    assert 15 < ai.rate("E") < 60            # ~30-40 Hz
    assert mean_isi_cv(ai, 0.1) > 0.3        # irregular single units
    assert synchrony_chi(ai, 0.1) < 0.3      # weak population synchrony
    assert synchrony_chi(ai, 0.1) < 0.6 * synchrony_chi(regimes["SR"], 0.1)


def test_inhibition_and_drive_are_run_arguments(brunel):
    prior = Prior.load("brunel")
    silent = brunel.run(prior.to_simulator([5.0, 0.0]), seed=1)  # no external drive
    assert silent.status == "silent"


@pytest.mark.slow
@pytest.mark.parametrize("theta, rate_range, freq_range", [
    ([6.0, 4.0], (40, 80), (140, 220)),     # synchronous irregular, fast (~170-180 Hz)
    ([4.5, 0.9], (2, 8), (10, 30)),         # synchronous irregular, slow (~17 Hz)
], ids=["SI-fast", "SI-slow"])
def test_synchronous_irregular_regimes(theta, rate_range, freq_range):
    from automind.features.psd import rate_psd
    from automind.simulators import Simulator, SimulatorSpec

    sim = Simulator(SimulatorSpec.load("brunel").with_overrides(duration=4.2))
    result = sim.run(Prior.load("brunel").to_simulator(theta), seed=2)
    assert rate_range[0] < result.rate("E") < rate_range[1]
    assert mean_isi_cv(result, 0.2, 3) > 0.3                     # irregular units
    from automind.features import SpikeData

    rate = SpikeData.from_simulation(result).select("E").population_rate(1e-3)[200:]
    freqs, psd = rate_psd(rate, 1e-3, segment=1.0, fmin=5.0, fmax=300.0)
    assert freq_range[0] <= freqs[np.argmax(psd)] <= freq_range[1]  # a population oscillation
