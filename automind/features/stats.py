"""Spike statistics, vectorised over units (a 2000-unit, 200 s raster in well under a second).

Per unit: rate; ISI mean, sd, quartiles and CV (units with >= 3 spikes). Across units: the
mean and spread (sd) of each. Pooled counts: Fano factor at several bin widths. Pairs: the
mean Pearson correlation of binned counts over a seeded sample of unit pairs.
"""

from __future__ import annotations

import numpy as np

from .spikedata import SpikeData, bin_index

FANO_BINS = (0.01, 0.1, 1.0)   # s
CORR_BIN = 0.05                # s
CORR_PAIRS = 200
MIN_SPIKES_FOR_ISI = 3

NAMES = ("rate_mean", "rate_std", "isi_mean_mean", "isi_mean_std", "isi_std_mean", "isi_q25_mean",
         "isi_q50_mean", "isi_q75_mean", "isi_cv_mean", "isi_cv_std", "frac_isi_units",
         "fano_10ms", "fano_100ms", "fano_1s", "corr_mean")


def unit_index(data: SpikeData) -> np.ndarray:
    """Position of each spike's unit in ``data.units`` (fast path for units 0..n-1)."""
    units = data.units
    if len(units) and units[0] == 0 and units[-1] == len(units) - 1:
        return data.unit_ids
    return np.searchsorted(units, data.unit_ids)


def per_unit_isi(data: SpikeData, quartiles: bool = True) -> dict[str, np.ndarray]:
    """ISI statistics of every unit with >= 3 spikes: mean, std (ddof 0), cv and, unless
    ``quartiles`` is False, q25, q50, q75."""
    labels = unit_index(data)
    count = np.bincount(labels, minlength=data.n_units)
    if data.n_units <= np.iinfo(np.uint16).max:
        labels = labels.astype(np.uint16)  # numpy radix-sorts 16-bit keys: O(n)
    times = data.times[np.argsort(labels, kind="stable")]  # grouped by unit, sorted in each
    spiking = np.flatnonzero(count)
    start, n = np.cumsum(count)[spiking] - count[spiking], count[spiking]
    # d[j] = t[j+1] - t[j]; a unit's segment of d holds its ISIs plus one boundary step into
    # the next unit (a padded 0 for the last), which is subtracted: no masking, no copies.
    d = np.append(np.diff(times), 0.0)
    boundary = d[start + n - 1]
    keep = n >= MIN_SPIKES_FOR_ISI
    n_isi = (n - 1)[keep]
    mean = ((times[start + n - 1] - times[start])[keep]) / n_isi
    sum_sq = (np.add.reduceat(d * d, start) - boundary * boundary)[keep] if len(start) else n_isi
    std = np.sqrt(np.maximum(sum_sq / n_isi - mean * mean, 0.0))
    out = {"units": data.units[spiking[keep]], "mean": mean, "std": std, "cv": std / mean}
    if quartiles:
        within = np.ones(len(d), dtype=bool)
        within[start + n - 1] = False               # drop boundary steps
        within[-1] = False                          # and the pad
        owner_type = np.uint16 if len(n) <= np.iinfo(np.uint16).max else np.int64
        isi, owner = d[within], np.repeat(np.arange(len(n), dtype=owner_type), n - 1)
        order = np.argsort(isi)                     # by value, then stably by unit
        sorted_isi = isi[order][np.argsort(owner[order], kind="stable")]
        first = (np.cumsum(n - 1) - (n - 1))[keep]
        for name, q in (("q25", 0.25), ("q50", 0.5), ("q75", 0.75)):  # numpy's 'linear' method
            pos = first + q * (n_isi - 1)
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, first + n_isi - 1)
            out[name] = sorted_isi[lo] + (pos - lo) * (sorted_isi[hi] - sorted_isi[lo])
    return out


def fano_factor(data: SpikeData, bin_size: float) -> float:
    """var / mean of the pooled spike count in bins of ``bin_size`` (NaN if < 2 bins or no spikes)."""
    n_bins = int(np.floor(data.duration / bin_size + 1e-9))
    if n_bins < 2 or data.n_spikes == 0:
        return float("nan")
    idx = bin_index(data.times, bin_size)
    counts = np.bincount(idx[idx < n_bins], minlength=n_bins)
    return float(counts.var() / counts.mean()) if counts.mean() > 0 else float("nan")


def mean_pair_correlation(data: SpikeData, bin_size: float = CORR_BIN, n_pairs: int = CORR_PAIRS,
                          seed: int = 0) -> float:
    """Mean Pearson correlation of binned counts over a seeded sample of pairs of active units."""
    n_bins = int(np.floor(data.duration / bin_size + 1e-9))
    active = np.unique(data.unit_ids)
    if n_bins < 2 or len(active) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    n_possible = len(active) * (len(active) - 1) // 2
    if n_possible <= n_pairs:
        a, b = np.triu_indices(len(active), 1)
    else:
        a = rng.integers(0, len(active), 2 * n_pairs)
        b = rng.integers(0, len(active), 2 * n_pairs)
        distinct = a != b
        a, b = a[distinct][:n_pairs], b[distinct][:n_pairs]
    involved, inverse = np.unique(np.concatenate([active[a], active[b]]), return_inverse=True)
    pick = np.isin(data.unit_ids, involved)
    rows = np.searchsorted(involved, data.unit_ids[pick])
    cols = np.minimum(bin_index(data.times[pick], bin_size), n_bins - 1)
    counts = np.zeros((len(involved), n_bins))
    np.add.at(counts, (rows, cols), 1)
    counts -= counts.mean(1, keepdims=True)
    norm = np.sqrt((counts * counts).sum(1))
    ia, ib = inverse[: len(a)], inverse[len(a):]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (counts[ia] * counts[ib]).sum(1) / (norm[ia] * norm[ib])
    r = r[np.isfinite(r)]
    return float(r.mean()) if len(r) else float("nan")


def spike_statistics(data: SpikeData) -> np.ndarray:
    """The ``spikes`` feature vector (order: NAMES)."""
    rates = np.bincount(unit_index(data), minlength=data.n_units) / data.duration
    isi = per_unit_isi(data)
    nan = float("nan")

    def avg(values):
        return float(values.mean()) if len(values) else nan

    def spread(values):
        return float(values.std()) if len(values) else nan

    values = [avg(rates) if data.n_units else nan, spread(rates) if data.n_units else nan,
              avg(isi["mean"]), spread(isi["mean"]), avg(isi["std"]), avg(isi["q25"]),
              avg(isi["q50"]), avg(isi["q75"]), avg(isi["cv"]), spread(isi["cv"]),
              len(isi["units"]) / data.n_units if data.n_units else nan]
    values += [fano_factor(data, w) for w in FANO_BINS]
    values.append(mean_pair_correlation(data))
    return np.array(values, dtype=np.float64)
