"""Spiking-network simulators: model builders, specs and the compile-once engine."""

from ..columns import model as column
from . import brunel, mk1

#: Model families by name; each module provides populations, required_fixed,
#: compile_time_fixed, theta_names, check_spec, build, layout, probe and run_args.
#: A module with ``backend`` other than "brian2" is not compiled: it provides
#: ``run(spec, params, seed, duration) -> {state, status, message, t_end}`` instead.
MODELS = {"mk1": mk1, "brunel": brunel, "column": column}

from .spec import SimulatorSpec  # noqa: E402
from .simulator import SimulationResult, Simulator, simulate  # noqa: E402

__all__ = ["MODELS", "SimulatorSpec", "Simulator", "SimulationResult", "simulate"]
