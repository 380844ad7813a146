"""The bank format: a directory of immutable shards, a manifest of committed shards, metadata.

    BANK/bank.json                      metadata (prior, simulator, seed, versions, chunk size)
    BANK/shards/cNNNNNNNN-XXXXXXXX.parquet   one chunk of simulations: index, seed, status,
                                             θ, times, rates, message
    BANK/spikes/cNNNNNNNN-XXXXXXXX.npz       optional spike trains of that chunk
    BANK/manifest/cNNNNNNNN-XXXXXXXX.json    commit record: file names, sha256, sizes, indices
    BANK/features/SET/cNNNNNNNN-XXXXXXXX.arrow    feature set SET of that shard: index, x
                                                  (Arrow IPC: read without decoding)
    BANK/features/SET/cNNNNNNNN-XXXXXXXX.json     its commit record (written after the file)
    BANK/claims/cNNNNNNNN.lock               lock files of chunks being simulated (writers only)
    BANK/quarantine/                         orphaned or corrupt files moved aside on resume

Every file is written under a temporary name (``.tmp-*``) and renamed into place; a shard
exists for readers only once its manifest record exists (the record is written last).
A crash at any moment leaves either a complete, committed shard or files that readers
never see and writers detect and move aside. Several writers may extend one bank at once:
each takes a per-chunk lock (released by the OS if the writer dies).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from ..io import atomic_write_bytes, sha256, write_json, write_npz_streamed

FORMAT = "automind-bank"
FORMAT_VERSION = 1
SHARD_RE = re.compile(r"^c(\d{8})-([0-9a-f]{8})$")
FIXED_COLUMNS = ("index", "seed", "status", "t_end", "wall_time", "run_time", "rate_E", "rate_I",
                 "message")


class BankError(UserError):
    """A bank that cannot be used as asked (corrupt shard, mismatched setup, ...)."""


@dataclass
class ShardRecord:
    """A manifest record: one committed shard."""

    name: str
    chunk: int
    indices: list[int]
    shard_sha256: str
    shard_bytes: int
    spikes_sha256: str | None = None
    spikes_bytes: int = 0
    features: dict = field(default_factory=dict)  # set name -> {"file", "sha256", "bytes"}

    @classmethod
    def from_json(cls, data: dict) -> "ShardRecord":
        """A record from its JSON; TypeError names what is malformed (a damaged or hostile
        record must not steer reads outside the bank or into huge allocations)."""
        record = cls(**data) if isinstance(data, dict) else None
        if record is None:
            raise TypeError("a manifest record must be a JSON object")
        if not isinstance(record.name, str) or not SHARD_RE.match(record.name):
            raise TypeError(f"shard name {str(record.name)[:80]!r} is not cNNNNNNNN-XXXXXXXX")
        ints = [record.chunk, record.shard_bytes, record.spikes_bytes]
        if (not all(type(v) is int and v >= 0 for v in ints)
                or not isinstance(record.indices, list)
                or not all(type(i) is int and i >= 0 for i in record.indices)
                or not _is_digest(record.shard_sha256)
                or not (record.spikes_sha256 is None or _is_digest(record.spikes_sha256))
                or not isinstance(record.features, dict)):
            raise TypeError("fields of the wrong type")
        return record


def _is_digest(value) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def check_feature_record(record, shard: str) -> dict:
    """A feature shard's commit record, checked like ``ShardRecord.from_json``."""
    if (not isinstance(record, dict) or record.get("shard") != shard
            or not _is_digest(record.get("sha256"))
            or type(record.get("bytes")) is not int or record["bytes"] < 0):
        raise TypeError("fields missing or of the wrong type")
    return record


def inside(root: Path, path: Path, what: str) -> Path:
    """``path``, refused if it (through a symlink) lies outside the folder ``root``."""
    if not Path(path).resolve().is_relative_to(Path(root).resolve()):
        raise BankError(f"{what} {path} points outside the bank (symlink to "
                        f"{Path(path).resolve()}); refusing to read it")
    return path


def shard_table(results, param_names: list[str]) -> pa.Table:
    """SimulationResults -> the shard's Arrow table (θ as one fixed-size list column)."""
    results = sorted(results, key=lambda r: r.index)
    theta = np.array([r.theta for r in results], dtype=np.float64).reshape(len(results),
                                                                          len(param_names))
    columns = {
        "index": pa.array([r.index for r in results], pa.int64()),
        "seed": pa.array([r.seed for r in results], pa.int64()),
        "status": pa.array([r.status for r in results], pa.string()),
        "t_end": pa.array([r.t_end for r in results], pa.float64()),
        "wall_time": pa.array([r.wall_time for r in results], pa.float64()),
        "run_time": pa.array([r.run_time for r in results], pa.float64()),
        "rate_E": pa.array([r.rate("E") for r in results], pa.float64()),
        "rate_I": pa.array([r.rate("I") for r in results], pa.float64()),
        "message": pa.array([r.message for r in results], pa.string()),
        "theta": pa.FixedSizeListArray.from_arrays(pa.array(theta.ravel()), len(param_names)),
    }
    return pa.table(columns)


def spikes_arrays(results, dt: float) -> dict[str, np.ndarray]:
    """Compact spike trains: per simulation and population, time steps (uint32) and ids
    (uint16 when the population allows): 6 bytes a spike, exact."""
    arrays = {}
    for r in results:
        for pop, (times, ids) in r.spikes.items():
            id_type = np.uint16 if r.n_units[pop] <= np.iinfo(np.uint16).max else np.int32
            arrays[f"{r.index}/{pop}/steps"] = (times * (1.0 / dt) + 0.5).astype(np.uint32)
            arrays[f"{r.index}/{pop}/ids"] = ids.astype(id_type)
            arrays[f"{r.index}/{pop}/n_units"] = np.int64(r.n_units[pop])
        arrays[f"{r.index}/t_end"] = np.float64(r.t_end)
    return arrays


def table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def read_verified(path: Path, expected_sha: str, expected_bytes: int, what: str) -> bytes:
    """Read a committed file and check it against its manifest record."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BankError(f"{what} {path} is listed in the manifest but missing") from None
    except OSError as err:  # a folder in its place, no permission, ...
        raise BankError(f"{what} {path} cannot be read ({err.strerror or err})") from None
    if len(data) != expected_bytes or sha256(data) != expected_sha:
        raise BankError(f"{what} {path} is corrupt (size or checksum differs from the manifest: "
                        f"{len(data)} bytes vs {expected_bytes}); move it aside and run the same "
                        "`automind simulate` command again to re-simulate it")
    return data


def parse_table(data: bytes, path: Path) -> pa.Table:
    """A shard's bytes (Parquet, or Arrow IPC for feature shards) as a table."""
    try:
        if path.suffix == ".arrow":
            return pa.ipc.open_file(pa.BufferReader(data)).read_all()
        # read in this thread: Arrow's pool threads can release their hold on this Python
        # buffer after the read returns, and one doing so during interpreter shutdown aborts
        # the process ("terminate called without an active exception", exit status 134)
        with pq.ParquetFile(pa.BufferReader(data)) as shard:
            return shard.read(use_threads=False)
    except (pa.ArrowInvalid, OSError) as err:
        raise BankError(f"shard {path} cannot be read: {err}") from None


def new_shard_name(chunk: int) -> str:
    return f"c{chunk:08d}-{uuid.uuid4().hex[:8]}"


def feature_table(indices, x: np.ndarray) -> pa.Table:
    """A feature shard: simulation index and a float32 feature vector per row (NaN = missing)."""
    x = np.asarray(x, dtype=np.float32).reshape(len(indices), -1)
    return pa.table({"index": pa.array(np.asarray(indices, dtype=np.int64)),
                     "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])})


def commit_features(bank_path: Path, shard_name: str, feature_set: str, version: str,
                    indices, x: np.ndarray) -> dict:
    """Write a feature shard, then its record (the commit point); returns the record."""
    folder = Path(bank_path) / "features" / feature_set
    folder.mkdir(parents=True, exist_ok=True)
    table = feature_table(indices, x)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    atomic_write_bytes(folder / f"{shard_name}.arrow", data)
    record = {"shard": shard_name, "set": feature_set, "version": version, "rows": len(indices),
              "sha256": sha256(data), "bytes": len(data)}
    write_json(folder / f"{shard_name}.json", record)
    return record


def fixed_size_list_to_numpy(column, width: int) -> np.ndarray:
    values = column.combine_chunks().flatten() if hasattr(column, "combine_chunks") else column.flatten()
    return np.asarray(values).reshape(-1, width)


def commit_shard(bank_path: Path, chunk: int, table: pa.Table, spikes: dict | None = None,
                 features: dict | None = None) -> ShardRecord:
    """Write a shard's files (spikes, feature sets {name: (version, x)}, table), then its
    manifest record, which is the commit point: readers see the shard only from then on."""
    bank_path = Path(bank_path)
    name = new_shard_name(chunk)
    indices = table["index"].to_numpy()
    data = table_bytes(table)
    record = ShardRecord(name=name, chunk=chunk, indices=indices.tolist(),
                         shard_sha256=sha256(data), shard_bytes=len(data))
    if spikes is not None:
        record.spikes_sha256, record.spikes_bytes = write_npz_streamed(bank_path / "spikes" / f"{name}.npz",
                                                               spikes)
    for feature_set, (version, x) in (features or {}).items():
        commit_features(bank_path, name, feature_set, version, indices, x)
    atomic_write_bytes(bank_path / "shards" / f"{name}.parquet", data)
    write_json(bank_path / "manifest" / f"{name}.json", dataclasses.asdict(record))
    return record
