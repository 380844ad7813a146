"""Damaged-input fuzzing of every file format automind reads (shared by tests/test_fuzz.py
and benchmarks/fuzz.py).

``FORMATS`` maps a format to a generator of a real, valid input (a file or a folder) and
the reader a user's command would run on it. Adding a format is one line in that table.

Each case copies the valid input, damages one of its files (a truncation, or 1-8 random
byte flips), snapshots the folder, and reads it in a worker process under a time limit.
Outcomes: ``read`` (same result as the intact input), ``read_changed`` (a different but
valid result: possible where the damaged bytes are not checksummed, e.g. a digit of a CSV),
``reported`` (a bank read that lists what it found damaged and ignored),
``refused`` (one-line ``UserError``), and the failures ``crash:<type>`` (any other
exception), ``multiline`` (a UserError message over one line), ``hang`` (over the time
limit; the worker is killed) and ``wrote`` (the input folder changed while being read).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import tempfile
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

FAILURES = ("crash", "multiline", "hang", "wrote")


# ---- valid inputs ----------------------------------------------------------------------------

def _spikes(rng, n_units=6, duration=2.0, fs=10000.0):
    counts = rng.poisson(15, n_units)
    ids = np.repeat(np.arange(n_units), counts)
    samples = np.sort(rng.integers(0, int(duration * fs), counts.sum()))
    return samples / fs, ids, duration, samples, fs


def make_npz(folder: Path, rng) -> Path:
    times, ids, duration, _, _ = _spikes(rng)
    np.savez(folder / "r.npz", spike_times=times, unit_ids=ids, duration=duration)
    return folder / "r.npz"


def make_automind_npz(folder: Path, rng) -> Path:
    _, ids, duration, samples, fs = _spikes(rng)
    trains = np.empty(ids.max() + 1, dtype=object)
    for unit in range(len(trains)):
        trains[unit] = samples[ids == unit].astype(np.int64)
    np.savez(folder / "a.npz", spikes=trains, fs=fs, t_end=duration)
    return folder / "a.npz"


def make_mea_npz(folder: Path, rng) -> Path:
    _, ids, duration, samples, fs = _spikes(rng)
    np.savez_compressed(folder / "m.npz", electrodes=ids + 10, samples=samples, fs=fs,
                        n_samples=int(duration * fs))
    return folder / "m.npz"


def make_csv(folder: Path, rng) -> Path:
    times, ids, _, _, _ = _spikes(rng)
    path = folder / "r.csv"
    path.write_text("unit,time\n" + "".join(f"{u},{float(t)!r}\n" for u, t in zip(ids, times)))
    return path


def make_mea_csv(folder: Path, rng) -> Path:
    _, ids, _, samples, _ = _spikes(rng)
    path = folder / "m.csv"
    path.write_text("electrode,sample\n" + "".join(f"{e},{s}\n" for e, s in zip(ids, samples)))
    return path


def make_nwb(folder: Path, rng) -> Path:
    from automind.features import SpikeData
    from automind.recordings.write import write_nwb

    times, ids, duration, _, _ = _spikes(rng)
    data = SpikeData(times, ids, duration, groups={"VISp": np.arange(3), "CA1": np.arange(3, 6)})
    return write_nwb(data, folder / "r.nwb")


def make_mea_hdf5(folder: Path, rng) -> Path:
    """The MEA spike-list HDF5 layout (spikes, sCount, names, epos, recordingtime, meta/*)."""
    import h5py

    times, ids, duration, _, _ = _spikes(rng)
    counts = np.bincount(ids, minlength=6)
    path = folder / "culture.h5"
    with h5py.File(path, "w") as handle:
        handle["spikes"] = np.concatenate([np.sort(times[ids == u]) for u in range(6)])
        handle["sCount"] = counts.astype(np.int32)
        handle["names"] = np.array([f"ch_{u}".encode() for u in range(6)])
        handle["epos"] = rng.uniform(0, 1400, (2, 6))
        handle["recordingtime"] = np.array([0.0, duration])
        handle["meta/age"] = np.array([14], np.int32)
    return path


def make_neo_mat(folder: Path, rng) -> Path:
    """A Neo file (NeoMatlabIO, read through the optional ``neo`` package)."""
    import neo
    import quantities as pq

    times, ids, duration, _, _ = _spikes(rng)
    block, segment = neo.Block(), neo.Segment()
    block.segments.append(segment)
    for unit in range(6):
        segment.spiketrains.append(neo.SpikeTrain(np.sort(times[ids == unit]) * pq.s,
                                                  t_stop=duration * pq.s, name=f"u{unit}"))
    path = folder / "session.mat"
    neo.io.NeoMatlabIO(str(path)).write_block(block)
    return path


def make_prior_toml(folder: Path, rng) -> Path:
    from automind.specs import find_spec

    path = folder / "prior.toml"
    shutil.copy(find_spec("priors", "brunel"), path)
    return path


def make_simulator_toml(folder: Path, rng) -> Path:
    from automind.specs import find_spec

    path = folder / "simulator.toml"
    shutil.copy(find_spec("simulators", "brunel"), path)
    return path


def make_bank(folder: Path, rng) -> Path:
    """A real bank written by the store's own commit path: 3 shards with spikes and a
    feature set (no simulation needed: the format is what is being fuzzed)."""
    import pyarrow as pa

    from automind.bank.store import commit_shard
    from automind.io import write_json
    from automind.prior import Prior

    path = folder / "bank"
    for sub in ("shards", "spikes", "manifest", "features", "claims", "quarantine"):
        (path / sub).mkdir(parents=True)
    prior = Prior.load("brunel")
    write_json(path / "bank.json", {
        "format": "automind-bank", "version": 1, "seed": 0, "created": "2026-01-01",
        "chunk_size": 4, "keep_spikes": True, "prior": prior.to_dict(),
        "simulator": {"name": "brunel", "dt": 1e-4}, "versions": {},
        "feature_sets": {"toy": {"version": "1", "names": ["a", "b", "c"]}}})
    theta = prior.sample_indexed(0, range(12))
    for chunk in range(3):
        idx = np.arange(4 * chunk, 4 * chunk + 4)
        floats = {name: pa.array(rng.uniform(0, 5, 4)) for name in
                  ("t_end", "wall_time", "run_time", "rate_E", "rate_I")}
        table = pa.table({"index": pa.array(idx), "seed": pa.array(idx),
                          "status": pa.array(["ok", "silent", "ok", "ok"]), **floats,
                          "message": pa.array([""] * 4),
                          "theta": pa.FixedSizeListArray.from_arrays(pa.array(theta[idx].ravel()), 2)})
        spikes = {}
        for i in idx:
            n = int(rng.integers(1, 30))
            spikes[f"{i}/E/steps"] = np.sort(rng.integers(0, 5000, n)).astype(np.uint32)
            spikes[f"{i}/E/ids"] = rng.integers(0, 40, n).astype(np.uint16)
            spikes[f"{i}/E/n_units"] = np.int64(40)
            spikes[f"{i}/t_end"] = np.float64(0.5)
        commit_shard(path, chunk, table, spikes, {"toy": ("1", rng.normal(size=(4, 3)))})
    return path


def make_posterior(folder: Path, rng) -> Path:
    from automind.inference import train
    from automind.prior import Prior

    prior = Prior.load("brunel")
    theta = prior.sample_indexed(0, range(200))
    x = theta + 0.05 * rng.normal(size=theta.shape)
    posterior = train(theta, x, prior, hidden_features=8, num_transforms=1, max_epochs=2,
                      restriction=False, progress=False, seed=0)
    return posterior.save(folder / "posterior")


# ---- readers: what a command does with the input; returns a digest of the result ---------

def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return h.hexdigest()


def read_recording_file(path: Path, fs: float | None = None) -> str:
    """``automind features FILE``: read the recording and compute its spike features."""
    from automind.features import compute_features
    from automind.recordings import read_recording

    data = read_recording(path, fs=fs, duration=2.0 if fs else None)
    values = compute_features(data, "spikes")
    return _digest(data.times, data.unit_ids, [data.duration], list(values.values()))


def read_prior(path: Path) -> str:
    from automind.prior import Prior

    prior = Prior.load(str(path))
    return _digest(prior.sample_indexed(0, range(5)))


def read_simulator(path: Path) -> str:
    from automind.simulators import SimulatorSpec

    spec = SimulatorSpec.load(str(path))
    return hashlib.sha256(repr(sorted(spec.to_dict().items())).encode()).hexdigest()


def read_bank(path: Path) -> str:
    """``automind bank info`` plus reading θ, features and one shard's spikes."""
    from automind.bank import Bank

    bank = Bank(path)
    info = bank.info()
    data = bank.arrays(features="toy")
    spikes = [bank.shard_spikes(r) for r in bank.records[:1]]
    flat = [s["spikes"]["E"][0] for shard in spikes for s in shard.values()]
    digest = _digest(data["index"], data["theta"], data["x"], *flat, [info["total"]])
    return f"reported: {digest}" if info["problems"] else digest


def read_posterior(path: Path) -> str:
    from automind.inference import load_posterior

    posterior = load_posterior(path)
    return _digest(posterior.sample(20, [0.5, 2.0], seed=1))


@dataclass(frozen=True)
class Format:
    make: Callable[[Path, np.random.Generator], Path]
    read: Callable[[Path], str]


def _mea_csv(path):
    return read_recording_file(path, fs=10000.0)


#: format -> (valid input, reader). One line per format.
FORMATS: dict[str, Format] = {
    "npz": Format(make_npz, read_recording_file),
    "automind_npz": Format(make_automind_npz, read_recording_file),
    "mea_npz": Format(make_mea_npz, read_recording_file),
    "csv": Format(make_csv, read_recording_file),
    "mea_csv": Format(make_mea_csv, _mea_csv),
    "nwb": Format(make_nwb, read_recording_file),
    "mea_hdf5": Format(make_mea_hdf5, read_recording_file),
    "neo_mat": Format(make_neo_mat, read_recording_file),
    "prior_toml": Format(make_prior_toml, read_prior),
    "simulator_toml": Format(make_simulator_toml, read_simulator),
    "bank": Format(make_bank, read_bank),
    "posterior": Format(make_posterior, read_posterior),
}


# ---- readers that must fail the fuzz, so a test can show the harness catches each failure

def _naive_npz(path: Path) -> str:
    """What automind did before: np.load and index, no error handling."""
    data = np.load(path)
    return _digest(data["spike_times"], data["unit_ids"], [float(data["duration"])])


def _sleepy(path: Path) -> str:
    import time

    if path.read_bytes() != (path.parent.parent / "valid" / path.name).read_bytes():
        time.sleep(600)
    return "same"


def _scribbler(path: Path) -> str:
    (path.parent / "note.txt").write_text("read")
    return "same"


SELF_TEST_FORMATS: dict[str, Format] = {
    "naive_npz": Format(make_npz, _naive_npz),
    "sleepy": Format(make_npz, _sleepy),
    "scribbler": Format(make_npz, _scribbler),
}


# ---- damage, run, classify ----------------------------------------------------------------

def _files(root: Path) -> list[Path]:
    return [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in _files(root)}


def damage(root: Path, rng) -> str:
    """Damage one file under ``root`` in place; returns what was done."""
    target = _files(root)[rng.integers(len(_files(root)))]
    data = bytearray(target.read_bytes())
    name = target.name if root.is_file() else str(target.relative_to(root))
    if rng.random() < 0.4 or len(data) == 0:
        cut = int(rng.integers(0, max(len(data), 1)))
        target.write_bytes(bytes(data[:cut]))
        return f"{name}: truncated to {cut} of {len(data)} bytes"
    spots = rng.integers(0, len(data), int(rng.integers(1, 9)))
    for spot in spots:
        data[spot] ^= int(rng.integers(1, 256))
    target.write_bytes(bytes(data))
    return f"{name}: {len(spots)} bytes flipped"


def _classify(fmt: str, path: str):
    from automind.errors import UserError

    try:
        return "ok", (FORMATS.get(fmt) or SELF_TEST_FORMATS[fmt]).read(Path(path))
    except UserError as err:
        return ("refused" if len(str(err).strip().splitlines()) == 1 else "multiline"), str(err)
    except Exception as err:  # noqa: BLE001 -- any other type is the failure we look for
        return f"crash:{type(err).__name__}", traceback.format_exc(limit=-3)


def _worker(connection) -> None:
    import warnings

    warnings.simplefilter("ignore")
    while (job := connection.recv()) is not None:
        connection.send(_classify(*job))
    connection.close()
    os._exit(0)  # skip interpreter teardown (seconds with torch and HDF5 loaded)


class Runner:
    """A worker process that reads cases; killed and replaced when a case exceeds the limit."""

    def __init__(self, time_limit: float):
        self.time_limit = time_limit
        self.context = multiprocessing.get_context("spawn")  # no fork after torch/HDF5 threads
        self._start()

    def _start(self):
        self.connection, child = self.context.Pipe()
        self.process = self.context.Process(target=_worker, args=(child,), daemon=True)
        self.process.start()

    def read(self, fmt: str, path: Path, first: bool = False):
        try:
            self.connection.send((fmt, str(path)))
            # the first read of a format in a fresh worker pays its imports (torch, pynwb)
            if self.connection.poll(self.time_limit * (10 if first else 1)):
                return self.connection.recv()
            outcome = "hang", f"no result after {self.time_limit:g} s"
        except (EOFError, BrokenPipeError):  # the worker process died under the reader
            self.process.join(5)
            outcome = "crash:died", f"worker exit code {self.process.exitcode} on {path}"
        self.process.kill()
        self.process.join()
        self._start()
        return outcome

    def close(self):
        self.connection.send(None)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


def fuzz(formats: list[str], cases: int, seed: int = 0, time_limit: float = 10.0,
         workdir: Path | None = None, runner: Runner | None = None) -> dict:
    """Fuzz each format with ``cases`` damaged inputs; returns per-format outcome counts and
    up to 5 examples of each failure kind."""
    own = runner is None
    runner = runner or Runner(time_limit)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="automind-fuzz-"))
    report = {}
    try:
        for fmt in formats:
            rng = np.random.default_rng([seed, sum(map(ord, fmt))])
            base = workdir / fmt / "valid"
            base.mkdir(parents=True)
            valid = (FORMATS.get(fmt) or SELF_TEST_FORMATS[fmt]).make(base, rng)
            outcome, expected = runner.read(fmt, valid, first=True)
            if outcome != "ok":
                raise RuntimeError(f"the valid {fmt} input does not read: {outcome} {expected}")
            counts, examples = {}, {}
            for case in range(cases):
                folder = workdir / fmt / f"case{case}"
                folder.mkdir()
                target = folder / valid.name
                (shutil.copytree if valid.is_dir() else shutil.copy2)(valid, target)
                what = damage(target, rng)
                before = _snapshot(folder)
                outcome, detail = runner.read(fmt, target)
                if outcome == "ok":
                    outcome = ("read" if detail == expected else "reported"
                               if detail.startswith("reported:") else "read_changed")
                if outcome != "hang" and _snapshot(folder) != before:
                    outcome = "wrote"
                counts[outcome] = counts.get(outcome, 0) + 1
                if outcome.split(":")[0] in FAILURES and len(examples.setdefault(outcome, [])) < 5:
                    examples[outcome].append(f"{what}: {detail}")
                shutil.rmtree(folder)
            report[fmt] = {"cases": cases, "outcomes": counts, "failures": examples}
    finally:
        if own:
            runner.close()
    return report


def failures(report: dict) -> dict:
    return {fmt: r["failures"] for fmt, r in report.items() if r["failures"]}


def stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
