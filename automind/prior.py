"""Priors: named, unit-carrying parameters with bounds, scale and discreteness.

A prior spec (``priors/*.toml``) lists parameters in order; that order is the order
of θ vectors everywhere in automind. Values in θ are in the spec's display units
(e.g. pF, mV), because those are what users read; :meth:`Prior.to_simulator`
converts a θ to SI floats for the simulators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .specs import find_spec, read_toml
from .units import si_factor

#: a uniform's half-width in its standardised scale space (unit sd): the prior box is ±√3
STANDARDISED_EDGE = math.sqrt(3.0)

SCALES = ("linear", "log")
DISCRETE = ("none", "floor")


@dataclass(frozen=True)
class Parameter:
    """One inferred parameter. ``low``/``high`` are in ``unit``."""

    name: str
    low: float
    high: float
    unit: str = "1"
    scale: str = "linear"
    discrete: str = "none"
    description: str = ""

    @property
    def si_factor(self) -> float:
        return si_factor(self.unit)


def _on_log_columns(values, params, fn):
    """``fn`` applied to the log-scale parameters' columns of θ (a copy; the rest unchanged)."""
    logs = [p.scale == "log" for p in params]
    if not any(logs):
        return values
    out = values.clone() if isinstance(values, torch.Tensor) else \
        np.array(values, dtype=float, copy=True)
    for k, is_log in enumerate(logs):
        if is_log:
            out[..., k] = fn(out[..., k])
    return out


def _forward(values, params, xp):
    """Map θ to the space where the prior is uniform (log for log-scale parameters)."""
    return _on_log_columns(values, params, xp.log)


def _inverse(values, params, xp):
    return _on_log_columns(values, params, xp.exp)


@dataclass(frozen=True)
class Constant:
    """A model parameter held fixed (not inferred): passed to the simulator, not part of θ."""

    name: str
    value: float
    unit: str = "1"
    description: str = ""

    @property
    def si_factor(self) -> float:
        return si_factor(self.unit)


class _ScaledBox(torch.distributions.Distribution):
    """Independent uniforms, each in linear or log space; a distribution sbi accepts."""

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, params: list[Parameter]):
        self._params = params
        low = torch.tensor([p.low for p in params], dtype=torch.float32)
        high = torch.tensor([p.high for p in params], dtype=torch.float32)
        self._low, self._high = low, high
        self._u_low = _forward(low, params, torch)
        self._u_high = _forward(high, params, torch)
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([len(params)]),
                         validate_args=False)

    @property
    def support(self):
        return torch.distributions.constraints.independent(
            torch.distributions.constraints.interval(self._low, self._high), 1)

    @property
    def mean(self):
        return self.sample(torch.Size([20000])).mean(0) if any(
            p.scale == "log" for p in self._params) else (self._low + self._high) / 2

    @property
    def variance(self):
        return self.sample(torch.Size([20000])).var(0) if any(
            p.scale == "log" for p in self._params) else (self._high - self._low) ** 2 / 12

    def sample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.event_shape
        u = torch.rand(shape) * (self._u_high - self._u_low) + self._u_low
        return _inverse(u, self._params, torch)

    def log_prob(self, value):
        value = torch.as_tensor(value, dtype=torch.float32)
        inside = ((value >= self._low) & (value <= self._high)).all(-1)
        log_density = -torch.log(self._u_high - self._u_low).sum().expand(value.shape[:-1]).clone()
        for k, p in enumerate(self._params):  # Jacobian of the log map
            if p.scale == "log":
                log_density = log_density - torch.log(value[..., k].clamp_min(1e-30))
        return torch.where(inside, log_density, torch.full_like(log_density, -math.inf))


@dataclass
class Prior:
    """An ordered set of independent parameters, loaded from a prior spec."""

    name: str
    parameters: list[Parameter]
    description: str = ""
    source: str = ""
    sha256: str = ""
    constants: list[Constant] = field(default_factory=list)
    _dist: torch.distributions.Distribution | None = field(default=None, repr=False)

    # ---- construction -------------------------------------------------------
    @classmethod
    def load(cls, name_or_path: str | Path) -> "Prior":
        """Load ``priors/NAME.toml`` by short name, or any prior spec by path."""
        path = find_spec("priors", name_or_path)
        data, digest = read_toml(path)
        return cls.from_dict(data, source=str(path), sha256=digest)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>", sha256: str = "") -> "Prior":
        where = f"prior spec {source}"
        entries = data.get("parameter")
        if not isinstance(entries, list) or not entries:
            raise UserError(f"{where}: needs at least one [[parameter]] table")
        allowed = {"name", "low", "high", "unit", "scale", "discrete", "description"}
        params, seen = [], set()
        for k, entry in enumerate(entries):
            label = f"{where}, parameter #{k} ({entry.get('name', '?')})"
            unknown = set(entry) - allowed
            if unknown:
                raise UserError(f"{label}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
            for key in ("name", "low", "high"):
                if key not in entry:
                    raise UserError(f"{label}: missing '{key}'")
            name = entry["name"]
            if not isinstance(name, str) or not name:
                raise UserError(f"{label}: 'name' must be a non-empty string")
            if name in seen:
                raise UserError(f"{where}: parameter {name!r} appears twice")
            seen.add(name)
            try:
                low, high = float(entry["low"]), float(entry["high"])
            except (TypeError, ValueError):
                raise UserError(f"{label}: 'low' and 'high' must be numbers") from None
            if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
                raise UserError(f"{label}: needs finite low < high, got low={low}, high={high}")
            scale = entry.get("scale", "linear")
            if scale not in SCALES:
                raise UserError(f"{label}: scale must be one of {SCALES}, got {scale!r}")
            if scale == "log" and low <= 0:
                raise UserError(f"{label}: a log-scale parameter needs low > 0, got {low}")
            discrete = entry.get("discrete", "none")
            if discrete not in DISCRETE:
                raise UserError(f"{label}: discrete must be one of {DISCRETE}, got {discrete!r}")
            unit = str(entry.get("unit", "1"))
            si_factor(unit)  # validates the unit
            params.append(Parameter(name, low, high, unit, scale, discrete,
                                    str(entry.get("description", ""))))
        constants = []
        for k, entry in enumerate(data.get("constant", [])):
            label = f"{where}, constant #{k} ({entry.get('name', '?')})"
            unknown = set(entry) - {"name", "value", "unit", "description"}
            if unknown or "name" not in entry or "value" not in entry:
                raise UserError(f"{label}: needs 'name' and 'value' (and optionally 'unit', "
                                f"'description'){f'; unknown key(s) {sorted(unknown)}' if unknown else ''}")
            if entry["name"] in seen:
                raise UserError(f"{where}: {entry['name']!r} is both a parameter or constant and a constant")
            seen.add(entry["name"])
            try:
                value = float(entry["value"])
            except (TypeError, ValueError):
                raise UserError(f"{label}: 'value' must be a number") from None
            unit = str(entry.get("unit", "1"))
            si_factor(unit)
            constants.append(Constant(entry["name"], value, unit, str(entry.get("description", ""))))
        return cls(str(data.get("name", Path(source).stem)), params,
                   str(data.get("description", "")), source, sha256, constants)

    # ---- basic properties ---------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def dim(self) -> int:
        return len(self.parameters)

    @property
    def low(self) -> np.ndarray:
        return np.array([p.low for p in self.parameters])

    @property
    def high(self) -> np.ndarray:
        return np.array([p.high for p in self.parameters])

    @property
    def simulator_names(self) -> list[str]:
        """Everything the simulator receives: the parameters, then the constants."""
        return self.names + [c.name for c in self.constants]

    def to_dict(self) -> dict:
        """The spec as plain data (for artifact metadata)."""
        data = {"name": self.name, "description": self.description,
                "parameter": [{"name": p.name, "low": p.low, "high": p.high, "unit": p.unit,
                               "scale": p.scale, "discrete": p.discrete,
                               "description": p.description} for p in self.parameters]}
        if self.constants:
            data["constant"] = [{"name": c.name, "value": c.value, "unit": c.unit,
                                 "description": c.description} for c in self.constants]
        return data

    # ---- validation ---------------------------------------------------------
    def validate(self, theta) -> np.ndarray:
        """Return θ as a float array of shape (n, dim); a UserError if it is not a valid θ."""
        arr = np.asarray(theta, dtype=float)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise UserError(f"θ for prior {self.name!r} must have {self.dim} values "
                            f"({', '.join(self.names)}); got shape {np.shape(theta)}")
        if not np.isfinite(arr).all():
            raise UserError("θ contains NaN or infinite values")
        outside = (arr < self.low) | (arr > self.high)
        if outside.any():
            row, col = np.argwhere(outside)[0]
            p = self.parameters[col]
            raise UserError(f"θ[{row}] {p.name} = {arr[row, col]:g} {p.unit} is outside the prior "
                            f"support [{p.low:g}, {p.high:g}]")
        return arr

    def inside(self, theta) -> np.ndarray:
        """Rows of θ (n, dim) inside the prior box."""
        arr = np.atleast_2d(np.asarray(theta, dtype=float))
        return ((arr >= self.low) & (arr <= self.high)).all(1)

    # ---- distribution -------------------------------------------------------
    @property
    def distribution(self) -> torch.distributions.Distribution:
        """A torch distribution over θ (independent uniforms) that sbi accepts as a prior."""
        if self._dist is None:
            if all(p.scale == "linear" for p in self.parameters):
                from sbi.utils import BoxUniform

                self._dist = BoxUniform(torch.tensor(self.low, dtype=torch.float32),
                                        torch.tensor(self.high, dtype=torch.float32))
            else:
                self._dist = _ScaledBox(self.parameters)
        return self._dist

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """Draw n θ (float64, display units), reproducibly for a given seed."""
        rng = np.random.default_rng(seed)
        u = rng.uniform(size=(n, self.dim))
        lo = _forward(self.low, self.parameters, np)
        hi = _forward(self.high, self.parameters, np)
        return _inverse(lo + u * (hi - lo), self.parameters, np)

    def sample_indexed(self, seed: int, indices) -> np.ndarray:
        """θ for simulation ``k`` of a bank with global ``seed``, for each k in ``indices``.

        Each row depends only on (seed, k), so a bank can be extended or resumed in any
        order, by any number of workers, and give the same θ.
        """
        lo = _forward(self.low, self.parameters, np)
        hi = _forward(self.high, self.parameters, np)
        u = np.array([np.random.default_rng([int(seed), int(k), 0x7E7A]).uniform(size=self.dim)
                      for k in indices]).reshape(-1, self.dim)
        return _inverse(lo + u * (hi - lo), self.parameters, np)

    def log_prob(self, theta) -> np.ndarray:
        arr = np.atleast_2d(np.asarray(theta, dtype=float))
        return self.distribution.log_prob(torch.as_tensor(arr, dtype=torch.float32)).numpy()

    # ---- coordinates --------------------------------------------------------
    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of each parameter's uniform, in its scale space."""
        lo = _forward(self.low, self.parameters, np)
        hi = _forward(self.high, self.parameters, np)
        return (lo + hi) / 2, (hi - lo) / math.sqrt(12)

    def standardise(self, theta) -> np.ndarray:
        """θ -> prior-standardised coordinates (zero mean, unit sd under the prior)."""
        mean, sd = self._moments()
        return (_forward(np.asarray(theta, dtype=float), self.parameters, np) - mean) / sd

    def destandardise(self, z) -> np.ndarray:
        mean, sd = self._moments()
        return _inverse(np.asarray(z, dtype=float) * sd + mean, self.parameters, np)

    def dtheta_du(self, z, step: float = 1e-3) -> np.ndarray:
        """dθ/dz per parameter at standardised z, by central differences (diagonal: each
        parameter's transform acts alone): a gradient in θ units times it is the gradient in
        standardised coordinates."""
        z = np.asarray(z, dtype=float)
        return (self.destandardise(z + step) - self.destandardise(z - step)) / (2 * step)

    # ---- simulator mapping --------------------------------------------------
    def to_simulator(self, theta) -> dict[str, float]:
        """One θ -> {name: value in SI units}, with discreteness applied (e.g. floor), plus
        the constants."""
        row = self.validate(theta)
        if row.shape[0] != 1:
            raise UserError("to_simulator takes a single θ")
        values = {}
        for p, v in zip(self.parameters, row[0]):
            if p.discrete == "floor":
                v = math.floor(v)
            values[p.name] = float(v) * p.si_factor
        return values | {c.name: c.value * c.si_factor for c in self.constants}

    def to_quantities(self, theta) -> dict:
        """One θ -> {name: Brian2 Quantity}, for users who want unit-checked values."""
        import brian2

        base = {"F": brian2.farad, "S": brian2.siemens, "V": brian2.volt, "s": brian2.second,
                "Hz": brian2.Hz, "A": brian2.amp, "1": 1}
        from .units import SI_BASE

        units = {p.name: p.unit for p in self.parameters} | {c.name: c.unit for c in self.constants}
        return {name: value * base[SI_BASE[units[name]]]
                for name, value in self.to_simulator(theta).items()}
