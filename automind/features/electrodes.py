"""A virtual MEA: a simulated population pooled into as many "electrodes" as a recording has.

An MEA electrode records several nearby cells (multi-unit activity), a model unit is one
neuron, so per-unit rates, ISI statistics, Fano factors, correlations and the population
rate's white-noise floor (≈ 2 · rate / units) are different quantities on the two sides.
Pooling the simulated units into K electrodes (the unit of rank r goes to electrode r mod K,
so every electrode samples the whole population, clusters included) makes them the same
quantity. On a recording with K units the pooling is the identity, so one feature set
(``meaK``) computes both sides.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import UserError
from .spikedata import SpikeData

#: ``mea`` followed by the electrode count, e.g. ``mea51``
NAME = re.compile(r"mea(\d+)")


def pool_units(data: SpikeData, n_electrodes: int) -> SpikeData:
    """``data`` with its units pooled into ``n_electrodes`` units (rank mod n_electrodes);
    groups and positions are dropped, the units-per-electrode ratio is kept in metadata."""
    if n_electrodes < 1 or n_electrodes > data.n_units:
        where = data.source.get("path", "the spike data")
        raise UserError(f"a virtual MEA of {n_electrodes} electrodes needs at least as many units; "
                        f"{where} has {data.n_units}")
    rank = np.searchsorted(data.units, data.unit_ids)
    return SpikeData(data.times, rank % n_electrodes, data.duration, np.arange(n_electrodes),
                     {}, data.source, None,
                     dict(data.metadata) | {"units_per_electrode": data.n_units / n_electrodes})


def electrode_count(name: str) -> int | None:
    """K of a ``meaK`` feature-set name, None for other names."""
    match = NAME.fullmatch(name)
    return int(match.group(1)) if match else None
