"""Formats the Neo package reads (Blackrock, Plexon, Spike2, NIX, Neo .mat, ...): spike
trains -> SpikeData, one unit per spike train. Optional: needs ``pip install automind[neo]``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..features.spikedata import SpikeData

#: IOs never used: unpickling executes code from the file (DESIGN.md: safe artifacts)
REFUSED = ("PickleIO",)
#: seconds a Neo parse (in its child process) may take
CHILD_TIMEOUT = 120.0


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
    ``note`` is added to the message when Neo cannot read the file.

    Neo's IOs are third-party parsers (scipy.io.loadmat for .mat, ...) that can crash the
    interpreter on a damaged file (the fuzz run found segmentation faults and runaway
    allocations), so the file is parsed in a child process with a memory and time limit and
    only plain arrays come back (an .npz read without pickles)."""
    path = Path(path)
    name = neo_io_name(path)
    if name is None:
        raise UserError(f"{path}: cannot tell the format; Neo has no reader for "
                        f"'{path.suffix}' either")
    if name in REFUSED:
        raise UserError(f"{path}: refusing {name}: loading pickles can execute code from the file")
    _check_size(path)
    arrays = _parse_in_child(path, name, note)
    trains = [arrays[f"train{k}"] for k in range(int(arrays["n_trains"]))]
    start, stop = float(arrays["start"]), float(arrays["stop"])
    times = [t - start for t in trains]
    ids = np.repeat(np.arange(len(trains)), [len(t) for t in times])
    names = [str(n) for n in arrays["names"]]
    return SpikeData(np.concatenate(times), ids, duration if duration is not None else stop - start,
                     np.arange(len(trains)), {}, {"path": str(path), "format": f"neo:{name}"},
                     metadata={"unit_names": names, "n_channels": len(trains),
                               "n_silent": int(sum(len(t) == 0 for t in times))})


def _parse_in_child(path: Path, name: str, note: str) -> dict:
    """Run :func:`_parse` in ``python -m automind.recordings.neo_reader`` under limits."""
    import subprocess
    import sys
    import tempfile

    from .npz import SafeNpz, max_array_bytes

    limit = max_array_bytes()

    def limits():  # in the child, before it imports anything
        import resource

        # address space: the interpreter and Neo's imports (~1 GB) plus the array limit
        resource.setrlimit(resource.RLIMIT_AS, (limit + (2 << 30), resource.RLIM_INFINITY))

    with tempfile.TemporaryDirectory(prefix="automind-neo-") as folder:
        result = Path(folder) / "trains.npz"
        try:
            child = subprocess.run([sys.executable, "-m", "automind.recordings.neo_reader", name,
                                    str(path), str(result)], capture_output=True, text=True,
                                   timeout=CHILD_TIMEOUT, preexec_fn=limits)
        except subprocess.TimeoutExpired:
            raise UserError(f"{path}: Neo's {name} did not finish reading it in "
                            f"{CHILD_TIMEOUT:g} s (a damaged file?)") from None
        if child.returncode == 2 and child.stderr.strip():
            message = child.stderr.strip().splitlines()[-1]
            raise UserError(f"{path}: {message}" + (note if "cannot read it" in message else ""))
        if child.returncode != 0 or not result.is_file():
            how = (f"signal {-child.returncode}" if child.returncode < 0
                   else f"exit status {child.returncode}")
            raise UserError(f"{path}: Neo's {name} crashed reading it ({how}): a damaged or "
                            f"unsupported file{note}")
        with SafeNpz(result, name=str(path)) as npz:
            return {key: npz[key] for key in npz.files}


def _parse(name: str, path: str, result: str) -> None:
    """In the child: read the block with Neo and save the trains (s) as plain arrays."""
    import neo.io

    from ..io import save_npz

    try:
        block = getattr(neo.io, name)(filename=path).read_block()
    except Exception as err:  # Neo's IOs raise anything for a file that is not theirs
        first = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise UserError(f"cannot tell the format: Neo's {name} cannot read it ({first})") from None
    if len(block.segments) != 1:
        raise UserError(f"{len(block.segments)} segments; automind reads Neo files with "
                        "exactly one segment (one recording)")
    trains = block.segments[0].spiketrains
    if not trains:
        raise UserError(f"no spike trains in the file ({name})")
    start = min(float(t.t_start.rescale("s").magnitude) for t in trains)
    stop = max(float(t.t_stop.rescale("s").magnitude) for t in trains)
    arrays = {f"train{k}": np.asarray(t.rescale("s").magnitude, np.float64).ravel()
              for k, t in enumerate(trains)}
    names = [str(t.name) if t.name is not None else f"train_{k}" for k, t in enumerate(trains)]
    save_npz(result, n_trains=len(trains), start=start, stop=stop, names=np.array(names, dtype=str),
             **arrays)


if __name__ == "__main__":
    import sys
    import warnings

    warnings.simplefilter("ignore")
    try:
        _parse(*sys.argv[1:4])
    except UserError as err:
        print(err, file=sys.stderr)
        sys.exit(2)
