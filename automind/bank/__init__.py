"""Simulation banks: crash-safe, resumable, multi-writer storage of simulations and features."""

from .bank import Bank
from .store import BankError
from .writer import extend

__all__ = ["Bank", "BankError", "extend"]
