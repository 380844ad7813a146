"""MEA spike lists in the HDF5 layout of sjemea / meaRtools (e.g. Charlesworth et al. 2015).

Datasets: ``spikes`` (all spike times in s, channel after channel), ``sCount`` (spikes per
channel), ``names`` (one per channel); optional ``epos`` (electrode x, y in µm, shape
(2, channels) or (channels, 2)), ``recordingtime`` ([start, end] in s), ``array`` and
``meta/*`` (age in DIV, region, species, ...). Each listed channel is a unit, silent ones
included, so per-unit rates are not over-estimated. The file is recognised by its content
(the HDF5 signature and these datasets), whatever its extension.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..features.spikedata import SpikeData

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
REQUIRED = ("spikes", "sCount")


def is_hdf5(path: Path) -> bool:
    """True when the file starts with the HDF5 signature (at byte 0 or a user-block offset
    512, 1024, 2048, ...), as the HDF5 specification allows."""
    try:
        with open(path, "rb") as handle:
            offset, size = 0, Path(path).stat().st_size
            while offset + 8 <= size:
                handle.seek(offset)
                if handle.read(8) == HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def hdf5_kind(path: Path) -> str | None:
    """'mea' (spike-list layout), 'nwb', 'hdf5' (other) or None (not a readable HDF5 file)."""
    if not is_hdf5(path):
        return None
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if all(name in handle for name in REQUIRED):
                return "mea"
            if "nwb_version" in handle.attrs or "general" in handle:
                return "nwb"
    except Exception:  # h5py raises OSError, RuntimeError, ... for truncated or corrupt files
        return None  # read_mea_hdf5 says why
    return "hdf5"


def as_text(value) -> str:
    """An HDF5 / NWB scalar or string array as text (bytes decoded, arrays comma-joined)."""
    value = np.asarray(value).ravel()
    item = value[0] if value.size == 1 else value
    if isinstance(item, bytes):
        return item.decode("utf-8", "replace")
    if isinstance(item, np.ndarray):
        return ",".join(as_text(v) for v in item)
    return item.item() if hasattr(item, "item") else item


def _metadata(handle) -> dict:
    meta = {}
    if "meta" in handle:
        for key, dataset in handle["meta"].items():
            if hasattr(dataset, "shape"):
                meta[key] = as_text(dataset[()])
    if "array" in handle:
        meta["array"] = as_text(handle["array"][()])
    if "age" in meta:  # the layout's age is days in vitro
        meta["age_div"] = meta.pop("age")
    return meta


def _positions(handle, n: int, path: Path) -> np.ndarray | None:
    if "epos" not in handle:
        return None
    epos = np.asarray(handle["epos"][()], dtype=np.float64)
    if epos.ndim == 2 and epos.shape[1] == n and epos.shape[0] != n:
        epos = epos.T
    if epos.ndim != 2 or epos.shape[0] != n:
        raise UserError(f"{path}: epos has shape {epos.shape}, expected (2, {n}) electrode positions")
    return epos


def _check_sizes(handle, path: Path) -> None:
    """Refuse a dataset that would decode to more than the array limit before reading it
    (times and positions are read as float64, 8 bytes per element)."""
    from .npz import check_declared_size

    for name in (*REQUIRED, "names", "epos", "recordingtime"):
        if name in handle:
            check_declared_size(handle[name], path, f"dataset '{name}'", decoded_itemsize=8)


def read_mea_hdf5(path: str | Path, duration: float | None = None) -> SpikeData:
    """One unit per listed channel (ids 0..n-1 in file order), positions and metadata attached."""
    import h5py

    path = Path(path)
    if not is_hdf5(path):
        raise UserError(f"{path}: not an HDF5 file (no HDF5 signature)")
    try:
        with h5py.File(path, "r") as handle:
            missing = [name for name in REQUIRED if name not in handle]
            if missing:
                raise UserError(f"{path}: an HDF5 file without {' and '.join(missing)}; expected "
                                "the MEA spike-list layout (spikes, sCount, names)")
            _check_sizes(handle, path)
            spikes = np.asarray(handle["spikes"][()], dtype=np.float64).ravel()
            counts = np.asarray(handle["sCount"][()]).ravel()
            names = ([as_text(v) for v in np.asarray(handle["names"][()]).ravel()]
                     if "names" in handle else [f"ch_{k}" for k in range(len(counts))])
            span = (np.asarray(handle["recordingtime"][()], dtype=np.float64).ravel()
                    if "recordingtime" in handle else None)
            positions = _positions(handle, len(counts), path)
            meta = _metadata(handle)
    except UserError:
        raise
    except Exception as err:  # h5py raises OSError, RuntimeError, ... for a corrupt file
        raise UserError(f"{path}: unreadable HDF5 file ({str(err).splitlines()[0][:160]})") from None
    return _spike_data(path, spikes, counts, names, span, positions, meta, duration)


def _spike_data(path, spikes, counts, names, span, positions, meta, duration) -> SpikeData:
    if counts.dtype.kind not in "iu" and not np.all(counts == np.round(counts)):
        raise UserError(f"{path}: sCount must hold whole spike counts")
    counts = counts.astype(np.int64)
    if (counts < 0).any():
        raise UserError(f"{path}: sCount has negative counts")
    if counts.sum() != len(spikes):
        raise UserError(f"{path}: sCount adds up to {counts.sum()} spikes but spikes holds "
                        f"{len(spikes)}")
    if len(names) != len(counts):
        raise UserError(f"{path}: {len(names)} channel names but {len(counts)} sCount entries")
    if not len(counts):
        raise UserError(f"{path}: no channels listed")
    if not np.isfinite(spikes).all():
        raise UserError(f"{path}: {int((~np.isfinite(spikes)).sum())} spike times are NaN or inf")
    start = 0.0
    if span is not None and len(span) == 2 and np.isfinite(span).all():
        start = float(span[0])
        if duration is None:
            duration = float(span[1] - span[0])
    times = spikes - start
    if len(times) and times.min() < 0:
        raise UserError(f"{path}: {int((times < 0).sum())} spike times are before the recording "
                        f"start ({start:g} s; first {spikes.min():g} s)")
    ids = np.repeat(np.arange(len(counts)), counts)
    backwards = np.flatnonzero((np.diff(times) < 0) & (ids[1:] == ids[:-1]))
    if len(backwards):
        raise UserError(f"{path}: spike times of channel {names[ids[backwards[0]]]} are not "
                        f"sorted ({len(backwards)} steps back in time)")
    if not len(times):
        raise UserError(f"{path}: no active electrode (no spikes in any of {len(counts)} channels)")
    if duration is None:
        duration = float(times.max())
    meta |= {"n_channels": int(len(counts)), "n_silent": int((counts == 0).sum()),
             "unit_names": names}
    source = {"path": str(path), "format": "mea-hdf5"}
    return SpikeData(times, ids, duration, np.arange(len(counts)), {}, source, positions, meta)
