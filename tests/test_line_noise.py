"""Line-noise peaks: found on a synthetic spectrum with known injected lines, masked from
spectral features (recorded in the metadata), and left alone where there are none."""

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from automind.features import SpikeData, compute_features
from automind.features.line_noise import find_lines, line_mask, with_line_mask
from automind.features.sets import population_psd

LINES = [50.0, 150.0, 217.25]


def population(rng, rate, n_units=200, dt=1e-3):
    counts = rng.poisson(rate * dt * n_units)
    times = np.repeat(np.arange(len(rate)) * dt, counts) + rng.uniform(0, dt, counts.sum())
    return SpikeData(times, rng.integers(0, n_units, len(times)), len(rate) * dt,
                     np.arange(n_units))


@pytest.fixture(scope="module")
def recordings():
    """The same broad 35-45 Hz network rhythm with and without three narrow injected lines."""
    rng = np.random.default_rng(3)
    t = np.arange(0, 120.0, 1e-3)
    sos = butter(4, [35, 45], btype="band", fs=1000, output="sos")
    broad = sosfiltfilt(sos, rng.normal(size=len(t)))
    broad *= 0.3 / broad.std()
    lines = sum(0.15 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in LINES)
    with_lines = population(rng, 10.0 * np.clip(1 + broad + lines, 0, None))
    clean = population(rng, 10.0 * np.clip(1 + broad, 0, None))
    return with_lines, clean


def test_finds_exactly_the_injected_lines(recordings):
    with_lines, clean = recordings
    found = find_lines(with_lines.population_rate(1e-3))
    np.testing.assert_allclose(found, LINES, atol=0.0625)      # one bin of the fine spectrum
    assert len(find_lines(clean.population_rate(1e-3))) == 0    # the broad rhythm is no line


def test_masked_spectrum_matches_the_line_free_one(recordings):
    with_lines, clean = recordings
    masked = with_line_mask(with_lines)
    assert masked.metadata["masked_lines_hz"] == pytest.approx(LINES, abs=0.0625)
    freqs, raw = population_psd(with_lines)
    _, fixed = population_psd(masked)
    _, reference = population_psd(clean)
    near = line_mask(freqs, LINES)
    assert near.sum() == 5 + 5 + 4                   # bins within ±1 Hz at 0.5 Hz resolution
    error = lambda p: np.abs(np.log10(p / reference))            # noqa: E731
    assert error(raw)[near].max() > 1.0                          # the lines: > 10x the spectrum
    scatter = error(raw)[~near].max()                            # estimation noise elsewhere
    assert error(fixed)[near].max() < scatter
    np.testing.assert_array_equal(fixed[~near], raw[~near])      # only the lines' bins change
    bands = compute_features(masked, "psd_bands")
    assert np.isfinite(list(bands.values())).all()


def test_short_or_silent_recordings_have_no_lines():
    assert len(find_lines(np.zeros(100_000))) == 0
    assert len(find_lines(np.ones(20_000))) == 0                 # < 4 fine segments: not searched
