"""Spike statistics, vectorised over units (a 2000-unit, 200 s raster in well under a second).

Per unit: rate; ISI mean, sd, quartiles and CV (units with >= 3 spikes). Across units: the
mean and spread (sd) of each. Pooled counts: Fano factor at several bin widths. Pairs: the
mean Pearson correlation of binned counts over a seeded sample of unit pairs.
"""

from __future__ import annotations

import numpy as np

from .spikedata import SpikeData

FANO_BINS = (0.01, 0.1, 1.0)   # s
CORR_BIN = 0.05                # s
CORR_PAIRS = 200
MIN_SPIKES_FOR_ISI = 3

NAMES = ("rate_mean", "rate_std", "isi_mean_mean", "isi_mean_std", "isi_std_mean", "isi_q25_mean",
         "isi_q50_mean", "isi_q75_mean", "isi_cv_mean", "isi_cv_std", "frac_isi_units",
         "fano_10ms", "fano_100ms", "fano_1s", "corr_mean")


def _runs(sorted_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, start, count) of the runs of equal values in a sorted array (O(n))."""
    if not len(sorted_labels):
        return sorted_labels, np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    return sorted_labels[start], start, np.diff(np.r_[start, len(sorted_labels)])


def unit_index(data: SpikeData) -> np.ndarray:
    """Position of each spike's unit in ``data.units`` (fast path for units 0..n-1)."""
    units = data.units
    if len(units) and units[0] == 0 and units[-1] == len(units) - 1:
        return data.unit_ids
    return np.searchsorted(units, data.unit_ids)


def per_unit_isi(data: SpikeData) -> dict[str, np.ndarray]:
    """ISI statistics of every unit with >= 3 spikes: mean, std (ddof 0), q25, q50, q75, cv."""
    labels = unit_index(data)
    if data.n_units <= np.iinfo(np.uint16).max:
        labels = labels.astype(np.uint16)  # numpy radix-sorts 16-bit keys: O(n)
    order = np.argsort(labels, kind="stable")  # times are sorted, so stay sorted per unit
    units, times = labels[order], data.times[order]
    same = units[1:] == units[:-1]
    isi, isi_unit = np.diff(times)[same], units[1:][same]
    owners, start, count = _runs(isi_unit)
    keep = count >= MIN_SPIKES_FOR_ISI - 1
    if not keep.any():
        return {k: np.zeros(0) for k in ("mean", "std", "q25", "q50", "q75", "cv")} | {
            "units": np.zeros(0, np.int64)}
    mean = np.add.reduceat(isi, start) / count
    deviation = isi - np.repeat(mean, count)
    std = np.sqrt(np.add.reduceat(deviation * deviation, start) / count)
    # quartiles: sort all ISIs by value, then stably by unit: sorted within each unit
    by_value = np.argsort(isi)
    sorted_isi = isi[by_value][np.argsort(isi_unit[by_value], kind="stable")]
    quartiles = {}
    for q in (0.25, 0.5, 0.75):  # numpy's default 'linear' interpolation
        pos = start + q * (count - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, start + count - 1)
        quartiles[q] = sorted_isi[lo] + (pos - lo) * (sorted_isi[hi] - sorted_isi[lo])
    return {"units": data.units[owners[keep]], "mean": mean[keep], "std": std[keep],
            "q25": quartiles[0.25][keep], "q50": quartiles[0.5][keep], "q75": quartiles[0.75][keep],
            "cv": (std / mean)[keep]}


def fano_factor(data: SpikeData, bin_size: float) -> float:
    """var / mean of the pooled spike count in bins of ``bin_size`` (NaN if < 2 bins or no spikes)."""
    n_bins = int(np.floor(data.duration / bin_size + 1e-9))
    if n_bins < 2 or data.n_spikes == 0:
        return float("nan")
    idx = (data.times / bin_size).astype(np.int64)
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
    cols = np.minimum((data.times[pick] / bin_size).astype(np.int64), n_bins - 1)
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
