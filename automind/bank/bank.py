"""Reading a bank: metadata, committed shards, problems, tables, spike trains, summaries."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..recordings.npz import SafeNpz
from .store import (FORMAT, FORMAT_VERSION, SHARD_RE, BankError, ShardRecord,
                    check_feature_record, fixed_size_list_to_numpy, inside, parse_table,
                    read_verified)

KNOWN_DIRS = {"shards": ".parquet", "spikes": ".npz", "manifest": ".json", "features": None,
              "claims": ".lock", "quarantine": None}


def _row_filter(index: np.ndarray, status: np.ndarray, wanted=None, index_range=None) -> np.ndarray:
    """Rows whose status is in ``wanted`` (a name or a list) and index in [start, stop)."""
    keep = np.ones(len(index), dtype=bool)
    if wanted is not None:
        keep &= np.isin(status, [wanted] if isinstance(wanted, str) else list(wanted))
    if index_range is not None:
        keep &= (index >= index_range[0]) & (index < index_range[1])
    return keep


def read_shard_spikes(path: Path, record: ShardRecord, dt: float) -> dict[int, dict]:
    """Spike trains of a shard's simulations: index -> {"spikes": {pop: (times s, ids)},
    "n_units": {pop: n}, "t_end": s}, verified against the manifest record."""
    if record.spikes_sha256 is None:
        raise BankError(f"shard {record.name} was stored without spikes "
                        "(create the bank with --keep-spikes)")
    file = inside(path, Path(path) / "spikes" / f"{record.name}.npz", "spike file")
    data = SafeNpz(read_verified(file, record.spikes_sha256, record.spikes_bytes, "spike file"),
                   name=str(file))
    out = {}
    try:
        for index in record.indices:
            pops = sorted({k.split("/")[1] for k in data.files
                           if k.startswith(f"{index}/") and k.count("/") == 2})
            out[index] = {"spikes": {p: (data[f"{index}/{p}/steps"] * dt,
                                         data[f"{index}/{p}/ids"].astype(np.int32)) for p in pops},
                          "n_units": {p: int(data[f"{index}/{p}/n_units"].item()) for p in pops},
                          "t_end": float(data[f"{index}/t_end"].item())}
    except (KeyError, ValueError, TypeError) as err:  # consistent checksum, inconsistent content
        raise BankError(f"spike file {file} does not hold what its manifest lists "
                        f"({type(err).__name__}: {err})") from None
    return out


def _check_columns(table: pa.Table, path: Path, types: dict, fixed_list: tuple[str, int]) -> None:
    """A table read from disk has the columns (and widths) the bank format promises."""
    name, width = fixed_list
    problems = [f"{c} ({t})" for c, t in types.items()
                if c not in table.column_names or str(table[c].type) != t]
    column_type = table.schema.field(name).type if name in table.column_names else None
    if not (pa.types.is_fixed_size_list(column_type) and column_type.list_size == width):
        problems.append(f"{name} (fixed-size list of {width})")
    if problems:
        raise BankError(f"{path} lacks the columns {', '.join(problems)}; not a shard of this bank")


def _check_meta(meta, path: Path) -> None:
    """bank.json holds what readers use, with the right types (else one clear message)."""
    def ok():
        parameters = meta["prior"]["parameter"]
        sets = meta.get("feature_sets", {})
        return (all(key in meta for key in ("seed", "created", "keep_spikes", "versions",
                                            "chunk_size"))
                and isinstance(meta["prior"].get("name"), str) and isinstance(parameters, list)
                and all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in parameters)
                and isinstance(meta["simulator"].get("name"), str)
                and isinstance(meta["simulator"].get("dt", 1.0), (int, float))
                and isinstance(sets, dict)
                and all(isinstance(s, dict) and isinstance(s.get("names"), list)
                        and "version" in s for s in sets.values()))
    try:
        valid = isinstance(meta, dict) and ok()
    except (KeyError, TypeError, AttributeError):
        valid = False
    if not valid:
        raise BankError(f"{path}/bank.json lacks the prior, simulator or feature-set entries a "
                        "bank needs (damaged?)")


class Bank:
    """A simulation bank on disk. Only shards with a manifest record are ever read."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_file = self.path / "bank.json"
        if not meta_file.is_file():
            raise BankError(f"{self.path} is not a bank (no bank.json)")
        try:
            self.meta = json.loads(meta_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
            raise BankError(f"{meta_file} is not valid JSON: {err}") from None
        if not isinstance(self.meta, dict) or (self.meta.get("format") != FORMAT
                                               or self.meta.get("version") != FORMAT_VERSION):
            raise BankError(f"{self.path}: not an automind bank of format {FORMAT} "
                            f"v{FORMAT_VERSION}")
        _check_meta(self.meta, self.path)
        self.problems: list[str] = []
        self.records: list[ShardRecord] = self._load_records()
        self._scan_folder()

    # ---- structure ------------------------------------------------------------------
    @property
    def parameter_names(self) -> list[str]:
        return [p["name"] for p in self.meta["prior"]["parameter"]]

    def _load_records(self) -> list[ShardRecord]:
        records, seen = [], {}
        for path in sorted((self.path / "manifest").glob("*.json")):
            if not SHARD_RE.match(path.stem):
                continue  # reported as a foreign file by _scan_folder
            try:
                record = ShardRecord.from_json(json.loads(inside(self.path, path, "record")
                                                          .read_text()))
                if record.name != path.stem:
                    raise TypeError(f"it names shard {record.name}")
            except (json.JSONDecodeError, TypeError, UnicodeDecodeError, RecursionError,
                    BankError) as err:
                self.problems.append(f"manifest record {path.name} is unreadable ({err}); "
                                     "its shard is ignored")
                continue
            duplicates = [i for i in record.indices if i in seen]
            if duplicates:
                self.problems.append(f"shard {record.name} repeats simulations already in "
                                     f"{seen[duplicates[0]]} (e.g. index {duplicates[0]}); ignored")
                continue
            for i in record.indices:
                seen[i] = record.name
            records.append(record)
        return records

    def _scan_folder(self) -> None:
        """Report files that are not part of any committed shard (never used)."""
        committed = {r.name for r in self.records}
        for item in sorted(self.path.iterdir()):
            if item.name == "bank.json" or item.name.startswith(".tmp-"):
                continue
            if item.name not in KNOWN_DIRS or not item.is_dir():
                self.problems.append(f"foreign file or folder {item.name!r} in the bank (ignored)")
                continue
            if item.name in ("claims", "quarantine", "manifest"):
                continue
            for path in sorted(item.rglob("*")):
                if path.is_dir() or path.name.startswith(".tmp-"):
                    continue
                rel = str(path.relative_to(self.path))
                if item.name == "features":
                    record_file = path.with_suffix(".json")
                    if (path.stem not in committed or path.suffix not in (".arrow", ".json")
                            or not record_file.is_file()):
                        self.problems.append(f"{rel} has no manifest record (ignored)")
                elif path.stem not in committed or path.suffix != KNOWN_DIRS[item.name]:
                    self.problems.append(f"{rel} has no manifest record (ignored)")

    def indices(self) -> set[int]:
        return {i for r in self.records for i in r.indices}

    def intact_indices(self) -> set[int]:
        """Indices of committed shards whose file is present with its recorded size (cheap)."""
        def intact(record):
            shard = self.path / "shards" / f"{record.name}.parquet"
            return shard.is_file() and shard.stat().st_size == record.shard_bytes

        return {i for r in self.records if intact(r) for i in r.indices}

    # ---- reading ----------------------------------------------------------------------
    def read_shard(self, record: ShardRecord) -> pa.Table:
        path = inside(self.path, self.path / "shards" / f"{record.name}.parquet", "shard")
        table = parse_table(read_verified(path, record.shard_sha256, record.shard_bytes, "shard"),
                            path)
        _check_columns(table, path, {"index": "int64", "status": "string"},
                       ("theta", len(self.parameter_names)))
        return table

    def iter_tables(self, records: list[ShardRecord] | None = None):
        for record in records if records is not None else self.records:
            yield self.read_shard(record)

    def table(self, status: str | list[str] | None = None,
              index_range: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """All committed rows as numpy arrays sorted by index, optionally filtered."""
        tables = list(self.iter_tables())
        if not tables:
            return {"index": np.zeros(0, np.int64), "theta": np.zeros((0, len(self.parameter_names))),
                    "status": np.zeros(0, str), "seed": np.zeros(0, np.int64)}
        table = pa.concat_tables(tables)
        out = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names
               if name != "theta"}
        out["theta"] = fixed_size_list_to_numpy(table["theta"], len(self.parameter_names))
        keep = _row_filter(out["index"], out["status"], status, index_range)
        order = np.argsort(out["index"][keep], kind="stable")
        return {k: v[keep][order] for k, v in out.items()}

    def shard_spikes(self, record: ShardRecord) -> dict[int, dict]:
        """Spike trains of a shard's simulations (see ``read_shard_spikes``)."""
        return read_shard_spikes(self.path, record, self.meta["simulator"]["dt"])

    def spikes(self, index: int) -> dict:
        """Spike trains of one simulation (see ``shard_spikes``)."""
        for record in self.records:
            if index in record.indices:
                return self.shard_spikes(record)[index]
        raise BankError(f"simulation {index} is not in the bank")

    # ---- features ----------------------------------------------------------------------
    @property
    def feature_sets(self) -> dict:
        """Feature sets computed in this bank: name -> {"version", "names", ...}."""
        return self.meta.get("feature_sets", {})

    def feature_records(self, feature_set: str) -> dict[str, dict]:
        """Committed feature shards of a set, by main-shard name."""
        folder = self.path / "features" / feature_set
        committed = {r.name for r in self.records}
        records = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if path.stem in committed:
                try:
                    text = inside(self.path, path, "feature record").read_text()
                    records[path.stem] = check_feature_record(json.loads(text), path.stem)
                except (json.JSONDecodeError, UnicodeDecodeError, TypeError, RecursionError,
                        BankError):
                    self.problems.append(f"feature record {path} is unreadable (ignored)")
        return records

    def read_features(self, feature_set: str, record: dict) -> tuple[np.ndarray, np.ndarray]:
        """(indices, x float32 (rows, d)) of one committed feature shard."""
        path = inside(self.path, self.path / "features" / feature_set / f"{record['shard']}.arrow",
                      "feature shard")
        table = parse_table(read_verified(path, record["sha256"], record["bytes"], "feature shard"),
                            path)
        width = len(self.feature_sets[feature_set]["names"])
        _check_columns(table, path, {"index": "int64"}, ("x", width))
        return (table["index"].to_numpy(),
                fixed_size_list_to_numpy(table["x"], width).astype(np.float32, copy=False))

    def iter_rows(self, features: str | None = None, status=None, index_range=None,
                  records: list[ShardRecord] | None = None):
        """Per shard: (index, theta, status, x or None), filtered; shards lacking the set skipped."""
        names = self.parameter_names
        feature_records = self.feature_records(features) if features else {}
        for record in records if records is not None else self.records:
            if features and record.name not in feature_records:
                continue
            table = self.read_shard(record)
            index = table["index"].to_numpy()
            theta = fixed_size_list_to_numpy(table["theta"], len(names))
            stat = table["status"].to_numpy(zero_copy_only=False)
            x = None
            if features:
                f_index, x = self.read_features(features, feature_records[record.name])
                if not np.array_equal(f_index, index):
                    raise BankError(f"feature shard {features}/{record.name} does not match its "
                                    "simulation shard")
            keep = _row_filter(index, stat, status, index_range)
            if keep.any():
                yield index[keep], theta[keep], stat[keep], None if x is None else x[keep]

    def arrays(self, features: str | None = None, status=None, index_range=None) -> dict:
        """θ, x (if a feature set is named), status and index as arrays, sorted by index."""
        parts = list(self.iter_rows(features, status, index_range))
        if features and features not in self.feature_sets:
            raise BankError(f"bank {self.path} has no feature set {features!r}; computed sets: "
                            f"{sorted(self.feature_sets) or 'none'} (automind features BANK --set NAME)")
        if not parts:
            d = len(self.feature_sets[features]["names"]) if features else 0
            return {"index": np.zeros(0, np.int64), "theta": np.zeros((0, len(self.parameter_names))),
                    "status": np.zeros(0, object), "x": np.zeros((0, d), np.float32) if features else None}
        index = np.concatenate([p[0] for p in parts])
        order = np.argsort(index, kind="stable")
        return {"index": index[order], "theta": np.concatenate([p[1] for p in parts])[order],
                "status": np.concatenate([p[2] for p in parts])[order],
                "x": np.concatenate([p[3] for p in parts])[order] if features else None}

    # ---- summary -----------------------------------------------------------------------
    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def info(self) -> dict:
        table = self.table()
        counts = Counter(table["status"].tolist())
        ok = table["status"] == "ok"
        rates = {}
        for pop in ("E", "I"):
            values = table.get(f"rate_{pop}", np.zeros(0))[ok]
            if len(values):
                q = np.quantile(values, [0.05, 0.5, 0.95])
                rates[pop] = {"q05": float(q[0]), "median": float(q[1]), "q95": float(q[2])}
        meta = self.meta
        return {
            "path": str(self.path), "total": int(len(table["index"])),
            "by_status": {k: int(v) for k, v in sorted(counts.items())},
            "rates_ok_hz": rates,
            "wall_seconds": float(table.get("wall_time", np.zeros(0)).sum()),
            "simulated_seconds": float(table.get("t_end", np.zeros(0)).sum()),
            "shards": len(self.records), "disk_bytes": self.disk_bytes(),
            "seed": meta["seed"], "prior": meta["prior"]["name"],
            "simulator": meta["simulator"]["name"], "created": meta["created"],
            "keep_spikes": meta["keep_spikes"], "versions": meta["versions"],
            "feature_sets": {name: {"version": fs["version"], "dim": len(fs["names"]),
                                    "shards": len(self.feature_records(name))}
                             for name, fs in self.feature_sets.items()},
            "problems": self.problems,
        }
