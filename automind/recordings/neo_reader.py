"""Formats the Neo package reads (Blackrock, Plexon, Spike2, NIX, Neo .mat, ...): spike
trains -> SpikeData, one unit per spike train. Optional: needs ``pip install automind[neo]``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..features.spikedata import SpikeData

#: IOs never used: unpickling executes code from the file (DESIGN.md: safe artifacts)
REFUSED = ("PickleIO",)


def neo_available() -> bool:
    try:
        import neo  # noqa: F401
    except ImportError:
        return False
    return True


def neo_io_name(path: Path) -> str | None:
    """Name of the Neo IO class for this file's extension (None when Neo has none)."""
    from neo.io import iolist

    suffix = Path(path).suffix.lower().lstrip(".")
    for io in iolist:
        if suffix and suffix in [e.lower() for e in getattr(io, "extensions", [])]:
            return io.__name__
    return None


def _check_size(path: Path) -> None:
    """Neo's IOs read whole files into memory: refuse files over the array limit first."""
    from .npz import max_array_bytes

    size, limit = path.stat().st_size, max_array_bytes()
    if size > limit:
        raise UserError(f"{path}: {size} bytes, over the {limit}-byte limit for a Neo file "
                        "(AUTOMIND_MAX_ARRAY_BYTES)")


def read_neo(path: str | Path, duration: float | None = None, note: str = "") -> SpikeData:
    """Spike trains of a single-segment Neo file; times re-timed to the segment's start.
    ``note`` is added to the message when Neo cannot read the file."""
    import neo.io

    path = Path(path)
    name = neo_io_name(path)
    if name is None:
        raise UserError(f"{path}: cannot tell the format; Neo has no reader for "
                        f"'{path.suffix}' either")
    if name in REFUSED:
        raise UserError(f"{path}: refusing {name}: loading pickles can execute code from the file")
    _check_size(path)
    try:
        block = getattr(neo.io, name)(filename=str(path)).read_block()
    except Exception as err:  # Neo's IOs raise anything for a file that is not theirs
        first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise UserError(f"{path}: cannot tell the format: Neo's {name} cannot read it "
                        f"({first}){note}") from None
    if len(block.segments) != 1:
        raise UserError(f"{path}: {len(block.segments)} segments; automind reads Neo files with "
                        "exactly one segment (one recording)")
    trains = block.segments[0].spiketrains
    if not trains:
        raise UserError(f"{path}: no spike trains in the file ({name})")
    start = min(float(t.t_start.rescale("s").magnitude) for t in trains)
    stop = max(float(t.t_stop.rescale("s").magnitude) for t in trains)
    times = [np.asarray(t.rescale("s").magnitude, np.float64).ravel() - start for t in trains]
    ids = np.repeat(np.arange(len(trains)), [len(t) for t in times])
    names = [str(t.name) if t.name is not None else f"train_{k}" for k, t in enumerate(trains)]
    return SpikeData(np.concatenate(times), ids, duration if duration is not None else stop - start,
                     np.arange(len(trains)), {}, {"path": str(path), "format": f"neo:{name}"},
                     metadata={"unit_names": names, "n_channels": len(trains),
                               "n_silent": int(sum(len(t) == 0 for t in times))})
