"""Named, versioned feature sets, each carrying the transforms inference applies to it.

A feature set maps a SpikeData to a fixed-length float vector (NaN = missing). Raw values
are stored in banks; ``transform`` (log10 where the published posteriors used it, with a
floor for zeros) is applied by inference, identically for simulations and recordings.

The population-level sets (``psd``, ``psd_bands``, ``bursts``) use the excitatory group
when the data has one (simulations), otherwise all units (recordings). Version 2 of every
set bins spike times robustly at bin edges (``spikedata.bin_index``) and computes bursts
on the E population (version 1 used all units for bursts); banks with version-1 features
cannot be extended with version-2 code. Version 3 of the sets holding bursts (``bursts``,
``mk1``, ``mk1_compact``, ``population``) detects bursts as threshold episodes of the
smoothed rate instead of peaks of half the largest prominence (``bursts`` module).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import UserError
from ..protocols import FeatureSetLike
from . import bursts, stats
from .electrodes import parse_name as parse_electrodes, pool_units
from .electrodes import resolve_name as resolve_electrodes
from .line_noise import mask_lines
from .psd import rate_psd
from .spikedata import SpikeData

LOG_FLOOR = 1e-12
PSD_BIN = 1e-3
PSD_SEGMENT = 2.0
PSD_FREQS = np.arange(1, 991) * 0.5  # 0.5 .. 495 Hz: the published 990 values


def population(data: SpikeData) -> SpikeData:
    return data.select("E") if "E" in data.groups else data


def population_psd(data: SpikeData) -> tuple[np.ndarray, np.ndarray]:
    """(freqs, psd): Welch PSD of the (E) population rate at 1 ms (Hann, 2 s segments, 75 %
    overlap) at 0.5-495 Hz, the published 990 values; NaN when shorter than one segment.
    Lines listed in ``data.metadata["masked_lines_hz"]`` are interpolated over."""
    pop = population(data)
    if pop.duration < PSD_SEGMENT:
        return PSD_FREQS, np.full(len(PSD_FREQS), np.nan)
    freqs, psd = rate_psd(pop.population_rate(PSD_BIN), PSD_BIN, PSD_SEGMENT, 0.75,
                          PSD_FREQS[0] - 1e-9, PSD_FREQS[-1] + 1e-9)
    lines = data.metadata.get("masked_lines_hz")  # a recording's line noise (line_noise.py)
    return freqs, (mask_lines(freqs, psd, lines) if lines else psd)


def psd_features(data: SpikeData) -> np.ndarray:
    return population_psd(data)[1]


# 25 near-log-spaced bands over the same 990 bins (each band >= 1 bin): a compact spectrum
# for small banks, where a flow conditioned on 990 correlated bins learns little
# (studies/mk1_recovery)
PSD_BAND_EDGES = np.unique(np.round(np.geomspace(1, len(PSD_FREQS) + 1, 28)).astype(int)) - 1


def psd_band_features(data: SpikeData) -> np.ndarray:
    """Mean PSD in each band of PSD_BAND_EDGES (indices into the 990-value spectrum)."""
    psd = population_psd(data)[1]
    return np.array([psd[lo:hi].mean() for lo, hi in zip(PSD_BAND_EDGES[:-1], PSD_BAND_EDGES[1:])])


TRANSFORMS = ("none", "log10")


def transform_features(x, transforms) -> np.ndarray:
    """Raw features (..., d) -> the space inference works in: log10 (floored at LOG_FLOOR)
    where ``transforms[i] == "log10"``, unchanged where "none"; NaN stays NaN. The one
    feature-transform path, for simulations and recordings, training and sampling alike."""
    x = np.array(x, dtype=np.float64, copy=True)
    unknown = set(transforms) - set(TRANSFORMS)
    if unknown:
        raise UserError(f"unknown feature transform(s) {sorted(unknown)}; known: {TRANSFORMS}")
    if x.shape[-1] != len(transforms):
        raise UserError(f"features have {x.shape[-1]} values but {len(transforms)} transforms")
    mask = np.array([t == "log10" for t in transforms], dtype=bool)
    with np.errstate(invalid="ignore"):
        x[..., mask] = np.log10(np.maximum(x[..., mask], LOG_FLOOR))
    return x


@dataclass(frozen=True)
class FeatureSet:
    name: str
    version: str
    names: tuple[str, ...]
    log10: tuple[bool, ...]          # which features inference sees as log10
    compute_fn: Callable[[SpikeData], np.ndarray]
    description: str = ""
    source: str = "spikes"           # "rates": compute_fn(rates (steps, P), record_dt) instead
    units: str = "all"               # whose rate ``rate_mean`` is: "all" units or the "E" ones

    def compute(self, data: SpikeData, *more) -> np.ndarray:
        values = np.asarray(self.compute_fn(data, *more), dtype=np.float64)
        assert values.shape == (len(self.names),), (self.name, values.shape)
        return values

    def transform(self, x) -> np.ndarray:
        """Raw features -> the space inference works in (log10 where marked); NaN stays NaN."""
        return transform_features(x, self.metadata()["transforms"])

    def metadata(self) -> dict:
        return {"version": self.version, "names": list(self.names),
                "transforms": ["log10" if flag else "none" for flag in self.log10],
                "description": self.description}


def _combine(*sets: FeatureSet) -> Callable[[SpikeData], np.ndarray]:
    return lambda data: np.concatenate([s.compute(data) for s in sets])


_LOG_STATS = {"rate_mean", "rate_std", "isi_mean_mean", "isi_mean_std", "isi_std_mean",
              "isi_q25_mean", "isi_q50_mean", "isi_q75_mean", "fano_10ms", "fano_100ms", "fano_1s"}
_LOG_BURSTS = {"burst_interval_mean", "burst_width_mean", "burst_offset_time_mean",
               "burst_peak_rate_mean"}

SPIKES = FeatureSet("spikes", "2", stats.NAMES, tuple(n in _LOG_STATS for n in stats.NAMES),
                    stats.spike_statistics, "per-unit rate and ISI statistics, Fano factors, "
                    "pairwise count correlation")
PSD = FeatureSet("psd", "2", tuple(f"psd_{f:g}Hz" for f in PSD_FREQS), (True,) * len(PSD_FREQS),
                 psd_features, "Welch PSD of the (E) population rate, 0.5-495 Hz")
BURSTS = FeatureSet("bursts", "3", bursts.NAMES, tuple(n in _LOG_BURSTS for n in bursts.NAMES),
                    lambda data: bursts.burst_features(population(data)),
                    "network bursts of the (E) population rate")
PSD_BANDS = FeatureSet("psd_bands", "2",
                       tuple(f"psd_band_{PSD_FREQS[lo]:g}-{PSD_FREQS[hi - 1]:g}Hz"
                             for lo, hi in zip(PSD_BAND_EDGES[:-1], PSD_BAND_EDGES[1:])),
                       (True,) * (len(PSD_BAND_EDGES) - 1), psd_band_features,
                       "Welch PSD of the (E) population rate averaged in 25 log-spaced bands")
MK1 = FeatureSet("mk1", "3", SPIKES.names + PSD.names + BURSTS.names,
                 SPIKES.log10 + PSD.log10 + BURSTS.log10, _combine(SPIKES, PSD, BURSTS),
                 "spikes + psd + bursts")

MK1_COMPACT = FeatureSet("mk1_compact", "3", SPIKES.names + PSD_BANDS.names + BURSTS.names,
                         SPIKES.log10 + PSD_BANDS.log10 + BURSTS.log10,
                         _combine(SPIKES, PSD_BANDS, BURSTS), "spikes + psd_bands + bursts")

POPULATION = FeatureSet("population", "3", SPIKES.names + PSD_BANDS.names + BURSTS.names,
                        SPIKES.log10 + PSD_BANDS.log10 + BURSTS.log10,
                        lambda data: MK1_COMPACT.compute(population(data)),
                        "mk1_compact on the (E) population only: for recordings without E/I "
                        "labels written from simulations' E units (MEA, sorted units)",
                        units="E")

def _column_features(rates, record_dt):
    from ..columns.features import column_features

    return column_features(rates, record_dt)


def _column_set() -> FeatureSet:
    from ..columns.features import NAMES

    return FeatureSet("column", "1", NAMES, (True,) * len(NAMES), _column_features,
                      "column model: mean rate of each of the 8 populations and the power of "
                      "each layer's E rate in 5 bands (2-200 Hz)", source="rates")


#: the feature-set registry; an entry is any ``protocols.FeatureSetLike``
FEATURE_SETS: dict[str, FeatureSetLike] = {s.name: s for s in (SPIKES, PSD, PSD_BANDS, BURSTS, MK1, MK1_COMPACT, POPULATION,
                                    _column_set())}


def mea_set(n_electrodes: int, per_electrode: int = 1) -> FeatureSet:
    """``meaK`` / ``meaKxM``: the ``population`` features of the (E) population sampled into
    K virtual electrodes of M neurons each (``electrodes.pool_units``), for MEA recordings of
    K electrodes."""
    name = f"mea{n_electrodes}" + (f"x{per_electrode}" if per_electrode > 1 else "")
    return FeatureSet(name, "1", POPULATION.names, POPULATION.log10,
                      lambda data: MK1_COMPACT.compute(
                          pool_units(population(data), n_electrodes, per_electrode)),
                      f"mk1_compact on {n_electrodes} virtual electrodes of {per_electrode} (E) "
                      "neuron(s) each, of evenly spaced ranks: MEA recordings of as many "
                      "electrodes",
                      units="E")


def units_seen(name: str, data: SpikeData) -> SpikeData:
    """The units the feature set ``name`` reads in ``data``: a virtual MEA's K electrodes for
    ``meaK`` / ``meaKxM``, else the (E) population. Figures shown beside the features use it:
    a population rate over all ~400 model neurons has a spectrum a decade below the same
    network seen through 20 electrodes (its white floor is ~ 2 x rate / units)."""
    parsed, pop = parse_electrodes(name), population(data)
    return pool_units(pop, *parsed) if parsed else pop


def get_feature_set(name: str) -> FeatureSet:
    if name in FEATURE_SETS:
        return FEATURE_SETS[name]
    parsed = parse_electrodes(name)
    if parsed is not None and min(parsed) >= 1:
        return mea_set(*parsed)
    if resolve_electrodes(name, 1) != name:
        raise UserError(f"the {name} feature set needs an electrode count: `automind fit` takes it "
                        "from the recording; elsewhere write meaK or meaKxM (e.g. mea51, mea51x4)")
    raise UserError(f"unknown feature set {name!r}; available: {', '.join(FEATURE_SETS)}, "
                    "meaK / meaKxM (a virtual MEA of K electrodes of M neurons)")


def resolve_feature_set(name: str, data: SpikeData) -> str:
    """``name``, with ``mea`` / ``meaxM`` made ``meaK`` / ``meaKxM`` for a recording of K
    units (electrodes)."""
    return resolve_electrodes(name, data.n_units)


def compute_features(data: SpikeData, feature_set: str = "mk1") -> dict[str, float]:
    """{feature name: value} for one SpikeData."""
    fs = get_feature_set(feature_set)
    return dict(zip(fs.names, fs.compute(data).tolist()))


def _rate_features(fs: FeatureSet, result, t_start: float) -> np.ndarray:
    """A rate-based set from a simulation's recorded ``state["rate"]`` (steps, P); NaN when
    there is none (failed runs, stored spikes) or for a spike-based set."""
    state = result.get("state", {}) if isinstance(result, dict) else result.state
    t_end = result["t_end"] if isinstance(result, dict) else result.t_end
    rates = state.get("rate")
    if fs.source != "rates" or rates is None or len(rates) == 0 or t_end <= 0:
        return np.full(len(fs.names), np.nan)
    record_dt = t_end / len(rates)
    skip = int(round(t_start / record_dt)) if 0 < t_start < t_end else 0
    return fs.compute(rates[skip:], record_dt)


def simulation_features(spikes: dict, feature_sets: list[str], t_start: float = 0.0) -> dict:
    """{set name: raw feature vector} of one simulation (a SimulationResult or Bank.spikes
    dict); the transient before ``t_start`` is dropped when the run got past it (runs stopped
    early are used whole). Nothing recorded (failed, timeout) -> all NaN. Rate-based sets
    (``source = "rates"``) read the recorded ``state["rate"]`` instead of spikes."""
    from .spikedata import SpikeData

    sets = [get_feature_set(name) for name in feature_sets]
    out = {fs.name: _rate_features(fs, spikes, t_start) for fs in sets if fs.source == "rates"}
    sets = [fs for fs in sets if fs.source != "rates"]
    if not sets:
        return out
    stored = spikes["spikes"] if isinstance(spikes, dict) else spikes.spikes
    t_end = spikes["t_end"] if isinstance(spikes, dict) else spikes.t_end
    if not stored or t_end <= 0:
        return out | {fs.name: np.full(len(fs.names), np.nan) for fs in sets}
    data = SpikeData.from_simulation(spikes)
    if 0 < t_start < t_end:
        data = data.window(t_start)
    return out | {fs.name: fs.compute(data) for fs in sets}
