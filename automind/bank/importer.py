"""Import a published AutoMIND summary table (CSV) into a bank, so users can train on it.

The published tables have one row per simulation, θ columns named ``params_<group>.<name>``
(``params_net.p_e2e``, ``params_Epop.C``, ``params_Ipop.Q_ge``, ...) and feature columns.
Group ``net`` maps to the bare name, ``Epop`` to ``E.<name>`` and ``Ipop`` to ``I.<name>``;
``params_*`` columns that are settings rather than prior parameters are ignored (and listed).
All other numeric columns become the feature set ``imported`` (NaN = missing).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import UserError
from ..provenance import package_versions
from ..io import write_json
from .store import FORMAT, FORMAT_VERSION, commit_shard

GROUPS = {"net": "", "Epop": "E.", "Ipop": "I."}
BOOKKEEPING = {"", "index", "Unnamed: 0", "sim_id", "seed", "random_seed"}


def map_parameter(column: str) -> str | None:
    """``params_Epop.C`` -> ``E.C``; None for columns that are not params_*.*"""
    if not column.startswith("params_") or "." not in column:
        return None
    group, name = column[len("params_"):].split(".", 1)
    return GROUPS.get(group, f"{group}.") + name


def import_table(csv_path: str | Path, out: str | Path, prior, rows_per_shard: int = 20000,
                 progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    csv_path, out = Path(csv_path), Path(out)
    if not csv_path.is_file():
        raise UserError(f"no such file: {csv_path}")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not empty; import into a new folder")
    try:
        reader = pacsv.open_csv(csv_path, read_options=pacsv.ReadOptions(block_size=64 << 20))
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(f"cannot read {csv_path} as CSV: {err}") from None
    columns = reader.schema.names
    mapped = {c: map_parameter(c) for c in columns}
    by_param = {name: c for c, name in mapped.items() if name in prior.names}
    missing = [n for n in prior.names if n not in by_param]
    if missing:
        raise UserError(f"{csv_path}: no column for prior parameter(s) {missing} "
                        f"(expected names like params_net.p_e2e, params_Epop.C)")
    ignored = [c for c, name in mapped.items() if name is not None and name not in prior.names]
    numeric = {c for c in columns if pa.types.is_floating(reader.schema.field(c).type)
               or pa.types.is_integer(reader.schema.field(c).type)}
    features = [c for c in columns if mapped[c] is None and c not in BOOKKEEPING and c in numeric]
    for sub in ("shards", "manifest", "features", "claims", "quarantine", "spikes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "seed": 0,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "chunk_size": rows_per_shard,
            "keep_spikes": False, "prior": prior.to_dict(), "prior_sha256": prior.sha256,
            "simulator": {"name": "imported", "source": str(csv_path.resolve())},
            "versions": package_versions(),
            "feature_sets": {"imported": {"version": "imported", "names": features,
                                          "source": str(csv_path.resolve())}},
            "import": {"ignored_columns": ignored}}
    write_json(out / "bank.json", meta)

    low, high = prior.low, prior.high
    next_index, outside, chunk = 0, 0, 0
    buffer: list[pa.RecordBatch] = []
    bar = tqdm(desc="importing", unit="row", disable=not progress)

    def flush(batches):
        nonlocal next_index, outside, chunk
        table = pa.Table.from_batches(batches)
        theta = np.column_stack([table[by_param[n]].to_numpy(zero_copy_only=False).astype(float)
                                 for n in prior.names])
        x = (np.column_stack([table[c].to_numpy(zero_copy_only=False).astype(np.float32)
                              for c in features]) if features else np.zeros((len(table), 0), np.float32))
        inside = np.isfinite(theta).all(1) & ((theta >= low) & (theta <= high)).all(1)
        outside += int((~inside).sum())
        theta, x = theta[inside], x[inside]
        index = np.arange(next_index, next_index + len(theta))
        next_index += len(theta)
        shard = pa.table({
            "index": pa.array(index), "seed": pa.array(np.full(len(index), -1)),
            "status": pa.array(["ok"] * len(index)), "t_end": pa.array(np.full(len(index), np.nan)),
            "wall_time": pa.array(np.zeros(len(index))), "run_time": pa.array(np.zeros(len(index))),
            "rate_E": pa.array(np.full(len(index), np.nan)),
            "rate_I": pa.array(np.full(len(index), np.nan)),
            "message": pa.array(["imported"] * len(index)),
            "theta": pa.FixedSizeListArray.from_arrays(pa.array(theta.ravel()), prior.dim)})
        commit_shard(out, chunk, shard, features={"imported": ("imported", x)})
        chunk += 1
        bar.update(len(table))

    rows = 0
    try:
        for batch in reader:
            buffer.append(batch)
            rows += batch.num_rows
            if rows >= rows_per_shard:
                flush(buffer)
                buffer, rows = [], 0
        if buffer:
            flush(buffer)
    except pa.ArrowInvalid as err:
        raise UserError(f"{csv_path}: malformed CSV ({err}); rows imported so far are kept in {out}") from None
    finally:
        bar.close()
    return {"bank": str(out), "imported": next_index, "outside_prior": outside,
            "features": len(features), "ignored_columns": ignored}
