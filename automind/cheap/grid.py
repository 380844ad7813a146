"""The table's grid: axes of the dimensionless inputs and the coordinates interpolated in."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

AXES = ("m", "r", "delta", "ell", "rho", "kappa")


def kappa_coordinate(kappa):
    """√κ/(1+√κ): the coloured-noise shift grows like √κ and saturates for κ ≫ 1."""
    s = np.sqrt(np.maximum(np.asarray(kappa, float), 0.0))
    return s / (1.0 + s)


#: How each axis is interpolated (multilinear in these coordinates, on log10 ν τ).
COORDINATES = {"m": lambda v: np.asarray(v, float), "r": np.log, "delta": lambda v: np.asarray(v, float),
               "ell": lambda v: np.asarray(v, float), "rho": np.log, "kappa": kappa_coordinate}


@dataclass(frozen=True)
class Grid:
    """Node values per axis, in the order of :data:`AXES` (each strictly increasing; a
    single value makes a slice: lookups off it are clamped and flagged)."""

    m: tuple
    r: tuple
    delta: tuple
    ell: tuple
    rho: tuple
    kappa: tuple

    @classmethod
    def full(cls) -> "Grid":
        """The design grid (spec §1): 25 × 8 × 8 × 5 × 6 × 8 = 384,000 nodes."""
        return cls(m=_round(np.arange(-6.0, 6.01, 0.5)), r=_round(np.geomspace(0.5, 100.0, 8)),
                   delta=(0.0, 0.15, 0.3, 0.6, 1.2, 2.5, 5.0, 12.0), ell=(0.0, 1.0, 2.0, 3.5, 5.0),
                   rho=_round(np.geomspace(0.03, 30.0, 6)),
                   kappa=(0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0))

    @classmethod
    def reduced(cls) -> "Grid":
        """What ~6 CPU-min afford (37,500 simulated nodes, with :data:`REDUCED_SETTINGS`): the
        full m axis; r, ρ on 6 and 5 log-spaced values over the same ranges;
        δ ∈ {0, .3, 1.2, 5}, ℓ ∈ {0, 2, 4}, κ ∈ {0, .1, 1, 10, 100}."""
        full = cls.full()
        return cls(m=full.m, r=_round(np.geomspace(0.5, 100.0, 6)), delta=(0.0, 0.3, 1.2, 5.0),
                   ell=(0.0, 2.0, 4.0), rho=_round(np.geomspace(0.03, 30.0, 5)),
                   kappa=(0.0, 0.1, 1.0, 10.0, 100.0))

    @classmethod
    def from_dict(cls, data: dict) -> "Grid":
        return cls(**{k: tuple(float(v) for v in data[k]) for k in AXES})

    def to_dict(self) -> dict:
        return {k: list(getattr(self, k)) for k in AXES}

    def __post_init__(self):
        for k in AXES:
            values = np.asarray(getattr(self, k), float)
            if values.ndim != 1 or len(values) < 1 or np.any(np.diff(values) <= 0):
                raise ValueError(f"grid axis {k} must hold increasing values")

    @property
    def shape(self) -> tuple:
        return tuple(len(getattr(self, k)) for k in AXES)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def axis(self, name: str) -> np.ndarray:
        return np.asarray(getattr(self, name), float)

    def nodes(self) -> dict:
        """Every node's values, flattened in C order (arrays of length ``size``)."""
        mesh = np.meshgrid(*(self.axis(k) for k in AXES), indexing="ij")
        return {k: v.ravel() for k, v in zip(AXES, mesh)}

    def unique_nodes(self) -> tuple[dict, np.ndarray]:
        """Nodes to simulate and, for each grid node, which of them it is: with δ = 0 the
        exponential term and hence ℓ drop out, so those nodes are simulated once."""
        nodes = self.nodes()
        ell0 = self.axis("ell")[0]
        canonical = nodes | {"ell": np.where(nodes["delta"] <= 0, ell0, nodes["ell"])}
        keys = np.stack([canonical[k] for k in AXES], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        return {k: unique[:, i] for i, k in enumerate(AXES)}, inverse.ravel()

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict()).encode()).hexdigest()


def _round(values) -> tuple:
    return tuple(float(f"{v:.6g}") for v in values)
