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
  passing unit-quality filters (``quality=["quality==good", "isi_violations<0.5"]``);
- MEA spike lists in HDF5 (``spikes``, ``sCount``, ``names``, ...; ``mea_hdf5``), found by
  content whatever the extension;
- anything the ``neo`` package reads (``neo_reader``), when it is installed.
"""

from __future__ import annotations

import csv
import io
import operator
import re
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..features.spikedata import SpikeData
from .mea_hdf5 import as_text, hdf5_kind, read_mea_hdf5
from .neo_reader import neo_available, neo_io_name, read_neo
from .npz import SafeNpz, check_declared_size

FORMATS = ("npz", "csv", "nwb")
MEA_HDF5 = ("h5", "hdf5", "mea")


def read_recording(path: str | Path, fmt: str | None = None, duration: float | None = None,
                   fs: float | None = None, area: str | None = None,
                   quality: list[str] | None = None) -> SpikeData:
    """Read a recording into SpikeData; ``duration`` (s) overrides what the file says."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recording not found: {path}")
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    kind = hdf5_kind(path) if fmt not in FORMATS else None
    by_neo = kind != "mea" and fmt not in FORMATS and neo_available() and neo_io_name(path)
    if kind == "mea" or (fmt in MEA_HDF5 and not (by_neo and kind in ("hdf5", "nwb"))):
        if area or quality:
            raise UserError("--area and --quality filters apply to NWB files only")
        return read_mea_hdf5(path, duration)  # (its errors say why a .h5 is not readable)
    if by_neo:
        return read_neo(path, duration, "; an HDF5 file without spikes and sCount (MEA layout)"
                        if kind else "")
    if fmt not in FORMATS:
        raise UserError(f"cannot tell the format of {path}; use one of {', '.join(FORMATS)}, "
                        "an MEA HDF5 spike list, or a Neo format (pip install neo)")
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


def _numbers(data, key: str, path: Path) -> np.ndarray:
    values = data[key]
    if values.dtype.kind not in "biuf":
        raise UserError(f"{path}: array {key!r} must hold numbers, not {values.dtype}")
    return values


def _scalar(data, key: str, path: Path) -> float:
    values = _numbers(data, key, path)
    if values.size != 1:
        raise UserError(f"{path}: {key!r} must be one number, got shape {values.shape}")
    return float(values.ravel()[0])


def read_npz(path: Path, duration: float | None = None) -> SpikeData:
    """Arrays are parsed by ``recordings.npz`` (never ``np.load(allow_pickle=True)``)."""
    with SafeNpz(path, ragged=("spikes",)) as data:
        keys = set(data.files)
        if {"spike_times", "unit_ids"} <= keys:
            if duration is None and "duration" in keys:
                duration = _scalar(data, "duration", path)
            return _finish(_numbers(data, "spike_times", path), _numbers(data, "unit_ids", path),
                           duration, path,
                           _numbers(data, "units", path) if "units" in keys else None, kind="npz")
        if "spikes" in keys and "fs" in keys:
            return _read_automind_layout(data, path, duration)
        electrode_key = ("electrodes" if "electrodes" in keys
                         else "channels" if "channels" in keys else None)
        if electrode_key and {"samples", "fs"} <= keys:
            fs = _scalar(data, "fs", path)
            if not fs > 0:
                raise UserError(f"{path}: sampling rate fs must be > 0")
            if duration is None and "n_samples" in keys:
                duration = _scalar(data, "n_samples", path) / fs
            return _finish(_numbers(data, "samples", path) / fs,
                           _numbers(data, electrode_key, path), duration, path, kind="mea")
    raise UserError(f"{path}: expected arrays spike_times + unit_ids, or spikes + fs + t_end "
                    f"(AutoMIND layout), or electrodes + samples + fs (MEA); found {sorted(keys)}")


def _read_automind_layout(data: SafeNpz, path: Path, duration: float | None) -> SpikeData:
    # The published example files store a ragged list of per-unit arrays: an object array,
    # decoded by SafeNpz without general unpickling (numbers only).
    spikes = data["spikes"]
    fs = _scalar(data, "fs", path)
    if not fs > 0:
        raise UserError(f"{path}: sampling rate fs must be > 0")
    if spikes.dtype.kind not in "Obiuf":
        raise UserError(f"{path}: array 'spikes' must hold numbers, not {spikes.dtype}")
    trains = [np.asarray(unit, dtype=np.float64).ravel()
              for unit in (spikes if spikes.ndim else spikes.reshape(1))]
    times = np.concatenate(trains) / fs if trains else np.zeros(0)
    ids = np.repeat(np.arange(len(trains)), [len(t) for t in trains])
    if duration is None and "t_end" in data:
        duration = _scalar(data, "t_end", path)
    return _finish(times, ids, duration, path, np.arange(len(trains)), kind="automind-npz")


def read_csv(path: Path, duration: float | None = None, fs: float | None = None) -> SpikeData:
    try:
        rows = list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise UserError(f"{path}: not a readable CSV file ({err})") from None
    if not rows or not rows[0]:
        raise UserError(f"{path}: empty file" if not rows else f"{path}: the first line (the "
                        "header) is empty")
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
                    f"got {','.join(rows[0])[:200]!r}")


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
    """Brain area of each unit: its first electrode's location, else its electrode group's
    location. Columns are read whole (hdmf builds a DataFrame per row otherwise: seconds)."""
    n = len(units)
    areas: list[str | None] = [None] * n
    if "electrodes" in units.colnames:
        column = units["electrodes"]  # a VectorIndex over a DynamicTableRegion when ragged
        region = getattr(column, "target", column)
        table = getattr(region, "table", None)
        if table is not None and "location" in table.colnames:
            locations = table["location"].data[:]
            rows = np.asarray(region.data[:], dtype=np.int64)
            ends = (np.asarray(column.data[:], dtype=np.int64) if column is not region
                    else np.arange(1, n + 1))
            starts = np.concatenate([[0], ends[:-1]])
            for k in np.flatnonzero(ends > starts):
                areas[k] = as_text(locations[rows[starts[k]]])
    if "electrode_group" in units.colnames and None in areas:
        groups = units["electrode_group"].data[:]
        for k in (k for k in range(n) if areas[k] is None):
            areas[k] = str(getattr(groups[k], "location", None) or getattr(groups[k], "name", ""))
    return areas


def read_nwb(path: Path, duration: float | None = None, area: str | None = None,
             quality: list[str] | None = None) -> SpikeData:
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise UserError("reading NWB files needs pynwb (pip install pynwb)") from None
    try:
        io = NWBHDF5IO(str(path), "r", load_namespaces=True)
    except Exception as err:  # h5py/hdmf raise many types for a bad file
        raise UserError(f"{path}: not a readable NWB file ({_one_line(err)})") from None
    try:
        return _read_units(io.read(), path, duration, area, quality)
    except UserError:
        raise
    except Exception as err:  # a damaged file fails deep inside h5py/hdmf, with any type
        raise UserError(f"{path}: not a readable NWB file ({_one_line(err)})") from None
    finally:
        io.close()


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:200] if lines else ''}"


def _read_units(nwb, path: Path, duration, area, quality) -> SpikeData:
    units = nwb.units
    if units is None or len(units) == 0:
        raise UserError(f"{path}: the NWB file has no Units table")
    if "spike_times" not in units.colnames:
        raise UserError(f"{path}: the Units table has no spike_times column")
    check_declared_size(units["spike_times"].target.data, path, "spike_times")
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
