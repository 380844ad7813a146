"""Writing spike data as a user's recording: NWB (Units table), so a simulation can be read
back exactly as a recording from a lab would be."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def write_nwb(data, path: str | Path, description: str = "automind spike data",
              identifier: str = "automind") -> Path:
    """Write a SpikeData as an NWB file: one unit per unit id (with its spike times and the
    observation interval [0, duration)); each group (E / I, an area) becomes an electrode
    group whose location is the group's name, so ``read_recording(area=...)`` selects it."""
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description=description, identifier=identifier,
                  session_start_time=datetime(2000, 1, 1, tzinfo=timezone.utc))
    device = nwb.create_device("automind")
    groups = data.groups or {"all": data.units}
    order = np.argsort(data.unit_ids, kind="stable")
    ids, times = data.unit_ids[order], data.times[order]
    for name, members in groups.items():
        group = nwb.create_electrode_group(str(name), f"units of {name}", str(name), device)
        nwb.add_electrode(group=group, location=str(name))
        electrode = len(nwb.electrodes) - 1
        for unit in members:
            lo, hi = np.searchsorted(ids, unit), np.searchsorted(ids, unit, side="right")
            nwb.add_unit(id=int(unit), spike_times=np.sort(times[lo:hi]), electrodes=[electrode],
                         electrode_group=group, obs_intervals=[[0.0, float(data.duration)]])
    path = Path(path)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
