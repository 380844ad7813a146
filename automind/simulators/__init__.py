"""Spiking-network simulators: model builders, specs and the compile-once engine."""

from ..columns import model as column
from ..protocols import SimulatorModel
from . import brunel, mk1

#: Model families by name; each module is a ``protocols.SimulatorModel`` (populations,
#: required_fixed, compile_time_fixed, theta_names, check_spec, build, layout, probe and
#: run_args). A module with ``backend`` other than "brian2" is not compiled: it is a
#: ``protocols.PythonModel``, with ``run(spec, params, seed, duration) -> {state, status,
#: message, t_end}``.
MODELS: dict[str, SimulatorModel] = {"mk1": mk1, "brunel": brunel, "column": column}

from .spec import SimulatorSpec  # noqa: E402
from .simulator import SimulationResult, Simulator, simulate  # noqa: E402

__all__ = ["MODELS", "SimulatorSpec", "Simulator", "SimulationResult", "simulate"]
