"""Find and read declarative spec files (priors/, simulators/, studies/) by short name or path."""

from __future__ import annotations

import hashlib
import tomllib
from importlib import resources
from pathlib import Path

from .errors import UserError

#: The repository root when running from a checkout or an editable install.
_REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where each kind of spec lives inside an installed wheel (see pyproject's package-dir).
_PACKAGED = {"priors": "automind._specdata.priors", "simulators": "automind._specdata.simulators"}


def spec_dirs(kind: str) -> list[Path]:
    """Folders searched for specs of ``kind``, checkout first, then the installed wheel."""
    dirs = [_REPO_ROOT / kind]
    package = _PACKAGED.get(kind)
    if package:
        try:  # a namespace package: its files live in the folder holding its .toml files
            dirs.extend({p.parent for p in resources.files(package).iterdir()})
        except (ModuleNotFoundError, FileNotFoundError):
            pass
    return [d for d in dirs if d.is_dir()]


def available(kind: str) -> list[str]:
    """Short names of the specs of ``kind`` that ship with automind."""
    return sorted({p.stem for d in spec_dirs(kind) for p in d.glob("*.toml")})


def find_spec(kind: str, name_or_path: str | Path) -> Path:
    """Resolve ``--prior mk1`` or ``--prior path/to/file.toml`` to an existing file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists() or "/" in str(name_or_path):
        if not candidate.is_file():
            raise UserError(f"{kind[:-1]} spec file not found: {candidate}")
        return candidate
    for folder in spec_dirs(kind):
        path = folder / f"{name_or_path}.toml"
        if path.is_file():
            return path
    raise UserError(
        f"unknown {kind[:-1]} {str(name_or_path)!r}; available: {', '.join(available(kind)) or 'none'}"
        " (or give a path to a .toml file)"
    )


def read_toml(path: Path) -> tuple[dict, str]:
    """Parse a TOML spec; returns (data, sha256 of the file's bytes)."""
    raw = Path(path).read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as err:
        # (RecursionError: tomllib recurses into nested arrays, e.g. a hostile a = [[[[...]]]])
        lines = str(err).splitlines()
        raise UserError(f"malformed spec {path}: {lines[0] if lines else type(err).__name__}") from None
    return data, hashlib.sha256(raw).hexdigest()
