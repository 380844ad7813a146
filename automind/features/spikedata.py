"""SpikeData: the one input type of every feature, whatever the spikes' origin."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError


def _distinct(ids: np.ndarray) -> np.ndarray:
    """Sorted distinct ids; O(n) through bincount when their range is compact."""
    if not ids.size:
        return ids
    low, high = int(ids.min()), int(ids.max())
    if high - low < 8 * ids.size + 1024:
        return np.flatnonzero(np.bincount(ids - low)) + low
    return np.unique(ids)


#: spike times within this fraction of a bin below a bin edge count in the next bin: times
#: on a sampling grid (simulation steps, MEA samples) often sit exactly on edges, and float
#: rounding of t / bin would scatter them between two bins (2.6 % of an MK1 network's
#: spikes, changing its high-frequency PSD by up to 0.19 log10 units)
EDGE_TOLERANCE = 1e-6


def bin_index(times: np.ndarray, bin_size: float) -> np.ndarray:
    """The bin [k·bin_size, (k+1)·bin_size) of each time, robust to float rounding at edges."""
    return np.floor(np.asarray(times) / bin_size + EDGE_TOLERANCE).astype(np.int64)


@dataclass
class SpikeData:
    """Spike times (s) and unit ids over [0, duration), with the full list of units.

    ``units`` lists every unit that was observed, including silent ones (they count in
    per-unit averages and rates). ``groups`` maps a group name (E / I, a brain area, an
    electrode) to the unit ids in it. Times are sorted on construction. ``positions``
    (optional, one row per unit of ``units`` as given, e.g. electrode x, y in µm) follow the
    units' sorting; ``metadata`` carries what a recording says about itself (age, region,
    silent channels, masked line frequencies, ...): JSON-friendly values only.
    """

    times: np.ndarray
    unit_ids: np.ndarray
    duration: float
    units: np.ndarray | None = None
    groups: dict[str, np.ndarray] = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    positions: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        times = np.asarray(self.times, dtype=np.float64).ravel()
        ids = np.asarray(self.unit_ids).ravel()
        where = self.source.get("path", "spike data")
        if times.shape != ids.shape:
            raise UserError(f"{where}: {times.size} spike times but {ids.size} unit ids")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            if not np.all(np.isfinite(ids)) or not np.all(ids == np.round(ids)):
                raise UserError(f"{where}: unit ids must be integers")
        ids = ids.astype(np.int64)
        if np.isnan(times).any():
            raise UserError(f"{where}: {int(np.isnan(times).sum())} spike times are NaN")
        if not np.isfinite(self.duration) or self.duration <= 0:
            raise UserError(f"{where}: duration must be a positive number of seconds, got "
                            f"{self.duration!r}")
        if times.size and times.min() < 0:
            raise UserError(f"{where}: {int((times < 0).sum())} spike times are negative "
                            f"(first {times.min():g} s); times must be seconds from the start")
        if times.size and times.max() > self.duration:
            raise UserError(f"{where}: spike at {times.max():g} s is after the duration "
                            f"{self.duration:g} s")
        if times.size > 1 and not (times[1:] >= times[:-1]).all():
            order = np.argsort(times, kind="stable")
            times, ids = times[order], ids[order]
        self.times, self.unit_ids = times, ids
        present = _distinct(ids)
        given = None if self.units is None else np.asarray(self.units, np.int64).ravel()
        units = present if given is None else np.unique(given)
        if ids.size and not np.isin(present, units).all():
            raise UserError(f"{where}: spikes from units that are not in the unit list")
        if self.positions is not None:
            self.positions = self._sorted_positions(given, units, where)
        self.units = units
        self.duration = float(self.duration)
        self.groups = {name: np.unique(np.asarray(members, np.int64))
                       for name, members in self.groups.items()}

    def _sorted_positions(self, given, units, where) -> np.ndarray:
        positions = np.asarray(self.positions, dtype=np.float64)
        positions = positions[:, None] if positions.ndim == 1 else positions
        if given is None or len(given) != len(units) or len(positions) != len(given):
            raise UserError(f"{where}: positions need one row per unit of a list of distinct "
                            f"units ({len(positions)} rows, "
                            f"{'no unit list' if given is None else f'{len(given)} units'})")
        return positions[np.argsort(given, kind="stable")]

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def n_spikes(self) -> int:
        return len(self.times)

    def select(self, group: str | None) -> "SpikeData":
        """The units of one group (all units when ``group`` is None or the data has no groups)."""
        if group is None or not self.groups:
            return self
        if group not in self.groups:
            raise UserError(f"no unit group {group!r}; groups: {sorted(self.groups)}")
        members = self.groups[group]
        keep = np.isin(self.unit_ids, members)
        return SpikeData(self.times[keep], self.unit_ids[keep], self.duration, members,
                         {group: members}, self.source, self._positions_of(members), self.metadata)

    def _positions_of(self, members: np.ndarray) -> np.ndarray | None:
        if self.positions is None:
            return None
        return self.positions[np.searchsorted(self.units, members)]

    def keep_units(self, members) -> "SpikeData":
        """Only the listed units (and their spikes); groups shrink to their kept members."""
        members = np.intersect1d(self.units, np.asarray(members, np.int64))
        keep = np.isin(self.unit_ids, members)
        groups = {name: np.intersect1d(m, members) for name, m in self.groups.items()}
        return SpikeData(self.times[keep], self.unit_ids[keep], self.duration, members,
                         {k: v for k, v in groups.items() if len(v)}, self.source,
                         self._positions_of(members), dict(self.metadata))

    def window(self, start: float, stop: float | None = None) -> "SpikeData":
        """Spikes in [start, stop), re-timed to start at 0 (e.g. to drop a transient)."""
        stop = self.duration if stop is None else stop
        if not 0 <= start < stop <= self.duration:
            raise UserError(f"window [{start}, {stop}) is not inside [0, {self.duration})")
        keep = (self.times >= start) & (self.times < stop)
        return SpikeData(self.times[keep] - start, self.unit_ids[keep], stop - start, self.units,
                         self.groups, self.source, self.positions, self.metadata)

    def population_rate(self, bin_size: float = 1e-3) -> np.ndarray:
        """Mean rate per unit (Hz) in bins of ``bin_size`` over [0, duration)."""
        n_bins = int(np.floor(self.duration / bin_size + 1e-9))
        if n_bins < 1:
            return np.zeros(0)
        counts = np.bincount(np.minimum(bin_index(self.times, bin_size), n_bins - 1),
                             minlength=n_bins)[:n_bins]
        return counts / (max(self.n_units, 1) * bin_size)

    # ---- constructors ---------------------------------------------------------------
    @classmethod
    def from_simulation(cls, result, source: dict | None = None) -> "SpikeData":
        """From a SimulationResult (or the dict of ``Bank.spikes``): populations become groups,
        unit ids are made unique by offsetting each population."""
        spikes = result["spikes"] if isinstance(result, dict) else result.spikes
        n_units = result["n_units"] if isinstance(result, dict) else result.n_units
        t_end = result["t_end"] if isinstance(result, dict) else result.t_end
        times, ids, groups, offset = [], [], {}, 0
        for pop in sorted(spikes, key=lambda p: (p != "E", p)):
            pop_times, pop_ids = spikes[pop]
            times.append(pop_times)
            ids.append(np.asarray(pop_ids, np.int64) + offset)
            groups[pop] = np.arange(offset, offset + n_units[pop])
            offset += n_units[pop]
        units = np.arange(offset)
        return cls(np.concatenate(times) if times else np.zeros(0),
                   np.concatenate(ids) if ids else np.zeros(0, np.int64), t_end, units, groups,
                   source or {"origin": "simulation"})
