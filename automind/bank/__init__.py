"""Simulation banks: crash-safe, resumable, multi-writer storage of simulations and features."""

# Lazy, so that worker processes unpickling automind.bank.engines.run_chunk do not import
# pyarrow, scipy and torch before their first simulation.
_LAZY = {"Bank": ("automind.bank.bank", "Bank"), "BankError": ("automind.bank.store", "BankError"),
         "extend": ("automind.bank.writer", "extend")}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'automind.bank' has no attribute {name!r}")


__all__ = sorted(_LAZY)
