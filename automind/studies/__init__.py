"""Ready-made studies: ``studies/NAME/study.toml`` names a ``kind`` and its settings; the
kind's module here (``automind.studies.<kind>``) runs it with ``run(config, out, workers,
quick, progress) -> dict`` and writes figures and ``results.json`` into ``out``."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

from ..errors import UserError
from ..io import write_json
from ..protocols import StudyKind

#: the study-kind registry: each is a module ``automind.studies.<kind>`` (a ``StudyKind``)
KINDS = ("brunel_phase", "culture_development", "dataset_comparison", "fit_targets",
         "mk1_recovery", "probe_areas", "rsnn_vs_npe")


def study_kind(kind: str) -> StudyKind:
    """The module that runs studies of ``kind`` (imported on demand: studies are heavy)."""
    if kind not in KINDS:
        raise UserError(f"unknown study kind {kind!r}; known: {', '.join(KINDS)}")
    return importlib.import_module(f"{__name__}.{kind}")


def load_study(folder: str | Path) -> dict:
    """The study's configuration (``study.toml``), with clear errors for a wrong folder."""
    folder = Path(folder)
    config_file = folder / "study.toml"
    if not config_file.is_file():
        raise UserError(f"{folder} is not a study folder (no study.toml)")
    try:
        config = tomllib.loads(config_file.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{config_file}: {err}") from None
    if config.get("kind") not in KINDS:
        raise UserError(f"{config_file}: kind must be one of {', '.join(KINDS)}, "
                        f"not {config.get('kind')!r}")
    return config


def run_study(folder: str | Path, out: str | Path | None = None, workers: int | None = None,
              quick: bool = False, progress: bool = True) -> dict:
    """Run the study in ``folder``; results go to ``out`` (default ``folder/results``)."""
    from ..provenance import package_versions
    from ..simulators.execution import default_workers

    config = load_study(folder)
    out = Path(out) if out is not None else Path(folder) / "results"
    out.mkdir(parents=True, exist_ok=True)
    kind = study_kind(config["kind"])
    # the study's folder, for paths in study.toml relative to it (probe_areas' data)
    config = config | {"study_folder": str(Path(folder).resolve())}
    summary = kind.run(config, out, workers or default_workers(), quick, progress)
    summary = {"study": str(folder), "kind": config["kind"], "quick": quick,
               "out": str(out)} | summary | {"versions": package_versions()}
    write_json(out / "results.json", summary, sort_keys=False)
    return summary
