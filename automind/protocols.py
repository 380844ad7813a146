"""What an entry of each registry must provide, as typed protocols.

- ``SimulatorModel``: a model family of ``simulators.MODELS`` (a module: ``mk1``, ``brunel``,
  ``columns.model``);
- ``FeatureSetLike``: a feature set of ``features.sets.FEATURE_SETS``;
- ``StudyKind``: a study kind of ``studies.KINDS`` (a module ``automind.studies.<kind>``).

Modules satisfy them structurally (PEP 544); all are ``runtime_checkable``, so
``isinstance(module, SimulatorModel)`` checks that every member is there
(``tests/test_registries.py`` does, for every entry). Nothing here imports the rest of
automind, so every layer may use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SimulatorModel(Protocol):
    """A spiking-model family: what a simulator spec with ``model = NAME`` runs."""

    populations: tuple[str, ...]         # population names, in unit order
    state_variables: tuple[str, ...]     # what a run can record besides spikes
    required_fixed: tuple[str, ...]      # the spec's [fixed] values the model needs
    compile_time_fixed: tuple[str, ...]  # fixed values baked into a compiled binary
    theta_names: tuple[str, ...]         # simulator values a prior must provide

    def check_spec(self, spec) -> None:
        """Raise ``UserError`` for a spec this model cannot run."""

    def build(self, spec, b2, declare_run_args, begin_run_time_section) -> dict:
        """Build the Brian2 network (compiled models; others refuse). A model that runs
        explicit graphs also takes ``graph`` (``simulators.build.graph_function``) and has
        ``graph_matrix(spec, params, graph)`` (``Simulator(spec, explicit_graph=True)``)."""

    def layout(self, spec, params: dict) -> dict[str, tuple[int, int]]:
        """{population: (first unit, end)} for simulator values ``params``."""

    def probe(self, spec, params: dict) -> tuple[int, float]:
        """(units to watch, rate threshold) for the early-stop probe."""

    def run_args(self, spec, params: dict, rng: np.random.Generator) -> dict:
        """Run-time arguments of the compiled binary for one simulation."""


@runtime_checkable
class PythonModel(SimulatorModel, Protocol):
    """A model run in Python (not compiled): ``backend`` names how."""

    backend: str

    def run(self, spec, params: dict, seed: int, duration: float) -> dict:
        """{state, status, message, t_end} of one simulation."""


@runtime_checkable
class FeatureSetLike(Protocol):
    """A named, versioned feature vector computed from spikes (or recorded rates)."""

    name: str
    version: str
    names: tuple[str, ...]
    log10: tuple[bool, ...]      # which features inference sees as log10
    description: str
    source: str                  # "spikes": compute(SpikeData); "rates": compute(rates, dt)

    def compute(self, data, *more) -> np.ndarray:
        """The raw feature vector, one value per name."""

    def transform(self, x) -> np.ndarray:
        """Raw features -> the space inference works in."""

    def metadata(self) -> dict:
        """{version, names, transforms, description} as recorded in banks and posteriors."""


@runtime_checkable
class StudyKind(Protocol):
    """A ready-made study: ``studies/NAME/study.toml`` names its kind."""

    def run(self, config: dict, out: Path, workers: int, quick: bool,
            progress: bool) -> dict[str, Any]:
        """Run the study, write figures and return the results summary."""
