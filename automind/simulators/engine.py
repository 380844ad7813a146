"""Compile once, run many: a cache of compiled Brian2 binaries keyed by model structure.

A structure is what code generation depends on: the model, N, dt, the compiled horizon
(max duration), compile-time fixed settings and the versions of automind's build code
and Brian2. Everything else, θ and the seed included, is passed at run time, so one
compilation serves every θ of the prior.

Compiled projects live in ``$AUTOMIND_CACHE`` (default ``~/.cache/automind``)/compiled.
A project is built in a private temporary folder under a file lock and renamed into
place, so parallel processes and later runs share it without colliding.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from ..errors import UserError
from ..io import file_sha256, write_json
from . import build as _build  # its source is part of the structure key

#: bumped when the layout of a cache entry changes (2: entries carry checksums), so older
#: entries are never used
CACHE_FORMAT = 2
#: what a run reads from its entry: the binary, our two descriptions, Brian2's static arrays
CHECKSUMS = "automind_checksums.json"


def _run_files(directory: Path) -> list[Path]:
    files = [p for p in (directory / "main", directory / "automind_run_args.json",
                         directory / "automind_structure.json") if p.is_file()]
    static = directory / "static_arrays"
    return files + (sorted(p for p in static.rglob("*") if p.is_file()) if static.is_dir() else [])


def write_checksums(directory: Path) -> None:
    """Record the sha256 of every file a run reads (done once, right after building)."""
    write_json(directory / CHECKSUMS,
               {str(p.relative_to(directory)): file_sha256(p)[0] for p in _run_files(directory)})


def verify_entry(directory: Path) -> None:
    """Refuse a cache entry whose run files differ from what was built (damaged, tampered,
    or replaced), or that anyone may overwrite: we are about to execute its binary."""
    def refuse(why: str):
        raise UserError(f"compiled-model cache entry {directory} {why}; delete that folder and "
                        "automind rebuilds it")

    try:
        sums = json.loads((directory / CHECKSUMS).read_text())
    except (OSError, ValueError):
        refuse("has no readable checksum record")
    expected = {str(p.relative_to(directory)) for p in _run_files(directory)}
    if not isinstance(sums, dict) or set(sums) != expected:
        refuse("holds other files than its checksum record lists")
    for name, digest in sums.items():
        path = directory / name
        if not path.is_file():
            refuse(f"misses {name}")
        if path.is_symlink() or path.stat().st_mode & 0o002:
            refuse(f"has {name} as a symlink or world-writable file")
        if file_sha256(path)[0] != digest:
            refuse(f"was altered after it was built ({name} differs from its checksum)")
    if directory.stat().st_mode & 0o002:
        refuse("is world-writable")


def cache_root() -> Path:
    return Path(os.environ.get("AUTOMIND_CACHE", Path.home() / ".cache" / "automind"))


def scratch_root() -> Path:
    """Where per-run argument and result files go: RAM-backed when available."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def structure_key(spec, explicit_graph: bool = False) -> dict:
    """What the binary depends on; ``explicit_graph``: the variant that reads its graph and
    weights at run time (``build.GRAPH_CPP``) instead of drawing them."""
    from importlib.metadata import version

    from . import MODELS

    model = MODELS[spec.model]
    # Hash the code that generates the binary, so editing a builder never reuses a stale one.
    sources = hashlib.sha256()
    for module in (model, _build):
        sources.update(Path(module.__file__).read_bytes())
    key = {"cache_format": CACHE_FORMAT, "model": spec.model, "N": spec.N, "dt": spec.dt,
           "max_duration": spec.max_duration,
           "fixed": {k: spec.fixed[k] for k in model.compile_time_fixed},
           "record_state": list(spec.record_state), "state_units": spec.state_units,
           "builder_sha256": sources.hexdigest(), "brian2": version("Brian2")}
    return key | {"explicit_graph": True} if explicit_graph else key


class RunFailed(RuntimeError):
    """The binary exited with an error (status "failed")."""


class RunTimedOut(RuntimeError):
    """The binary exceeded its wall-clock limit (status "timeout")."""


@dataclass
class RawRun:
    spike_ids: np.ndarray   # int32
    spike_times: np.ndarray  # float64, seconds
    steps: int              # time steps actually simulated
    binary_seconds: float   # wall time of the compiled run itself
    state: dict             # variable -> (steps, units) float64 array, SI units
    connectivity: dict      # synapses name -> (pre, post) int32 arrays, when requested


class NotCompiled:
    """Stand-in for models run in Python (e.g. torch): no binary, no directory."""

    directory = ""


class CompiledModel:
    """A compiled binary for one structure; ``run`` executes it for one set of run arguments."""

    def __init__(self, directory: Path, compile_seconds: float = 0.0):
        self.directory = Path(directory)
        self.compile_seconds = compile_seconds
        verify_entry(self.directory)
        self.run_arg_specs = json.loads((self.directory / "automind_run_args.json").read_text())
        self.binary = self.directory / "main"
        structure = json.loads((self.directory / "automind_structure.json").read_text())
        self.state_variables = structure["record_state"]
        self.state_units = structure["state_units"]
        self.synapses = structure["synapses"]
        self.explicit_graph = bool(structure.get("explicit_graph"))

    @classmethod
    def for_spec(cls, spec, explicit_graph: bool = False) -> "CompiledModel":
        """Load the compiled project for this structure, compiling it first if needed; models
        that are not Brian2 (``backend`` other than "brian2") and specs run by the torch
        backend get a stand-in with no binary. ``explicit_graph``: the variant run on a given
        graph (models with ``graph_matrix``)."""
        from . import MODELS

        model = MODELS[spec.model]
        if explicit_graph and not hasattr(model, "graph_matrix"):
            raise UserError(f"the {spec.model} simulator cannot run on an explicit graph")
        if getattr(model, "backend", "brian2") != "brian2" or (
                getattr(spec, "backend", "brian2") == "torch" and not explicit_graph):
            return NotCompiled()
        key = structure_key(spec, explicit_graph)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        root = cache_root() / "compiled"
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"{spec.model}-{digest}"
        if (final / "automind_run_args.json").is_file():
            return cls(final)
        with FileLock(str(final) + ".lock"):
            if (final / "automind_run_args.json").is_file():  # another process built it
                return cls(final)
            start = time.perf_counter()
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
            try:
                _compile(spec, key, tmp)
                write_checksums(tmp)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            return cls(final, compile_seconds=time.perf_counter() - start)

    def _encode(self, values: dict, folder: Path) -> list[str]:
        """Command-line arguments for the binary; arrays go to files in ``folder``."""
        unknown = set(values) - set(self.run_arg_specs)
        missing = set(self.run_arg_specs) - set(values)
        if unknown or missing:
            raise RuntimeError(f"run arguments do not match the compiled model: "
                               f"unknown {sorted(unknown)}, missing {sorted(missing)}")
        argv = []
        for name, value in values.items():
            dtype, size = self.run_arg_specs[name]
            arr = np.asarray(value, dtype=dtype)
            if arr.ndim == 0:
                argv.append(f"{name}={arr.item()!r}")
                continue
            if arr.shape != (size,):
                raise RuntimeError(f"run argument {name}: expected {size} values, got {arr.shape}")
            path = folder / f"{name}.bin"
            arr.tofile(path)
            argv.append(f"{name}={path}")
        return argv

    def run(self, values: dict, seed: int, timeout: float, connectivity: bool = False,
            graph: np.ndarray | None = None) -> RawRun:
        """``graph``: the (N, N) weights W[pre, post] (siemens) an explicit-graph binary runs on."""
        if (graph is not None) != self.explicit_graph:
            raise RuntimeError("an explicit-graph binary needs a graph, and only it takes one")
        folder = Path(tempfile.mkdtemp(prefix="automind-run-", dir=scratch_root()))
        try:
            if graph is not None:
                np.ascontiguousarray(graph, dtype=np.float64).tofile(folder / _build.GRAPH_FILE)
            argv = [str(self.binary), "--results_dir", f"{folder}/"] + self._encode(values, folder)
            env = dict(os.environ, AUTOMIND_SEED=str(int(seed) % 2**32))
            env.pop("AUTOMIND_WRITE_CONNECTIVITY", None)
            if connectivity:
                env["AUTOMIND_WRITE_CONNECTIVITY"] = "1"
            start = time.perf_counter()
            try:
                proc = subprocess.run(argv, cwd=self.directory, env=env, capture_output=True,
                                      text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RunTimedOut(f"simulation exceeded the {timeout:g} s wall-clock limit") from None
            elapsed = time.perf_counter() - start
            problems = [line for line in proc.stderr.splitlines() if line.strip()]
            if proc.returncode != 0 or problems:
                detail = "; ".join(problems[-3:]) or f"exit status {proc.returncode}"
                raise RunFailed(f"compiled simulation failed: {detail}")
            state = {}
            for var in self.state_variables:
                values = np.fromfile(folder / f"state_{var}.bin", dtype=np.float64)
                state[var] = values.reshape(-1, self.state_units) if self.state_units else values
            return RawRun(np.fromfile(folder / "spikes_i.bin", dtype=np.int32),
                          np.fromfile(folder / "spikes_t.bin", dtype=np.float64),
                          int((folder / "steps.txt").read_text().split()[0]), elapsed, state,
                          {name: (np.fromfile(folder / f"{name}_pre.bin", dtype=np.int32),
                                  np.fromfile(folder / f"{name}_post.bin", dtype=np.int32))
                           for name in (self.synapses if connectivity else ())})
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _compile(spec, structure: dict, out_dir: Path) -> None:
    """Build in a fresh Python process (Brian2's device state is global)."""
    spec_file = out_dir / "automind_build_request.json"
    spec_file.write_text(json.dumps({"spec": spec.to_dict(), "structure": structure}))
    log = out_dir / "build.log"
    with open(log, "w") as handle:
        code = subprocess.call([sys.executable, "-m", "automind.simulators.build", str(spec_file),
                                str(out_dir)], stdout=handle, stderr=subprocess.STDOUT)
    if code != 0:
        tail = log.read_text()[-3000:]
        raise UserError(f"compiling the {spec.model} simulator failed (exit {code}); "
                        f"last lines of the build log:\n{tail}")
