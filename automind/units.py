"""Physical units of parameters: parse ``"200 pF"``-style strings to SI floats.

A deliberately tiny table: the simulators take plain SI floats, and importing
Brian2's unit system just to read a spec would cost a second per process.
"""

from __future__ import annotations

from .errors import UserError

#: unit symbol -> factor to SI base units (F, S, V, s, Hz, A); "1" is dimensionless.
SI_FACTORS = {
    "1": 1.0,
    "": 1.0,
    "F": 1.0, "nF": 1e-9, "pF": 1e-12,
    "S": 1.0, "uS": 1e-6, "nS": 1e-9,
    "V": 1.0, "mV": 1e-3,
    "s": 1.0, "ms": 1e-3,
    "Hz": 1.0, "kHz": 1e3,
    "A": 1.0, "nA": 1e-9, "pA": 1e-12,
}

#: SI base unit of each unit symbol (for display and for Brian2 quantities).
SI_BASE = {
    "1": "1", "": "1",
    "F": "F", "nF": "F", "pF": "F",
    "S": "S", "uS": "S", "nS": "S",
    "V": "V", "mV": "V",
    "s": "s", "ms": "s",
    "Hz": "Hz", "kHz": "Hz",
    "A": "A", "nA": "A", "pA": "A",
}


def si_factor(unit: str) -> float:
    """Factor that converts a value in ``unit`` to SI; unknown units are a UserError."""
    try:
        return SI_FACTORS[unit.strip()]
    except KeyError:
        known = ", ".join(sorted(u for u in SI_FACTORS if u))
        raise UserError(f"unknown unit {unit!r}; known units: {known}") from None


def parse_quantity(text, what: str = "value") -> float:
    """``"200 pF"`` -> 2e-10; a bare number is dimensionless."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        raise UserError(f"{what}: expected a number or a string like '200 pF', got {text!r}")
    parts = text.split()
    if len(parts) not in (1, 2):
        raise UserError(f"{what}: cannot read {text!r}; write a number and a unit, e.g. '200 pF'")
    try:
        number = float(parts[0])
    except ValueError:
        raise UserError(f"{what}: {parts[0]!r} in {text!r} is not a number") from None
    unit = parts[1] if len(parts) == 2 else "1"
    return number * si_factor(unit)
