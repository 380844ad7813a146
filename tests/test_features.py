"""Summary features against known answers, edge cases, and Elephant as an independent oracle."""

import numpy as np
import pytest

from automind.errors import UserError
from automind.features import SpikeData, compute_features, get_feature_set
from automind.features.bursts import SMOOTHING
from automind.features.sets import PSD_FREQS, population_psd


def poisson(rng, n_units, duration, rate):
    counts = rng.poisson(rate * duration, n_units)
    return (rng.uniform(0, duration, counts.sum()), np.repeat(np.arange(n_units), counts))


def inhomogeneous(rng, n_units, duration, rate_fn, rate_max):
    """Thinning: Poisson at rate_max, keep each spike with probability rate(t)/rate_max."""
    times, ids = poisson(rng, n_units, duration, rate_max)
    keep = rng.uniform(size=len(times)) < rate_fn(times) / rate_max
    return times[keep], ids[keep]


def test_poisson_trains():
    rng = np.random.default_rng(1)
    times, ids = poisson(rng, 300, 400.0, 8.0)
    f = compute_features(SpikeData(times, ids, 400.0, np.arange(300)), "spikes")
    assert f["rate_mean"] == pytest.approx(8.0, rel=0.02)
    assert f["isi_cv_mean"] == pytest.approx(1.0, abs=0.03)
    assert f["isi_q50_mean"] == pytest.approx(np.log(2) / 8.0, rel=0.03)   # exponential median
    for width, seconds in (("10ms", 0.01), ("100ms", 0.1), ("1s", 1.0)):
        n_bins = 400.0 / seconds  # the variance estimate's sd is ~sqrt(2 / n_bins)
        assert f[f"fano_{width}"] == pytest.approx(1.0, abs=3.5 * np.sqrt(2 / n_bins))
    assert abs(f["corr_mean"]) < 0.02
    assert f["frac_isi_units"] == 1.0


def test_regular_trains_have_zero_cv():
    rng = np.random.default_rng(2)
    phases = rng.uniform(0, 0.1, 50)
    times = np.concatenate([np.arange(p, 20.0, 0.1) for p in phases])
    ids = np.concatenate([np.full(len(np.arange(p, 20.0, 0.1)), k) for k, p in enumerate(phases)])
    f = compute_features(SpikeData(times, ids, 20.0), "spikes")
    assert f["isi_cv_mean"] < 1e-6
    assert f["isi_mean_mean"] == pytest.approx(0.1)
    assert f["rate_mean"] == pytest.approx(10.0, rel=0.01)


def test_shared_input_correlation_is_recovered():
    rng = np.random.default_rng(3)
    duration, rate, c = 200.0, 10.0, 0.3
    shared = rng.uniform(0, duration, rng.poisson(rate * c * duration))
    times, ids = [], []
    for unit in range(40):
        own = rng.uniform(0, duration, rng.poisson(rate * (1 - c) * duration))
        times.append(np.concatenate([own, shared]))
        ids.append(np.full(len(own) + len(shared), unit))
    f = compute_features(SpikeData(np.concatenate(times), np.concatenate(ids), duration), "spikes")
    assert f["corr_mean"] == pytest.approx(c, abs=0.03)  # Poisson counts: ρ = shared fraction


def test_psd_peak_at_the_modulation_frequency():
    rng = np.random.default_rng(4)
    f0 = 12.5
    times, ids = inhomogeneous(rng, 200, 30.0, lambda t: 10 * (1 + 0.8 * np.sin(2 * np.pi * f0 * t)), 18)
    data = SpikeData(times, ids, 30.0, np.arange(200))
    psd = get_feature_set("psd").compute(data)
    assert psd.shape == (990,) and np.isfinite(psd).all()
    freqs, same = population_psd(data)
    np.testing.assert_array_equal(freqs, PSD_FREQS)
    np.testing.assert_array_equal(same, psd)
    assert abs(PSD_FREQS[np.argmax(psd)] - f0) <= 0.5  # within one bin
    assert PSD_FREQS[0] == 0.5 and PSD_FREQS[-1] == 495.0


def test_psd_bands_average_the_spectrum_and_peak_at_the_modulation():
    from automind.features.sets import PSD_BAND_EDGES

    rng = np.random.default_rng(4)
    f0 = 12.5
    times, ids = inhomogeneous(rng, 200, 30.0, lambda t: 10 * (1 + 0.8 * np.sin(2 * np.pi * f0 * t)), 18)
    data = SpikeData(times, ids, 30.0, np.arange(200))
    psd, bands = get_feature_set("psd").compute(data), get_feature_set("psd_bands").compute(data)
    assert bands.shape == (25,) and PSD_BAND_EDGES[0] == 0 and PSD_BAND_EDGES[-1] == 990
    assert (np.diff(PSD_BAND_EDGES) >= 1).all()                    # every band holds a bin
    k = int(np.argmax(bands))
    assert PSD_FREQS[PSD_BAND_EDGES[k]] <= f0 <= PSD_FREQS[PSD_BAND_EDGES[k + 1] - 1]
    assert bands[3] == pytest.approx(psd[PSD_BAND_EDGES[3]:PSD_BAND_EDGES[4]].mean())
    # a Poisson population's one-sided spectrum is flat at 2·rate / n_units: so are its bands
    times, ids = poisson(rng, 200, 30.0, 10.0)
    flat = get_feature_set("psd_bands").compute(SpikeData(times, ids, 30.0, np.arange(200)))
    assert flat[8:] == pytest.approx(2 * 10.0 / 200, rel=0.15)


def test_population_set_uses_the_excitatory_group_for_spike_statistics():
    rng = np.random.default_rng(8)
    e_times, e_ids = poisson(rng, 80, 10.0, 5.0)
    i_times, i_ids = poisson(rng, 20, 10.0, 40.0)
    data = SpikeData(np.concatenate([e_times, i_times]), np.concatenate([e_ids, i_ids + 80]), 10.0,
                     np.arange(100), {"E": np.arange(80), "I": np.arange(80, 100)})
    population = compute_features(data, "population")
    assert population["rate_mean"] == pytest.approx(5.0, rel=0.05)
    assert compute_features(data, "mk1_compact")["rate_mean"] == pytest.approx(0.8 * 5 + 0.2 * 40, rel=0.05)


def test_periodic_bursts_recovered():
    rng = np.random.default_rng(5)
    duration, mean_interval, jitter, sigma = 120.0, 3.0, 0.3, 0.05
    peaks = np.cumsum(rng.normal(mean_interval, jitter, 60))
    peaks = peaks[peaks < duration - 1.0]
    profile = lambda t: 0.5 + 60 * np.exp(-0.5 * ((t[:, None] - peaks[None]) / sigma) ** 2).sum(1)  # noqa: E731
    times, ids = inhomogeneous(rng, 400, duration, profile, 61)
    f = compute_features(SpikeData(times, ids, duration, np.arange(400)), "bursts")
    intervals = np.diff(peaks)
    assert f["burst_valid"] == 1.0 and f["burst_num"] == len(peaks)
    assert f["burst_interval_mean"] == pytest.approx(intervals.mean(), rel=0.05)
    assert f["burst_interval_cv"] == pytest.approx(intervals.std() / intervals.mean(), rel=0.05)
    # width at 95 % relative height of a Gaussian (sd = burst ⊕ smoothing): 2 sqrt(2 ln 20) sd
    expected_width = 2 * np.sqrt(2 * np.log(20)) * np.hypot(sigma, SMOOTHING)
    assert f["burst_width_mean"] == pytest.approx(expected_width, rel=0.05)
    assert f["burst_offset_time_mean"] == pytest.approx(expected_width / 2, rel=0.05)
    assert f["burst_peak_rate_mean"] == pytest.approx(60 * sigma / np.hypot(sigma, SMOOTHING) + 0.5,
                                                      rel=0.05)


def test_fewer_than_two_bursts_are_missing_not_zero():
    rng = np.random.default_rng(6)
    times, ids = poisson(rng, 1000, 20.0, 3.0)  # asynchronous: smoothed rate never reaches 5 Hz
    f = compute_features(SpikeData(times, ids, 20.0), "bursts")
    assert f["burst_valid"] == 0.0 and f["burst_rate"] == 0.0
    for name in ("burst_num", "burst_interval_mean", "burst_width_mean", "burst_offset_time_mean"):
        assert np.isnan(f[name])


def test_edge_cases_have_defined_behaviour():
    empty = compute_features(SpikeData(np.zeros(0), np.zeros(0, int), 10.0, units=np.arange(5)), "mk1")
    assert empty["rate_mean"] == 0.0 and np.isnan(empty["isi_cv_mean"]) and np.isnan(empty["fano_1s"])
    assert np.isnan(empty["corr_mean"]) and empty["burst_valid"] == 0.0
    one = compute_features(SpikeData(np.array([1.0, 2.0, 4.0]), np.zeros(3, int), 5.0), "spikes")
    assert one["isi_mean_mean"] == pytest.approx(1.5) and np.isnan(one["corr_mean"])
    few = compute_features(SpikeData(np.array([1.0, 2.0, 1.5, 3.0, 4.0]), np.array([0, 0, 1, 1, 1]),
                                     5.0), "spikes")
    assert few["frac_isi_units"] == 0.5 and few["isi_mean_mean"] == pytest.approx(1.25)
    unsorted = SpikeData(np.array([3.0, 1.0, 2.0]), np.array([0, 0, 0]), 5.0)
    np.testing.assert_array_equal(unsorted.times, [1.0, 2.0, 3.0])
    with pytest.raises(UserError, match="negative"):
        SpikeData(np.array([-1.0, 2.0]), np.array([0, 0]), 5.0)
    with pytest.raises(UserError, match="NaN"):
        SpikeData(np.array([np.nan, 2.0]), np.array([0, 0]), 5.0)
    with pytest.raises(UserError, match="after the duration"):
        SpikeData(np.array([6.0]), np.array([0]), 5.0)
    with pytest.raises(UserError, match="duration"):
        SpikeData(np.zeros(0), np.zeros(0, int), 0.0)
    with pytest.raises(UserError, match="unknown feature set"):
        compute_features(unsorted, "nope")


def test_transforms_are_log10_where_declared():
    fs = get_feature_set("spikes")
    x = np.ones(len(fs.names)) * 100.0
    t = fs.transform(x)
    assert t[fs.names.index("rate_mean")] == pytest.approx(2.0)
    assert t[fs.names.index("isi_cv_mean")] == pytest.approx(100.0)
    assert np.isfinite(fs.transform(np.zeros(len(fs.names)))).all()  # zeros floored, not -inf


def test_statistics_match_elephant():
    elephant = pytest.importorskip("elephant.statistics")
    import neo
    import quantities as pq

    rng = np.random.default_rng(7)
    times, ids = poisson(rng, 30, 20.0, 6.0)
    data = SpikeData(times, ids, 20.0, np.arange(30))
    f = compute_features(data, "spikes")
    trains = [neo.SpikeTrain(np.sort(times[ids == k]) * pq.s, t_stop=20.0 * pq.s) for k in range(30)]
    cvs = [elephant.cv(elephant.isi(t)) for t in trains]
    rates = [float(elephant.mean_firing_rate(t).rescale("Hz")) for t in trains]
    isi_means = [float(np.mean(elephant.isi(t))) for t in trains]
    assert f["isi_cv_mean"] == pytest.approx(np.mean(cvs), rel=1e-9)
    assert f["isi_cv_std"] == pytest.approx(np.std(cvs), rel=1e-9)
    assert f["rate_mean"] == pytest.approx(np.mean(rates), rel=1e-9)
    assert f["isi_mean_mean"] == pytest.approx(np.mean(isi_means), rel=1e-9)


def test_times_on_bin_edges_bin_the_same_however_they_were_computed():
    from automind.features.spikedata import bin_index

    k = np.arange(1, 5001)
    assert (bin_index(k * 1e-3, 1e-3) == k).all()              # 0.003 / 0.001 = 2.9999999999999996
    rng = np.random.default_rng(9)
    samples = np.sort(rng.integers(0, 40000, 20000))           # a 10 kHz spike list: 20 % on ms edges
    ids = rng.integers(0, 100, len(samples))
    direct = SpikeData(samples / 1e4, ids, 4.0, np.arange(100))
    stepped = SpikeData(samples * 1e-4, ids, 4.0, np.arange(100))  # same times, other rounding
    assert not np.array_equal(direct.times, stepped.times)
    for name in ("psd_bands", "spikes"):
        a, b = (get_feature_set(name).compute(d) for d in (direct, stepped))
        np.testing.assert_allclose(a, b, rtol=1e-9)             # (ISIs differ by float ulps)


def test_bursts_are_those_of_the_excitatory_population():
    rng = np.random.default_rng(10)
    peaks = np.arange(1.0, 19.0, 2.0)
    profile = lambda t: 0.5 + 60 * np.exp(-0.5 * ((t[:, None] - peaks[None]) / 0.05) ** 2).sum(1)  # noqa: E731
    e_times, e_ids = inhomogeneous(rng, 200, 20.0, profile, 61)
    i_times, i_ids = poisson(rng, 200, 20.0, 30.0)              # tonic inhibitory units
    data = SpikeData(np.concatenate([e_times, i_times]), np.concatenate([e_ids, i_ids + 200]), 20.0,
                     np.arange(400), {"E": np.arange(200), "I": np.arange(200, 400)})
    excitatory = SpikeData(e_times, e_ids, 20.0, np.arange(200))
    np.testing.assert_array_equal(get_feature_set("bursts").compute(data),
                                  get_feature_set("bursts").compute(excitatory))
