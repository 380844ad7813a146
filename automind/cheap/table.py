"""The table: stationary rate and ISI CV of the reduced neuron over a grid, built once by
compiled Brian2 runs, stored as checked arrays + JSON, looked up multilinearly.

Storage ``$AUTOMIND_CACHE/cheap/<hash>/``:

    table.json          key (equations, grid, dt rule, node settings, seed, Brian2), build
                        summary, sha256 and shape of every array
    log10_rate.npy      float32 log10(ν τ_eff) per node (filled / made monotone, see below)
    cv.npy, rel_se.npy, count.npy, flags.npy
    chunks/cNNNNNN.npy  raw per-chunk results while building (resumable; kept)

Lookups interpolate log10 of the free ISI 1/ν − ρ (then ν = 1/(ρ + T)) multilinearly.
Nodes with fewer than ``MIN_COUNT`` spikes are filled down the m axis from the lowest
well-measured node with the coloured-noise Siegert tail (flag 1); log10 ν is then made
non-decreasing in m (flag 2 where that changed a node). Lookups beyond the m axis use the
Siegert tail below and the deterministic ISI above; beyond any other axis they clamp; all
three are reported as ``extrapolated``.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import atomic_write_bytes as _atomic_write
from . import analytic
from .grid import AXES, COORDINATES, Grid
from .nodes import EQUATIONS, RESET, NodeSettings

FORMAT = "automind-cheap-table"
FORMAT_VERSION = 1
MIN_COUNT = 30
FREE_ISI_FLOOR = 1e-4  # of the ISI: where the measured ISI is all refractory
ARRAYS = ("log10_rate", "cv", "rel_se", "count", "flags")
FLAG_TAIL, FLAG_MONOTONE = 1, 2
#: how the low-m tail is drawn (``analytic.log10_tail``): 1 Fourcaud–Brunel Siegert alone,
#: 2 blended with the quasi-static limit; part of :attr:`Table.key`
TAIL_VERSION = 2


def cache_root() -> Path:
    from ..simulators.engine import cache_root as root

    return root() / "cheap"


def table_key(grid: Grid, settings: NodeSettings, seed: int) -> dict:
    key = settings.key()
    return {"format": FORMAT, "version": FORMAT_VERSION, "grid": grid.to_dict(),
            "equations": EQUATIONS, "reset": RESET, "dt_rule": f"dt = {settings.dt} tau_eff",
            "nodes": {k: v for k, v in key.items() if k not in ("equations", "reset")},
            "seed": int(seed), "min_count": MIN_COUNT}


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# ---- building -----------------------------------------------------------------------------

def _run_chunk(directory: str, settings: dict, seed: int, chunk: int) -> int:
    """Worker: simulate one chunk of unique nodes unless it is done or claimed."""
    from filelock import FileLock, Timeout

    from .nodes import NodeBinary, node_arguments

    folder = Path(directory)
    out = folder / "chunks" / f"c{chunk:06d}.npy"
    lock = FileLock(str(folder / "chunks" / f"c{chunk:06d}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return 0  # another builder is on it
    try:
        if out.exists():
            return 0
        node_settings = NodeSettings(**settings)
        nodes = np.load(folder / "nodes.npy", allow_pickle=False)
        size = node_settings.group_size
        part = nodes[chunk * size:(chunk + 1) * size]
        args = node_arguments(*part.T, dt=node_settings.dt)
        result = NodeBinary(node_settings).run(
            args, int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0]))
        _atomic_write(out, _npy_bytes(np.stack([result[k] for k in
                                                ("rate", "cv", "rel_se", "count")])))
        return len(part)
    finally:
        lock.release()


def build_table(grid: Grid | None = None, settings: NodeSettings | None = None, seed: int = 0,
                workers: int = 1, root: Path | None = None, progress=None) -> Path:
    """Build (or resume, or just return) the table for this key; returns its folder."""
    from concurrent.futures import ThreadPoolExecutor

    from .nodes import NodeBinary

    grid, settings = grid or Grid.full(), settings or NodeSettings()
    key = table_key(grid, settings, seed)
    folder = (root or cache_root()) / key_digest(key)
    if (folder / "table.json").is_file():
        return folder
    (folder / "chunks").mkdir(parents=True, exist_ok=True)
    unique, inverse = grid.unique_nodes()
    nodes = np.stack([unique[k] for k in AXES], axis=1)
    if not (folder / "nodes.npy").exists():
        _atomic_write(folder / "nodes.npy", _npy_bytes(nodes))
        _atomic_write(folder / "key.json", json.dumps(key, indent=1).encode())
    n_chunks = -(-len(nodes) // settings.group_size)
    todo = [c for c in range(n_chunks) if not (folder / "chunks" / f"c{c:06d}.npy").exists()]
    NodeBinary(settings)  # compile once, before the workers start
    if todo:
        if workers <= 1:
            for c in todo:
                _run_chunk(str(folder), asdict(settings), seed, c)
                if progress:
                    progress(1, n_chunks)
        else:
            # threads suffice: each chunk is a child process running the compiled binary
            with ThreadPoolExecutor(workers) as pool:
                futures = [pool.submit(_run_chunk, str(folder), asdict(settings), seed, c)
                           for c in todo]
                for f in futures:
                    f.result()
                    if progress:
                        progress(1, n_chunks)
    missing = [c for c in range(n_chunks) if not (folder / "chunks" / f"c{c:06d}.npy").exists()]
    if missing:
        raise UserError(f"table build incomplete: {len(missing)} chunks claimed by another "
                        "builder; run the build again when it finishes")
    raw = np.concatenate([np.load(folder / "chunks" / f"c{c:06d}.npy", allow_pickle=False)
                          for c in range(n_chunks)], axis=1)[:, inverse]
    arrays, summary = finish(grid, *raw)
    _write_table(folder, key, arrays, summary | {"unique_nodes": len(nodes),
                                                 "chunks": n_chunks})
    return folder


def tail_shape(grid: Grid) -> np.ndarray:
    """``analytic.log10_tail`` on every node (broadcast over δ and ℓ, which it ignores)."""
    m, r, rho, kappa = (np.asarray(grid.axis(k), float) for k in ("m", "r", "rho", "kappa"))
    tail = analytic.log10_tail(m[:, None, None, None], r[None, :, None, None],
                               rho[None, None, :, None], kappa[None, None, None, :])
    return np.broadcast_to(tail[:, :, None, None, :, :], grid.shape)


def fill_tail(grid: Grid, log_rate, count) -> tuple[np.ndarray, np.ndarray]:
    """(log10 rate with every node below its line's lowest well-measured one along m replaced
    by the tail shape anchored there, the mask of replaced nodes); lines with no well-measured
    node take the tail itself. Used when a table is built and again when it is loaded, so a
    stored table follows the current tail (``TAIL_VERSION``) without being re-simulated."""
    shape = grid.shape
    log_rate, count = np.asarray(log_rate, float).reshape(shape), np.asarray(count).reshape(shape)
    good = count >= MIN_COUNT
    # lowest index along m from which every node is well measured
    reliable_from = shape[0] - good[::-1].cumprod(0).sum(0)
    tail = tail_shape(grid)
    idx = np.minimum(reliable_from, shape[0] - 1)[None]
    anchor_value = np.take_along_axis(log_rate, idx, 0)
    anchor_tail = np.take_along_axis(tail, idx, 0)
    below = np.arange(shape[0]).reshape((-1,) + (1,) * 5) < reliable_from[None]
    no_anchor = (reliable_from >= shape[0])[None]
    filled = np.where(no_anchor, tail, anchor_value + tail - anchor_tail)
    below = np.broadcast_to(below, shape)
    return np.where(below, filled, log_rate), below


def finish(grid: Grid, rate, cv, rel_se, count) -> tuple[dict, dict]:
    """Raw node results (C order) → stored arrays: low-count nodes filled with the tail along
    m (:func:`fill_tail`), log10 rate made non-decreasing in m."""
    shape = grid.shape
    count = count.reshape(shape)
    log_rate = np.log10(np.maximum(rate.reshape(shape), 1e-30))
    cv = np.where(count >= MIN_COUNT, cv.reshape(shape), np.nan)
    flags = np.zeros(shape, np.uint8)
    good = count >= MIN_COUNT
    log_rate, below = fill_tail(grid, log_rate, count)
    flags[below] |= FLAG_TAIL
    cv = np.where(below, 1.0, cv)
    monotone = np.maximum.accumulate(log_rate, axis=0)
    changed = monotone > log_rate + 1e-9
    flags[changed] |= FLAG_MONOTONE
    arrays = {"log10_rate": monotone.astype(np.float32), "cv": cv.astype(np.float32),
              "rel_se": rel_se.reshape(shape).astype(np.float32),
              "count": count.astype(np.float32), "flags": flags}
    summary = {"nodes": int(np.prod(shape)), "tail_filled": int(np.count_nonzero(flags & FLAG_TAIL)),
               "monotone_fixed": int(np.count_nonzero(changed)),
               "median_rel_se_measured": float(np.median(rel_se.reshape(shape)[good]))
               if good.any() else None}
    return arrays, summary


def save_table(folder: Path, grid: Grid, rate, cv, rel_se, count, key: dict) -> Path:
    """Store node results (flattened in C order) as a table in ``folder`` (tests, baselines)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, summary = finish(grid, *(np.asarray(v, float) for v in (rate, cv, rel_se, count)))
    _write_table(folder, key | {"grid": grid.to_dict()}, arrays, summary)
    return folder


def _write_table(folder: Path, key: dict, arrays: dict, summary: dict) -> None:
    from ..provenance import package_versions

    files = {}
    for name, array in arrays.items():
        data = _npy_bytes(array)
        _atomic_write(folder / f"{name}.npy", data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "shape": list(array.shape),
                       "dtype": str(array.dtype)}
    meta = {"key": key, "key_sha256": key_digest(key), "arrays": files, "build": summary,
            "versions": package_versions()}
    _atomic_write(folder / "table.json", json.dumps(meta, indent=1).encode())  # written last


# ---- reading and lookup -------------------------------------------------------------------

def default_keys() -> list[tuple[str, Grid, NodeSettings]]:
    """The tables ``CheapModel`` looks for, best first: the design grid, then the reduced one."""
    return [("full", Grid.full(), NodeSettings()), ("reduced", Grid.reduced(), NodeSettings.reduced())]


def default_table(root: Path | None = None) -> "Table":
    """The best built table in the cache, or a UserError with the build command."""
    root = root or cache_root()
    for _, grid, settings in default_keys():
        folder = root / key_digest(table_key(grid, settings, 0))
        if (folder / "table.json").is_file():
            return Table(folder)
    keys = ", ".join(f"{name} {key_digest(table_key(g, s, 0))}" for name, g, s in default_keys())
    raise UserError(f"no cheap table in {root} (looked for {keys}); build one with "
                    f"`{BUILD_HINT} --grid reduced` (~6 CPU-min) or `{BUILD_HINT}` (~2 CPU-h)")


BUILD_HINT = "automind cheap build"
TAIL_M = -60.0  # the Siegert tail is tabulated down to here (ν τ ≈ 1e-300 below)


def interpolation_axes(coords) -> list:
    """(node coordinates, 1 / their spacing) per axis, float32: what :func:`multilinear` takes.
    Evenly spaced axes (m, ln r, ln ρ) carry a scalar spacing: their cell is found by
    arithmetic instead of a binary search."""
    out = []
    for c in coords:
        c = np.asarray(c, np.float64)
        steps = np.diff(c)
        even = len(c) > 1 and np.allclose(steps, steps[0], rtol=1e-6, atol=0)
        inverse = (1.0 / steps[0]) if even else (1.0 / steps if len(c) > 1 else c)
        out.append((c.astype(np.float32), np.float32(inverse) if even else
                    np.asarray(inverse, np.float32)))
    return out


def multilinear(axes: list, strides, points: list, *values: np.ndarray) -> np.ndarray:
    """Multilinear interpolation on a C-ordered grid (``axes`` from :func:`interpolation_axes`)
    of each flat array in ``values`` at
    ``points`` (one array per axis, in interpolation coordinates, within the axes) →
    (len(values), n), in the dtype of ``values`` (the tables use float32: half the memory
    traffic, twice the SIMD width; their own rounding is 1e-7, their noise 1e-3).

    One gather of the 2^d enclosing corners, laid out (2^d, n) so that each of the d linear
    blends works on two contiguous halves; axes with a single node are skipped. This is the
    model's inner loop, so it makes few numpy calls."""
    dtype = values[0].dtype
    n = np.size(points[0])
    base = np.zeros(n, np.int64)
    offsets = np.zeros(1, np.int64)
    fractions = []
    for a, ((coord, inverse_step), v) in enumerate(zip(axes, points)):
        if len(coord) < 2:
            continue
        v = np.ravel(v).astype(dtype, copy=False)
        if np.ndim(inverse_step) == 0:  # evenly spaced
            u = (v - coord[0]) * inverse_step
            i = u.astype(np.int64)  # u ≥ 0: truncation is the floor
            np.minimum(i, len(coord) - 2, out=i)
            fractions.append(u - i)
        else:
            i = np.searchsorted(coord, v, side="right") - 1
            np.minimum(i, len(coord) - 2, out=i)  # v ≥ coord[0], so only the top needs care
            fractions.append((v - coord[i]) * inverse_step[i])
        # v within the axis, so each fraction is in [0, 1] (up to rounding) without clipping
        base += i * strides[a]
        offsets = np.concatenate([offsets, offsets + strides[a]])  # this axis: the highest bit
    index = offsets[:, None] + base
    out = []
    for table in values:
        corners = table[index]
        for t in reversed(fractions):
            half = len(corners) // 2
            low = corners[:half]
            corners = low + t * (corners[half:] - low)
        out.append(corners[0])
    return np.stack(out) if len(out) > 1 else out[0][None]


class Table:
    """A verified table; :meth:`lookup` gives log10(ν τ_eff), ISI CV and an extrapolation flag."""

    def __init__(self, folder: Path):
        folder = Path(folder)
        meta_path = folder / "table.json"
        if not meta_path.is_file():
            raise UserError(f"no cheap table at {folder}; build it with `{BUILD_HINT}`")
        meta = json.loads(meta_path.read_text())
        if key_digest(meta["key"]) != folder.name and meta["key_sha256"] != key_digest(meta["key"]):
            raise UserError(f"cheap table {folder}: its key does not match its hash "
                            f"{meta['key_sha256']}; rebuild with `{BUILD_HINT}`")
        self.folder, self.meta = folder, meta
        self.grid = Grid.from_dict(meta["key"]["grid"])
        self.arrays = {}
        for name, info in meta["arrays"].items():
            data = (folder / f"{name}.npy").read_bytes()
            if hashlib.sha256(data).hexdigest() != info["sha256"]:
                raise UserError(f"cheap table {folder} (key {meta['key_sha256']}): {name}.npy "
                                f"fails its sha256 check; rebuild with `{BUILD_HINT}`")
            self.arrays[name] = np.load(io.BytesIO(data), allow_pickle=False)
        # the tail as this version draws it (tables built before TAIL_VERSION 2 stored another)
        filled, _ = fill_tail(self.grid, self.arrays["log10_rate"], self.arrays["count"])
        self.log10_rate = np.maximum.accumulate(filled, axis=0)
        # Interpolate the free ISI T = 1/ν − ρ, not ν: T hardly depends on ρ (for the white-noise
        # LIF not at all), while log ν bends where ρ ≈ T (6 % errors between ρ nodes).
        rho = self.grid.nodes()["rho"]
        inv = 10.0 ** -self.log10_rate.ravel()
        log_free_isi = np.log10(np.maximum(inv - rho, FREE_ISI_FLOOR * inv))
        cv = np.nan_to_num(self.arrays["cv"].astype(np.float64), nan=1.0).ravel()
        self._values = (log_free_isi.astype(np.float32), cv.astype(np.float32))
        self._lows = np.array([self.grid.axis(k)[0] for k in AXES])
        self._highs = np.array([self.grid.axis(k)[-1] for k in AXES])
        self._axes = interpolation_axes(COORDINATES[k](self.grid.axis(k)) for k in AXES)
        self._strides = np.array([int(np.prod(self.grid.shape[i + 1:])) for i in range(6)])
        self._tail = self._tail_table()

    @classmethod
    def find(cls, grid: Grid | None = None, settings: NodeSettings | None = None, seed: int = 0,
             root: Path | None = None) -> "Table":
        """The table for this key, or a UserError naming the key and the build command."""
        key = table_key(grid or Grid.full(), settings or NodeSettings(), seed)
        folder = (root or cache_root()) / key_digest(key)
        if not (folder / "table.json").is_file():
            raise UserError(f"no cheap table with key {key_digest(key)} in {folder.parent}; "
                            f"build it with `{BUILD_HINT}`")
        return cls(folder)

    @property
    def key(self) -> str:
        """The stored table's hash and the tail version it is read with."""
        return f"{self.meta['key_sha256']}.tail{TAIL_VERSION}"

    def _tail_table(self) -> tuple[list, np.ndarray, np.ndarray]:
        """log10 tail(m) − log10 tail(m_lo) (``analytic.log10_tail``) on m ∈ [TAIL_M, m_lo] ×
        the table's r, ρ, κ nodes, computed once: the tail costs a lookup, not quadratures."""
        g = self.grid
        m = np.arange(TAIL_M, g.m[0] + 1e-9, 0.5)
        # broadcast axes, not a meshgrid: the quasi-static part is evaluated without the κ axis
        r, rho, kappa = (np.asarray(g.axis(k), float) for k in ("r", "rho", "kappa"))
        r, rho, kappa = r[None, :, None, None], rho[None, None, :, None], kappa[None, None, None]
        values = analytic.log10_tail(m[:, None, None, None], r, rho, kappa) - \
            analytic.log10_tail(np.full((1, 1, 1, 1), g.m[0]), r, rho, kappa)
        coords = interpolation_axes((m, np.log(g.axis("r")), np.log(g.axis("rho")),
                                     COORDINATES["kappa"](g.axis("kappa"))))
        strides = np.array([int(np.prod(values.shape[i + 1:])) for i in range(4)])
        return coords, strides, values.ravel().astype(np.float32)

    def lookup(self, inputs, cv: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(log10 ν τ_eff, ISI CV, extrapolated) for a :class:`moments.Inputs`; ``cv=False``
        skips the CV (None): the solver's inner loop needs only rates."""
        want_cv = cv
        raw = np.broadcast_arrays(*(np.asarray(getattr(inputs, k), float) for k in AXES),
                                  np.asarray(inputs.deterministic, bool))
        shape = raw[0].shape
        det = raw[-1].ravel()
        raw = np.stack([v.ravel() for v in raw[:-1]])  # (6, n)
        clamped = np.clip(raw, self._lows[:, None], self._highs[:, None])
        extrapolated = det | np.any(np.abs(clamped - raw) > 1e-12 * (1 + np.abs(raw)), axis=0)
        points = [COORDINATES[k](clamped[a]) for a, k in enumerate(AXES)]
        free_isi, *cv = multilinear(self._axes, self._strides, points,
                                    *self._values[:1 + want_cv])
        free_isi = free_isi.astype(np.float64)
        cv = cv[0].astype(np.float64) if want_cv else None
        m, r, delta, ell, rho, kappa = raw
        log_rate = -np.log10(rho + 10.0 ** free_isi)
        low = (m < self._lows[0]) & ~det
        if low.any():
            axes, strides, values = self._tail
            at = [np.clip(m[low], TAIL_M, self._lows[0]), np.log(r[low]), np.log(rho[low]),
                  COORDINATES["kappa"](kappa[low])]
            at = [np.clip(v, c[0], c[-1]) for v, (c, _) in zip(at, axes)]
            log_rate[low] += multilinear(axes, strides, at, values)[0].astype(np.float64)
            if want_cv:
                cv[low] = 1.0
        high = (m > self._highs[0]) & ~det
        if high.any():
            args = (r[high], delta[high], ell[high], rho[high])
            with np.errstate(divide="ignore"):
                log_rate[high] += np.log10(analytic.deterministic_rate(m[high], *args)) - \
                    np.log10(analytic.deterministic_rate(np.full(high.sum(), self._highs[0]), *args))
        if det.any():
            with np.errstate(divide="ignore"):
                log_rate[det] = np.log10(analytic.deterministic_rate(
                    m[det], r[det], delta[det], ell[det], rho[det]))
            if want_cv:
                cv[det] = 0.0
        if want_cv:
            cv = np.clip(cv, 0.0, None).reshape(shape)
        return log_rate.reshape(shape), cv, extrapolated.reshape(shape)
