"""A fit's run folder record (``fit.json``): written when the run starts, checked on resume."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..io import write_json


def record_run(out: Path, record: dict, absent: dict | None = None) -> dict | None:
    """Write ``out/fit.json``, or check that an existing run folder holds this same fit (same
    method, same record); returns the earlier record when resuming. File paths (``source``)
    and the memory ceiling are left out of the comparison (``NOT_IDENTITY``), so a run resumes
    from another checkout, after its recording moved or with more memory; contents still count (the specs' sha256, the recording's features).
    ``absent``: per section, what a key missing from an older record meant (named in the
    refusal)."""
    from ..provenance import package_versions

    file, method = out / "fit.json", record["method"]
    if file.is_file():
        try:
            before = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"{file} is damaged; use a new --out") from None
        if before.get("method", "sbi") != method:
            raise UserError(f"{out} holds a fit made by --method {before.get('method', 'sbi')}; "
                            f"use a new --out for the {method} method")
        changed = [_difference(k, before.get(k), record[k], (absent or {}).get(k, {}))
                   for k in record
                   if _identity(before.get(k)) != _identity(record[k])]
        if changed:
            raise UserError(f"{out} holds a --method {method} fit with other "
                            f"{' and '.join(changed)}; resume it with the same command and "
                            "settings, or use a new --out")
        return before
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} exists, is not empty and was not made by `automind fit`; "
                        "choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(file, record | {"versions": package_versions()}, sort_keys=False)
    return None


#: keys that do not make a fit another fit: file paths, and a resource ceiling (a run stopped
#: for memory resumes with a higher --memory-limit)
NOT_IDENTITY = ("source", "memory_limit_gib")


def _identity(section) -> str:
    if isinstance(section, dict):
        section = {k: v for k, v in section.items() if k not in NOT_IDENTITY}
    return json.dumps(section, sort_keys=True)


def _difference(name: str, before, now, absent: dict) -> str:
    """``name``, and for two dicts the keys that differ with their values (run vs now; a key
    missing from either is shown as what ``absent`` says it meant, else "(unset)")."""
    if not (isinstance(before, dict) and isinstance(now, dict)):
        return name

    def value(record, key):
        return record.get(key, absent.get(key, "(unset)"))

    keys = [k for k in dict.fromkeys([*before, *now]) if k != "source"
            and _identity(before.get(k, "(unset)")) != _identity(now.get(k, "(unset)"))]
    shown = "; ".join(f"{k}: {value(before, k)} in the run, {value(now, k)} now"
                      for k in keys[:4])
    return f"{name} ({shown}{'; ...' if len(keys) > 4 else ''})" if keys else name
