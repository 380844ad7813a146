"""Circuits of columns from a small declarative spec: which populations connect, which
weights train, where inputs enter.

A spec (a dict, e.g. read from TOML)::

    columns = ["A", "B"]
    [[connections]]                 # a new inter-column pathway, trained, starting at 0
    source = "A.L23E"; target = "B.L23I"; weight = 0.0; train = true
    [[connections]]                 # an existing intra-column entry made trainable
    source = "A.L23E"; target = "A.L23E"; train = true
    [[inputs]]                      # input channel "stim_A" onto L4 of A (in-degrees × J_E)
    name = "stim_A"; targets = {"A.L4E" = 295, "A.L4I" = 186}; train = false
    readout = ["A.L23E", "B.L23E"]

Weights are in the units of W (J × in-degree); ``indegree`` instead of ``weight`` gives
in-degrees (multiplied by J of the source: J_E for E, g J_E for I, J_E for inputs); ``gain``
scales an entry's effect without changing its trained value. Every column is a full
Potjans-Diesmann column (``dmf.column_weights``); ``params = {variant = "ode_column"}``
selects the ODE-Column constants (sizes divided by the number of columns unless
``size_divisor`` is given).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from . import pd
from .dmf import DMFParams, column_weights

_SPEC_KEYS = {"columns", "connections", "inputs", "readout", "params"}
_CONNECTION_KEYS = {"source", "target", "weight", "indegree", "gain", "train"}
_INPUT_KEYS = {"name", "targets", "train", "gain"}


@dataclass(frozen=True)
class Connection:
    source: int           # index into the circuit's populations
    target: int
    weight: float | None  # None: keep the column's own value (intra-column entries)
    gain: float = 1.0
    train: bool = False


@dataclass(frozen=True)
class InputChannel:
    name: str
    targets: tuple[tuple[int, float], ...]   # (population index, weight)
    gain: float = 1.0
    train: bool = False


@dataclass(frozen=True)
class CircuitSpec:
    columns: tuple[str, ...]
    connections: tuple[Connection, ...] = ()
    inputs: tuple[InputChannel, ...] = ()
    readout: tuple[int, ...] = ()
    params: DMFParams = field(default_factory=DMFParams)

    @property
    def populations(self) -> tuple[str, ...]:
        return tuple(f"{c}.{p}" for c in self.columns for p in pd.POPULATIONS)

    @property
    def n_pop(self) -> int:
        return 8 * len(self.columns)

    def index(self, name: str) -> int:
        return _population(name, self.columns, "circuit")

    @classmethod
    def from_dict(cls, data: dict, where: str = "circuit spec") -> "CircuitSpec":
        unknown = set(data) - _SPEC_KEYS
        if unknown:
            raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
        columns = tuple(str(c) for c in data.get("columns", ()))
        if not columns or len(set(columns)) != len(columns) or any("." in c for c in columns):
            raise UserError(f"{where}: 'columns' must be a non-empty list of distinct names without dots")
        params = dict(data.get("params", {}))
        if params.get("variant") == "ode_column":   # ODE-Column divides sizes by the columns
            params.setdefault("size_divisor", float(len(columns)))
        try:
            params = DMFParams.for_variant(**params)
        except TypeError as err:
            raise UserError(f"{where}: params: {err}") from None
        J = np.where(pd.EXCITATORY, params.J_E,
                     params.g * params.J_E if params.variant == "evers" else _inhibitory_J(params))
        connections = []
        for k, item in enumerate(data.get("connections", ())):
            here = f"{where}: connections[{k}]"
            _check_keys(item, _CONNECTION_KEYS, here)
            if "source" not in item or "target" not in item:
                raise UserError(f"{here}: needs 'source' and 'target'")
            src = _population(item["source"], columns, here)
            tgt = _population(item["target"], columns, here)
            weight = _weight(item, J[src % 8], here)
            if weight is None and src // 8 != tgt // 8:
                raise UserError(f"{here}: an inter-column connection needs 'weight' or 'indegree'")
            connections.append(Connection(src, tgt, weight, float(item.get("gain", 1.0)),
                                          bool(item.get("train", False))))
        pairs = [(c.source, c.target) for c in connections]
        if len(set(pairs)) != len(pairs):
            raise UserError(f"{where}: a connection is listed twice")
        inputs = []
        for k, item in enumerate(data.get("inputs", ())):
            here = f"{where}: inputs[{k}]"
            _check_keys(item, _INPUT_KEYS, here)
            targets = item.get("targets") or {}
            if not isinstance(targets, dict) or not targets:
                raise UserError(f"{here}: 'targets' must map populations to in-degrees")
            inputs.append(InputChannel(
                str(item.get("name", f"input{k}")),
                tuple((_population(p, columns, here), _finite(v, here) * params.J_E)
                      for p, v in targets.items()),
                float(item.get("gain", 1.0)), bool(item.get("train", False))))
        readout = tuple(_population(p, columns, f"{where}: readout") for p in data.get("readout", ()))
        return cls(columns, tuple(connections), tuple(inputs), readout, params)

    def matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(W (P, P), W_in (P, n_inputs), drive (P,)) at the spec's initial values, gains applied."""
        W_col, drive_col = column_weights(self.params)
        n = len(self.columns)
        W = np.kron(np.eye(n), W_col)
        for c in self.connections:
            if c.weight is not None:
                W[c.target, c.source] = c.weight
            W[c.target, c.source] *= c.gain
        W_in = np.zeros((self.n_pop, len(self.inputs)))
        for k, channel in enumerate(self.inputs):
            for pop, weight in channel.targets:
                W_in[pop, k] = weight * channel.gain
        return W, W_in, np.tile(drive_col, n)


def _inhibitory_J(params):
    from .variants import sizes

    N = sizes(params.area, params.size_divisor)
    return np.repeat(-N[0::2] / N[1::2] * params.J_E, 2)


def _check_keys(item, allowed, where):
    if not isinstance(item, dict):
        raise UserError(f"{where}: must be a table")
    unknown = set(item) - allowed
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")


def _finite(value, where) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {value!r} is not a number") from None
    if not np.isfinite(value):
        raise UserError(f"{where}: {value!r} is not finite")
    return value


def _weight(item, J_source, where):
    if "weight" in item and "indegree" in item:
        raise UserError(f"{where}: give 'weight' or 'indegree', not both")
    if "weight" in item:
        return _finite(item["weight"], where)
    if "indegree" in item:
        return _finite(item["indegree"], where) * float(J_source)
    return None


def _population(name, columns, where) -> int:
    if not isinstance(name, str) or "." not in name:
        raise UserError(f"{where}: {name!r} must be COLUMN.POPULATION, e.g. A.L23E")
    column, pop = name.split(".", 1)
    if column not in columns:
        raise UserError(f"{where}: {name!r} refers to column {column!r}, which the circuit does "
                        f"not declare (columns: {', '.join(columns)})")
    return columns.index(column) * 8 + pd.population_index(pop)
