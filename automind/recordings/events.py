"""An independent population-event count for MEA recordings (the check on burst detection).

A 100 ms bin is *hot* when at least 25 % of the active electrodes (rate >= 0.1 Hz) fire in
it; hot bins closer than 0.5 s belong to one event. This counts participation (how many
electrodes fire), not the population rate, so it does not share the burst detector's
assumptions (``automind.features.bursts``); docs/recordings.md compares the two.
"""

from __future__ import annotations

import numpy as np

from ..features.spikedata import SpikeData, bin_index

BIN = 0.1             # s
FRACTION = 0.25       # of active electrodes
MIN_RATE = 0.1        # Hz: an electrode counts as active
MERGE = 0.5           # s: hot bins closer than this are one event


def population_events(data: SpikeData, bin_size: float = BIN, fraction: float = FRACTION,
                      min_rate: float = MIN_RATE, merge: float = MERGE) -> np.ndarray:
    """Start times (s) of population events."""
    unit_pos = np.searchsorted(data.units, data.unit_ids)
    counts = np.bincount(unit_pos, minlength=data.n_units)
    active = counts / data.duration >= min_rate
    n_bins = int(np.floor(data.duration / bin_size + 1e-9))
    if not active.any() or n_bins < 1:
        return np.zeros(0)
    keep = active[unit_pos]
    bins = np.minimum(bin_index(data.times[keep], bin_size), n_bins - 1)
    pairs = np.unique(bins * data.n_units + unit_pos[keep])       # (bin, electrode) that fired
    participating = np.bincount(pairs // data.n_units, minlength=n_bins)
    hot = np.flatnonzero(participating >= fraction * active.sum())
    if not len(hot):
        return np.zeros(0)
    # the silent time between two hot bins is (index difference - 1) bins
    new_event = np.r_[True, (np.diff(hot) - 1) * bin_size >= merge - 1e-9]
    return hot[new_event] * bin_size
