"""Dropping electrodes (units) that fire below a rate, reported rather than silent."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..features.spikedata import SpikeData


def unit_rates(data: SpikeData) -> np.ndarray:
    """Rate (Hz) of each unit of ``data.units``, silent ones included."""
    return np.bincount(np.searchsorted(data.units, data.unit_ids),
                       minlength=data.n_units) / data.duration


def drop_slow_units(data: SpikeData, min_rate: float) -> SpikeData:
    """The units firing at >= ``min_rate`` Hz; ``metadata['min_rate']`` records the threshold
    and ``metadata['dropped_units']`` the names (or ids) of the units left out."""
    if not min_rate >= 0:
        raise UserError(f"--min-rate must be >= 0 Hz, got {min_rate!r}")
    rates = unit_rates(data)
    keep = rates >= min_rate
    where = data.source.get("path", "recording")
    if not keep.any():
        raise UserError(f"{where}: no active electrode: none of {data.n_units} units fires at "
                        f">= {min_rate:g} Hz (highest {rates.max():.3g} Hz)")
    names = data.metadata.get("unit_names")
    label = (lambda k: names[k]) if names is not None and len(names) == data.n_units else (
        lambda k: int(data.units[k]))
    kept = data.keep_units(data.units[keep])
    kept.metadata |= {"min_rate": float(min_rate),
                      "dropped_units": [label(k) for k in np.flatnonzero(~keep)]}
    if names is not None and len(names) == data.n_units:
        kept.metadata["unit_names"] = [names[k] for k in np.flatnonzero(keep)]
    return kept


def describe_drop(data: SpikeData) -> str:
    """One line saying what ``drop_slow_units`` left out (empty when nothing was dropped)."""
    dropped = data.metadata.get("dropped_units") or []
    if "min_rate" not in data.metadata:
        return ""
    total = data.n_units + len(dropped)
    shown = ", ".join(str(d) for d in dropped[:8]) + (" ..." if len(dropped) > 8 else "")
    return (f"--min-rate {data.metadata['min_rate']:g} Hz: kept {data.n_units} of {total} units"
            + (f", dropped {len(dropped)} ({shown})" if dropped else ""))
