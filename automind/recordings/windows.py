"""A recording longer than a simulated run, cut to match it: the target window and the
recording's own window-to-window spread.

Features of a 900 s recording and of a 30 s simulation are not the same quantities (a burst
count is a count, the longest ISIs and Fano factors grow with the window), so a fit compares
one window of the recording as long as a simulation's analysed part — by a written rule,
the window whose number of population events (``events.population_events``, independent of
the burst detector) is the median — and the spread of the features over the recording's
windows measures how much one window of it varies: the recording's own noise, which a
simulation's seed-to-seed noise says nothing about.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import UserError
from ..features.spikedata import SpikeData
from .events import population_events

#: at most this many evenly spaced windows measure the spread
SPREAD_WINDOWS = 30
#: a recording is cut to a window when it holds at least this many (fewer: too few to
#: measure a spread, and the durations differ by less than a factor of 3)
MIN_WINDOWS = 3


def window_count(data: SpikeData, length: float) -> int:
    return int(data.duration // length)


def target_window(data: SpikeData, length: float) -> tuple[float, float]:
    """(start, stop) of the first non-overlapping window of ``length`` s whose count of
    population events is the median count."""
    n = window_count(data, length)
    if n < 1:
        raise UserError(f"the recording lasts {data.duration:g} s, shorter than one simulated "
                        f"run ({length:g} s analysed)")
    counts = np.histogram(population_events(data), bins=n, range=(0.0, n * length))[0]
    k = int(np.argmin(np.abs(counts - np.median(counts))))
    return k * length, (k + 1) * length


def window_features(data: SpikeData, fs, length: float, most: int = SPREAD_WINDOWS) -> np.ndarray:
    """Raw features (windows, d) of up to ``most`` evenly spaced non-overlapping windows."""
    n = window_count(data, length)
    starts = np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int)) * length
    # the stop clipped: (n − 1)·L + L can round past the duration that n·L fits in
    return np.array([fs.compute(data.window(a, min(a + length, data.duration))) for a in starts])


def window_sd(rows: np.ndarray, fs) -> np.ndarray:
    """The sd over windows of each transformed feature (NaN where fewer than 2 windows have it)."""
    x = fs.transform(rows)
    finite = np.isfinite(x).sum(0)
    with warnings.catch_warnings():  # all-NaN or one-window columns: NaN, said below
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(x, axis=0, ddof=1)
    return np.where(finite >= 2, sd, np.nan)
