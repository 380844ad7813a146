"""A virtual MEA: simulated neurons sampled into as many "electrodes" as a recording has.

A model's population rate averages hundreds of neurons, an MEA's a few dozen electrodes, so
the spectrum's white-noise floor (≈ 2 · rate per unit / units) and the sample behind every
per-unit average differ between the two; and an electrode may record several cells
(multi-unit activity). ``meaK`` takes K neurons spread evenly over the population's ranks,
one per electrode; ``meaKxM`` pools M neurons into each electrode (the K·M neurons of
evenly spaced ranks, the i-th of them into electrode i mod K). The features then do not
depend on the network's size (given N ≥ K·M), and on a recording of K units ``meaK`` is
the identity (and so is ``meaKxM``: a recording's electrodes are already its pooled
units), so one feature set computes both sides.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import UserError
from .spikedata import SpikeData

#: ``mea``, the electrode count, optionally ``x`` and the neurons per electrode: mea51, mea51x4
NAME = re.compile(r"mea(\d+)(?:x(\d+))?")
#: before the electrode count is known (``automind fit --features mea`` or ``meaxM``)
UNRESOLVED = re.compile(r"mea(?:x(\d+))?")


def pool_units(data: SpikeData, n_electrodes: int, per_electrode: int = 1) -> SpikeData:
    """``data`` as ``n_electrodes`` units, each pooling ``per_electrode`` units of evenly
    spaced ranks; the other units, groups and positions are dropped. Data of exactly
    ``n_electrodes`` units are those electrodes already (a recording, whose electrodes may
    each hold several cells): kept as they are, whatever ``per_electrode``."""
    if data.n_units == n_electrodes >= 1:
        per_electrode = 1
    needed = n_electrodes * per_electrode
    if n_electrodes < 1 or per_electrode < 1 or needed > data.n_units:
        where = data.source.get("path", "the spike data")
        raise UserError(f"a virtual MEA of {n_electrodes} electrodes x {per_electrode} neurons "
                        f"needs {needed} units; {where} has {data.n_units}")
    chosen = data.units[(np.arange(needed) * data.n_units) // needed]
    electrode = np.full(data.n_units, -1)
    electrode[np.searchsorted(data.units, chosen)] = np.arange(needed) % n_electrodes
    of_spike = electrode[np.searchsorted(data.units, data.unit_ids)]
    keep = of_spike >= 0
    return SpikeData(data.times[keep], of_spike[keep], data.duration, np.arange(n_electrodes),
                     {}, data.source, None,
                     dict(data.metadata) | {"units_per_electrode": per_electrode})


def parse_name(name: str) -> tuple[int, int] | None:
    """(K, M) of ``meaK`` / ``meaKxM`` (M = 1 when absent), None for other names."""
    match = NAME.fullmatch(name)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2) or 1)


def resolve_name(name: str, n_units: int) -> str:
    """``mea`` / ``meaxM`` made ``meaK`` / ``meaKxM`` for a recording of K units."""
    match = UNRESOLVED.fullmatch(name)
    if not match:
        return name
    return f"mea{n_units}" + (f"x{match.group(1)}" if match.group(1) else "")
