"""Simulation banks: crash-safe, resumable, multi-writer storage of simulations and features."""

from .._lazy import lazy_getattr

# Lazy, so that worker processes unpickling automind.simulators.execution.run_chunk do not import
# pyarrow, scipy and torch before their first simulation.
_LAZY = {"Bank": ("automind.bank.bank", "Bank"), "BankError": ("automind.bank.store", "BankError"),
         "extend": ("automind.bank.writer", "extend")}

__getattr__ = lazy_getattr("automind.bank", _LAZY)

__all__ = sorted(_LAZY)
