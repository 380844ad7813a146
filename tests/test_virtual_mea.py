"""The virtual MEA (``meaK`` feature sets) and a long recording cut to the simulations'
length (``recordings.windows``, ``fit.target.target_of``)."""

import numpy as np
import pytest

from automind.errors import UserError
from automind.features.electrodes import pool_units
from automind.features.sets import get_feature_set, resolve_feature_set, units_seen
from automind.features.spikedata import SpikeData


def poisson(n_units: int, rate: float, duration: float, seed: int = 0) -> SpikeData:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate * duration, n_units)
    times = rng.uniform(0, duration, counts.sum())
    return SpikeData(times, np.repeat(np.arange(n_units), counts), duration, np.arange(n_units))


def test_pooling_multiplies_unit_rates_and_the_spectral_floor_as_multi_unit_electrodes_do():
    """400 Poisson neurons at 2 Hz pooled into 50 electrodes of 8 (mea50x8): each electrode
    fires at 16 Hz, and the population rate's white-noise floor (2 · rate per unit / units)
    is 2·16/50 Hz²/Hz; one neuron per electrode (mea50): 2 Hz and 2·2/50."""
    data = poisson(400, 2.0, 60.0)
    pooled = pool_units(data, 50, 8)
    assert pooled.n_units == 50 and pooled.n_spikes == data.n_spikes
    counts = np.bincount(pooled.unit_ids, minlength=50)
    assert np.allclose(counts / 60.0, 16.0, rtol=0.15)
    for name, rate in (("mea50x8", 16.0), ("mea50", 2.0)):
        fs = get_feature_set(name)
        x = dict(zip(fs.names, fs.compute(data)))
        assert x["rate_mean"] == pytest.approx(rate, rel=0.05)
        high = [v for n, v in x.items()
                if n.startswith("psd_band_") and float(n.split("-")[1][:-2]) > 50]
        assert np.median(high) == pytest.approx(2 * rate / 50, rel=0.1)
        assert x["corr_mean"] == pytest.approx(0.0, abs=0.02)  # independent stay independent
    plain = dict(zip(fs.names, get_feature_set("population").compute(data)))
    assert np.median([v for n, v in plain.items() if n.startswith("psd_band_3")]) == \
        pytest.approx(2 * 2.0 / 400, rel=0.1)


def test_electrodes_sample_the_whole_population_not_its_first_block():
    """Units 0-99 fire at 10 Hz, 100-399 at 1 Hz: 40 electrodes of one neuron each see
    a quarter of fast ones, as the population has."""
    fast, slow = poisson(100, 10.0, 20.0, seed=3), poisson(300, 1.0, 20.0, seed=4)
    data = SpikeData(np.r_[fast.times, slow.times], np.r_[fast.unit_ids, slow.unit_ids + 100],
                     20.0, np.arange(400))
    pooled = pool_units(data, 40)
    rates = np.bincount(pooled.unit_ids, minlength=40) / 20.0
    assert (rates > 5).sum() == 10
    # the same θ at a larger network gives the same kind of electrodes (N-independent)
    assert resolve_feature_set("meax4", pooled) == "mea40x4"


def test_figures_see_the_units_the_features_read():
    """A network of 400 E neurons at 2 Hz and 100 I at 20 Hz seen through mea20 is 20 E
    electrodes (the features' spectrum floor 2 x 2 / 20), through mk1_compact its 400 E."""
    e, i = poisson(400, 2.0, 10.0, seed=5), poisson(100, 20.0, 10.0, seed=6)
    data = SpikeData(np.r_[e.times, i.times], np.r_[e.unit_ids, i.unit_ids + 400], 10.0,
                     np.arange(500), {"E": np.arange(400), "I": np.arange(400, 500)})
    mea = units_seen("mea20", data)
    assert mea.n_units == 20 and mea.n_spikes / 20 / 10.0 == pytest.approx(2.0, rel=0.2)
    np.testing.assert_array_equal(get_feature_set("mea20").compute(data),
                                  get_feature_set("population").compute(mea))
    whole = units_seen("mk1_compact", data)
    assert whole.n_units == 400 and whole.n_spikes == e.n_spikes


def test_a_recording_of_k_electrodes_is_its_own_virtual_mea():
    data = poisson(12, 5.0, 20.0, seed=1)
    assert resolve_feature_set("mea", data) == "mea12"
    assert resolve_feature_set("population", data) == "population"
    np.testing.assert_array_equal(get_feature_set("mea12").compute(data),
                                  get_feature_set("population").compute(data))


def test_virtual_mea_refusals():
    for name in ("mea", "meax4"):
        with pytest.raises(UserError, match="electrode count"):
            get_feature_set(name)
    with pytest.raises(UserError, match="meaK"):
        get_feature_set("meadow")
    with pytest.raises(UserError, match="needs 24 units"):
        get_feature_set("mea12x2").compute(poisson(20, 5.0, 10.0))


def test_a_recording_of_k_electrodes_is_its_own_pooled_virtual_mea():
    """``fit --features meax4`` on a K-electrode recording: the recording's side of
    meaKx4 is its K electrodes as they are (the simulation's side pools 4 neurons each)."""
    data = poisson(12, 5.0, 20.0, seed=1)
    name = resolve_feature_set("meax4", data)
    assert name == "mea12x4"
    np.testing.assert_array_equal(get_feature_set(name).compute(data),
                                  get_feature_set("population").compute(data))


def bursting(windows: int = 11, length: float = 10.0, seed: int = 2) -> SpikeData:
    """16 electrodes firing at 0.2 Hz, plus population bursts (every electrode, 30 spikes in
    100 ms): k + 2 of them, evenly spaced, in the k-th window of ``length`` s."""
    rng = np.random.default_rng(seed)
    duration = windows * length
    base = poisson(16, 0.2, duration, seed)
    onsets = np.concatenate([k * length + (np.arange(k + 2) + 0.25) * length / (k + 2)
                             for k in range(windows)])
    times = [base.times] + [t + rng.uniform(0, 0.1, 16 * 30) for t in onsets]
    ids = [base.unit_ids] + [np.repeat(np.arange(16), 30)] * len(onsets)
    return SpikeData(np.concatenate(times), np.concatenate(ids), duration, np.arange(16))


def test_target_window_has_the_median_event_count_and_the_spread_sees_every_window():
    from automind.recordings.windows import target_window, window_features, window_sd

    data = bursting()
    fs = get_feature_set("population")
    assert target_window(data, 10.0) == (50.0, 60.0)  # 7 bursts: the median of 2..12
    rows = window_features(data, fs, 10.0)
    assert len(rows) == 11
    np.testing.assert_array_equal(rows[:, fs.names.index("burst_num")], np.arange(2, 13))
    sd = dict(zip(fs.names, window_sd(rows, fs)))
    assert sd["burst_num"] == pytest.approx(np.std(np.arange(2, 13), ddof=1))


def test_fit_target_is_cut_to_the_simulated_length_only_when_the_recording_is_long(tmp_path):
    from automind.fit.target import target_of
    from automind.recordings.write import write_nwb

    path = write_nwb(bursting(), tmp_path / "culture.nwb")
    x, info, truth, name = target_of(path, "mea", 10.0)
    assert name == "mea16" and truth is None
    assert info["windows"] == 11 and info["window_s"] == [50.0, 60.0]
    assert np.isfinite(np.array(info["window_sd"], float)).sum() > 30
    whole = target_of(path, "mea", 10.0, "whole")[1]
    assert whole["duration"] == pytest.approx(110.0) and "window_sd" not in whole
    short = target_of(path, "population", 50.0)[1]  # 2 windows: too few, fitted whole
    assert short["duration"] == pytest.approx(110.0)
    assert x[list(get_feature_set("mea16").names).index("burst_num")] == 7
    with pytest.raises(UserError, match="auto or 'whole'|'auto' or 'whole'"):
        target_of(path, "mea", 10.0, "half")


def test_window_spread_reaches_the_recordings_end_without_rounding_past_it():
    """(n − 1)·L + L can round above the duration n·L fits in (58.38 s, L = 9.73 s: the
    last stop was 58.38000000000001 and SpikeData.window refused it)."""
    from automind.recordings.windows import window_count, window_features

    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 58.38, 3000))
    data = SpikeData(times, rng.integers(0, 10, 3000), 58.38, np.arange(10))
    assert window_count(data, 9.73) == 6
    rows = window_features(data, get_feature_set("spikes"), 9.73)
    assert rows.shape[0] == 6 and np.isfinite(rows[:, 0]).all()
