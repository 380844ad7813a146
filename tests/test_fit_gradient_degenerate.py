"""The degenerate flag of gradient fits (spec rsnn.md §5a; rsnn-research.md §2.4): an E rate
below 0.5 Hz, or a band whose share of the power did not rise by 10 % over the start's, on
spike trains whose answer is known."""

import numpy as np
import pytest

from automind.fit.gradient_degenerate import activity, band_share, degenerate


def result(rate_of_t, n_units=200, duration=4.0, seed=0, silent_e=False):
    """A simulation-result dict: E units firing as an inhomogeneous Poisson process of
    ``rate_of_t`` (Hz; 1 ms steps), I units at 5 Hz."""
    rng = np.random.default_rng(seed)
    t = np.arange(0, duration, 1e-3)
    spikes = {}
    for pop, rate in (("E", 0 * t if silent_e else rate_of_t(t)), ("I", 5 + 0 * t)):
        fired = rng.random((n_units, len(t))) < rate * 1e-3
        ids, steps = np.nonzero(fired)
        spikes[pop] = (t[steps], ids)
    return {"spikes": spikes, "n_units": {"E": n_units, "I": n_units}, "t_end": duration}


def test_flat_spectrum_share_is_the_band_width_and_a_rhythm_concentrates_it():
    # Poisson spikes: a flat rate spectrum, so the band's share is its share of the bins
    # (0.5 Hz Welch resolution: 81 of 399 bins in [20, 60] of [1, 200])
    rate_e, share = activity(result(lambda t: 10 + 0 * t), 0.0, (20.0, 60.0))
    assert rate_e == pytest.approx(10, rel=0.03)
    assert share == pytest.approx(81 / 399, rel=0.08)
    rhythm = activity(result(lambda t: 10 * (1 + np.sin(2 * np.pi * 10 * t))), 0.0, (8.0, 12.0))[1]
    assert rhythm > 0.5 > activity(result(lambda t: 10 + 0 * t), 0.0, (8.0, 12.0))[1]


def test_silent_e_is_degenerate_and_a_share_must_rise_ten_percent():
    rate_e, share = activity(result(lambda t: 10 + 0 * t, silent_e=True), 0.0, (20.0, 60.0))
    assert rate_e == 0 and np.isnan(share)  # no E power at all
    assert np.isnan(band_share(np.zeros(4000), (20.0, 60.0), 2.0))
    assert degenerate([0.2, 3.0, np.nan]).tolist() == [True, False, False]  # NaN: not simulated
    flags = degenerate([3.0, 3.0, 3.0, 0.1], share_fit=[0.30, 0.20, 0.21, 0.5],
                       share_start=[0.20, 0.20, 0.20, 0.2])
    assert flags.tolist() == [False, True, True, True]  # +50 %, +0 %, +5 %, silent
