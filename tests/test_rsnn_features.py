"""Differentiable features against the numpy features on the same rasters (spec rsnn.md §3):
equal within 1e-9 relative (Welch PSD vs scipy within 1e-10), gradcheck on relaxed spikes,
and the smooth burst measure against the detector on periodic Gaussian bursts."""

import numpy as np
import pytest
import torch
from scipy import signal
from scipy.ndimage import gaussian_filter1d

from automind.features import SpikeData, compute_features
from automind.features import stats
from automind.features.bursts import SMOOTHING
from automind.features.sets import population_psd, psd_band_features
from automind.rsnn import features as F
from test_features import inhomogeneous, poisson


def to_counts(times, ids, n_units, duration):
    """(1, T, N) float64 counts in 1 ms bins (times are never within 1e-6 of an edge here)."""
    T = int(round(duration / 1e-3))
    counts = np.zeros((T, n_units))
    np.add.at(counts, (np.floor(times / 1e-3).astype(int), ids), 1)
    return torch.tensor(counts[None])


def raster(seed=0, n_units=60, duration=4.25):
    rng = np.random.default_rng(seed)
    rate = lambda t: 8 + 7 * np.sin(2 * np.pi * 11 * t)  # noqa: E731
    times, ids = inhomogeneous(rng, n_units, duration, rate, 15)
    times = np.floor(times / 1e-3) * 1e-3 + 0.4e-3  # inside the bins
    silent = ids != 3                                  # one silent unit (rates, active pairs)
    return times[silent], ids[silent], n_units, duration


@pytest.fixture(scope="module", params=[0, 1])
def data(request):
    times, ids, n, duration = raster(request.param)
    return SpikeData(times, ids, duration, np.arange(n)), to_counts(times, ids, n, duration)


def rel(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-300)


def test_spike_statistics_equal_numpy(data):
    sd, counts = data
    expected = dict(zip(stats.NAMES, stats.spike_statistics(sd)))
    mean, std = F.rate_mean_std(counts)
    assert rel(mean[0], expected["rate_mean"]) < 1e-9
    assert rel(std[0], expected["rate_std"]) < 1e-9
    for name, width in zip(("fano_10ms", "fano_100ms", "fano_1s"), stats.FANO_BINS):
        assert rel(F.fano(counts, width)[0], expected[name]) < 1e-9, name
    assert rel(F.corr_mean(counts)[0], expected["corr_mean"]) < 1e-9
    c = counts[0].numpy()  # χ as tests/conftest.py's synchrony_chi, on 1 ms counts
    assert rel(F.synchrony_chi(counts)[0], np.sqrt(c.mean(1).var() / c.var(0).mean())) < 1e-9


def test_corr_mean_uses_the_same_pairs_with_few_units():
    times, ids, n, duration = raster(3, n_units=12, duration=1.03)
    sd = SpikeData(times, ids, duration, np.arange(n))
    assert rel(F.corr_mean(to_counts(times, ids, n, duration))[0],
               stats.mean_pair_correlation(sd)) < 1e-9


def test_psd_equals_scipy_and_the_feature(data):
    sd, counts = data
    freqs, expected = population_psd(sd)
    got = F.psd(counts)[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(F.psd_bands(F.psd(counts))[0].numpy(), psd_band_features(sd),
                               rtol=1e-10)
    # Welch with other settings, directly against scipy
    x = torch.randn(2, 700, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _, ref = signal.welch(x.numpy(), fs=100.0, window="hann", nperseg=128, noverlap=96)
    np.testing.assert_allclose(F.welch(x, 100.0, 128, 32).numpy(), ref, rtol=1e-10)


def test_band_power_and_relative_power():
    spectrum = torch.ones(1, 990, dtype=torch.float64)
    assert float(F.band_power(spectrum, 1.0, 200.0)) == pytest.approx(399 * 0.5)
    assert float(F.relative_band_power(spectrum, 1.0, 100.5)) == pytest.approx(200 / 399)


def test_smoothing_equals_scipy():
    x = torch.rand(2, 500, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    np.testing.assert_allclose(F.gaussian_smooth(x, 20.0).numpy(),
                               gaussian_filter1d(x.numpy(), 20.0, axis=1), rtol=1e-10, atol=1e-14)


def test_soft_bursts_match_detected_bursts():
    rng = np.random.default_rng(5)
    duration, sigma = 36.0, 0.05
    peaks = np.cumsum(rng.normal(3.0, 0.3, 20))
    peaks = peaks[peaks < duration - 1.0]
    profile = lambda t: 0.5 + 60 * np.exp(-0.5 * ((t[:, None] - peaks[None]) / sigma) ** 2).sum(1)  # noqa: E731
    times, ids = inhomogeneous(rng, 400, duration, profile, 61)
    sd = SpikeData(times, ids, duration, np.arange(400))
    f = compute_features(sd, "bursts")
    rate = torch.tensor(sd.population_rate(1e-3)[None])
    soft_rate, fraction = F.soft_bursts(rate)
    assert float(soft_rate) == pytest.approx(f["burst_rate"], rel=0.05)
    # width at 5 % of the peak over width at half of it, for a Gaussian: sqrt(ln 20 / ln 2)
    ratio = f["burst_width_mean"] / (float(fraction) * duration / f["burst_num"])
    assert ratio == pytest.approx(np.sqrt(np.log(20) / np.log(2)), rel=0.05)
    assert np.isnan(float(F.soft_bursts(torch.full((1, 3000), 1.0, dtype=torch.float64))[0]))


def test_gradcheck_on_relaxed_spikes():
    gen = torch.Generator().manual_seed(0)
    z = (0.2 + 0.6 * torch.rand(1, 48, 3, dtype=torch.float64, generator=gen)).requires_grad_()
    assert torch.autograd.gradcheck(lambda c: F.fano(c, 0.004), (z,))
    assert torch.autograd.gradcheck(lambda c: F.corr_mean(c, width_s=0.006), (z,))
    assert torch.autograd.gradcheck(lambda c: F.rate_mean_std(c)[1], (z,))
    assert torch.autograd.gradcheck(lambda c: F.synchrony_chi(c), (z,))
    assert torch.autograd.gradcheck(lambda c: F.welch(F.population_rate(c), 1e3, 16, 4), (z,))
    rate = (5 + 20 * torch.rand(1, 100, dtype=torch.float64, generator=gen)).requires_grad_()
    assert torch.autograd.gradcheck(lambda r: torch.stack(F.soft_bursts(r)), (rate,))


def test_bin_ms_sums_steps():
    z = torch.zeros(1, 10, 2)
    z[0, [0, 4, 5, 9], 1] = 1
    np.testing.assert_array_equal(F.bin_ms(z, 5)[0, :, 1].numpy(), [2, 2])
