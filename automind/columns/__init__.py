"""Laminar cortical columns: the Potjans-Diesmann column as a dynamic mean field in torch,
circuits of columns from a declarative spec, tasks trained through the ODE solver (WTA,
XOR), and the ``column`` model for SBI (docs/columns.md)."""

from .._lazy import lazy_getattr

_LAZY = {
    "DMFParams": ("automind.columns.dmf", "DMFParams"),
    "column_weights": ("automind.columns.dmf", "column_weights"),
    "integrate": ("automind.columns.dmf", "integrate"),
    "steady_rates": ("automind.columns.dmf", "steady_rates"),
    "integrate_odeint": ("automind.columns.odeint", "integrate_odeint"),
    "in_degrees": ("automind.columns.pd", "in_degrees"),
    "CircuitSpec": ("automind.columns.circuit", "CircuitSpec"),
    "Circuit": ("automind.columns.network", "Circuit"),
    "train_task": ("automind.columns.train", "train_task"),
    "TrainConfig": ("automind.columns.train", "TrainConfig"),
    "load_weights": ("automind.columns.train", "load_weights"),
}

__getattr__ = lazy_getattr("automind.columns", _LAZY)

__all__ = sorted(_LAZY)
