"""Readers for spike-time recordings -> SpikeData (the same type simulations produce).

Formats (chosen by extension, or ``fmt``):

- ``.npz`` with ``spike_times`` (s) and ``unit_ids`` (+ optional ``duration``, ``units``);
- ``.npz`` in the AutoMIND example layout: ``spikes`` (one array of sample indices per
  unit), ``fs`` (Hz), ``t_end`` (s);
- ``.npz`` MEA electrode spike lists: ``electrodes`` (or ``channels``), ``samples``, ``fs``
  (+ optional ``n_samples``); each electrode is a unit;
- ``.csv`` with a header: ``unit,time`` (s), or ``electrode,sample`` (needs ``fs``);
- ``.nwb`` via pynwb: the Units table, optionally only units of one brain area
  (``area``: matched against the electrodes' ``location`` or the electrode group) and
  passing unit-quality filters (``quality=["quality==good", "isi_violations<0.5"]``).
"""

from __future__ import annotations

import csv
import operator
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..features.spikedata import SpikeData

FORMATS = ("npz", "csv", "nwb")


def read_recording(path: str | Path, fmt: str | None = None, duration: float | None = None,
                   fs: float | None = None, area: str | None = None,
                   quality: list[str] | None = None) -> SpikeData:
    """Read a recording into SpikeData; ``duration`` (s) overrides what the file says."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recording not found: {path}")
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise UserError(f"cannot tell the format of {path}; use one of {', '.join(FORMATS)}")
    if fmt == "nwb":
        return read_nwb(path, duration, area, quality)
    if area or quality:
        raise UserError("--area and --quality filters apply to NWB files only")
    return read_npz(path, duration) if fmt == "npz" else read_csv(path, duration, fs)


def _finish(times, ids, duration, path, units=None, groups=None, kind="") -> SpikeData:
    times = np.asarray(times, dtype=np.float64)
    if duration is None:
        if not len(times):
            raise UserError(f"{path}: no spikes and no duration; give the recording's duration")
        duration = float(np.nanmax(times))
        if duration <= 0:
            raise UserError(f"{path}: cannot infer a duration from the spike times; give it")
    return SpikeData(times, ids, duration, units, groups or {},
                     {"path": str(path), "format": kind})


def read_npz(path: Path, duration: float | None = None) -> SpikeData:
    try:
        data = np.load(path, allow_pickle=False)
        keys = set(data.files)
    except (ValueError, OSError) as err:
        if "allow_pickle" in str(err):
            return _read_automind_layout(path, duration)
        raise UserError(f"{path}: not a readable .npz file ({err})") from None
    if {"spike_times", "unit_ids"} <= keys:
        duration = duration if duration is not None else (
            float(data["duration"]) if "duration" in keys else None)
        return _finish(data["spike_times"], data["unit_ids"], duration, path,
                       data["units"] if "units" in keys else None, kind="npz")
    if "spikes" in keys and "fs" in keys:
        return _read_automind_layout(path, duration)
    electrode_key = "electrodes" if "electrodes" in keys else "channels" if "channels" in keys else None
    if electrode_key and {"samples", "fs"} <= keys:
        fs = float(data["fs"])
        if not fs > 0:
            raise UserError(f"{path}: sampling rate fs must be > 0")
        if duration is None and "n_samples" in keys:
            duration = float(data["n_samples"]) / fs
        return _finish(np.asarray(data["samples"], np.float64) / fs, data[electrode_key], duration,
                       path, kind="mea")
    raise UserError(f"{path}: expected arrays spike_times + unit_ids, or spikes + fs + t_end "
                    f"(AutoMIND layout), or electrodes + samples + fs (MEA); found {sorted(keys)}")


def _read_automind_layout(path: Path, duration: float | None) -> SpikeData:
    # The published example files store a ragged list of per-unit arrays (an object array).
    # Reading it needs pickle; we accept only plain numeric arrays inside it.
    data = np.load(path, allow_pickle=True)
    spikes = data["spikes"]
    fs = float(data["fs"])
    if not fs > 0:
        raise UserError(f"{path}: sampling rate fs must be > 0")
    trains = [np.asarray(unit, dtype=np.float64).ravel() for unit in spikes]
    times = np.concatenate(trains) / fs if trains else np.zeros(0)
    ids = np.repeat(np.arange(len(trains)), [len(t) for t in trains])
    if duration is None and "t_end" in data.files:
        duration = float(data["t_end"])
    return _finish(times, ids, duration, path, np.arange(len(trains)), kind="automind-npz")


def read_csv(path: Path, duration: float | None = None, fs: float | None = None) -> SpikeData:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise UserError(f"{path}: empty file")
    header = [h.strip().lower() for h in rows[0]]
    try:
        values = np.array(rows[1:], dtype=np.float64).reshape(-1, len(header))
    except ValueError:
        raise UserError(f"{path}: every row after the header must hold {len(header)} numbers") from None
    if header[:2] == ["unit", "time"]:
        return _finish(values[:, 1], values[:, 0], duration, path, kind="csv")
    if header[:2] in (["electrode", "sample"], ["channel", "sample"]):
        if not fs or fs <= 0:
            raise UserError(f"{path}: electrode,sample files need the sampling rate (--fs)")
        return _finish(values[:, 1] / fs, values[:, 0], duration, path, kind="mea-csv")
    raise UserError(f"{path}: header must be 'unit,time' (seconds) or 'electrode,sample'; "
                    f"got {','.join(rows[0])}")


_QUALITY = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*$")
_OPS = {"==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge,
        "<": operator.lt, ">": operator.gt}


def _quality_mask(units, expressions: list[str], path: Path) -> np.ndarray:
    keep = np.ones(len(units), dtype=bool)
    columns = set(units.colnames)
    for expression in expressions:
        match = _QUALITY.match(expression)
        if not match:
            raise UserError(f"quality filter {expression!r}: write COLUMN OP VALUE, e.g. "
                            "'isi_violations<0.5' or 'quality==good'")
        column, op, value = match.groups()
        if column not in columns:
            raise UserError(f"{path}: quality filter on {column!r}, but the Units table has "
                            f"columns {sorted(columns)}")
        data = np.asarray(units[column].data[:])
        try:
            target = float(value) if data.dtype.kind in "fiu" else value
        except ValueError:
            raise UserError(f"quality filter {expression!r}: {value!r} is not a number") from None
        keep &= _OPS[op](data, target)
    return keep


def _unit_areas(units) -> list[str | None]:
    """Brain area of each unit: electrodes' location, else its electrode group's location."""
    areas = []
    for k in range(len(units)):
        area = None
        if "electrodes" in units.colnames:
            rows = units["electrodes"][k]
            if hasattr(rows, "columns") and "location" in rows.columns and len(rows):
                area = str(rows["location"].iloc[0])
        if area is None and "electrode_group" in units.colnames:
            group = units["electrode_group"][k]
            area = str(getattr(group, "location", None) or getattr(group, "name", ""))
        areas.append(area)
    return areas


def read_nwb(path: Path, duration: float | None = None, area: str | None = None,
             quality: list[str] | None = None) -> SpikeData:
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise UserError("reading NWB files needs pynwb (pip install pynwb)") from None
    try:
        io = NWBHDF5IO(str(path), "r", load_namespaces=True)
        nwb = io.read()
    except Exception as err:  # h5py/hdmf raise many types for a bad file
        raise UserError(f"{path}: not a readable NWB file ({type(err).__name__}: {err})") from None
    try:
        units = nwb.units
        if units is None or len(units) == 0:
            raise UserError(f"{path}: the NWB file has no Units table")
        keep = _quality_mask(units, quality or [], path)
        areas = _unit_areas(units)
        if area is not None:
            known = sorted({a for a in areas if a})
            if area not in known:
                raise UserError(f"{path}: no units in area {area!r}; areas: {known}")
            keep &= np.array([a == area for a in areas])
        ids = np.asarray(units.id[:])
        times, unit_ids, groups = [], [], {}
        for k in np.flatnonzero(keep):
            train = np.asarray(units.get_unit_spike_times(int(k)), dtype=np.float64)
            times.append(train)
            unit_ids.append(np.full(len(train), ids[k]))
            if areas[k]:
                groups.setdefault(areas[k], []).append(ids[k])
        if not times:
            raise UserError(f"{path}: no units pass the filters")
        if duration is None and "obs_intervals" in units.colnames:
            duration = float(max(np.max(np.asarray(v)) for v in units["obs_intervals"][:]))
        return _finish(np.concatenate(times), np.concatenate(unit_ids), duration, path,
                       ids[keep], groups, kind="nwb")
    finally:
        io.close()
