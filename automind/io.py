"""The one place files are written: atomic writes, JSON, NPZ, checksums.

Every write goes to a temporary name in the destination folder and is renamed into place,
so a crash never leaves a partial file under the final name. No fsync: after a power loss
the checksums recorded by banks and artifacts catch a damaged file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from pathlib import Path

import numpy as np


def _temporary(path: Path) -> Path:
    return path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` under a temporary name, then rename it to ``path``."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, data, sort_keys: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=sort_keys))


def save_npz(path: str | Path, **arrays) -> None:
    """Arrays as one .npz (small files; large ones use ``write_npz_streamed``)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def save_npy(path: str | Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    atomic_write_bytes(path, buffer.getvalue())


def write_npz_streamed(path: str | Path, arrays: dict) -> tuple[str, int]:
    """Write arrays as .npz straight to a temporary file (no copy in memory), rename;
    returns (sha256, size) of what was written."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        digest, size = file_sha256(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest, size


def json_floats(values) -> list:
    """Floats for JSON (NaN and inf as None)."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, float)]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> tuple[str, int]:
    """(sha256 hex digest, size in bytes) of a file, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
