"""automind: find all spiking-circuit configurations consistent with a neural recording."""

from ._lazy import lazy_getattr

__version__ = "0.1.0"

# Heavy imports (torch, Brian2) are deferred so `automind --help` and worker processes start fast.
_LAZY = {
    "Prior": ("automind.prior", "Prior"),
    "SimulatorSpec": ("automind.simulators.spec", "SimulatorSpec"),
    "Simulator": ("automind.simulators.simulator", "Simulator"),
    "SimulationResult": ("automind.simulators.simulator", "SimulationResult"),
    "simulate": ("automind.simulators.simulator", "simulate"),
    "UserError": ("automind.errors", "UserError"),
    "train": ("automind.inference.train", "train"),
    "TrainingConfig": ("automind.inference.config", "TrainingConfig"),
    "load_posterior": ("automind.inference.posterior", "load_posterior"),
    "SpikeData": ("automind.features.spikedata", "SpikeData"),
    "compute_features": ("automind.features.sets", "compute_features"),
    "read_recording": ("automind.recordings", "read_recording"),
}

__getattr__ = lazy_getattr("automind", _LAZY)

__all__ = sorted(_LAZY)
