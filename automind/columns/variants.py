"""The ODE-Column parameterisation of the laminar column (ccnmaastricht/ODE-Column,
config/model.toml and src/coupled_columns.py; shared/spec/rsnn-research.md §3.3), the one
its WTA and XOR scripts train. Re-implemented from the published constants; no code copied.

It differs from the Evers DMF (``variant = "evers"``, the PD-faithful column) in: population
sizes from a per-area table divided by the number of columns of the net; one background
in-degree (2510) for every population; inhibitory weights -N_E/N_I J per layer instead of
-4 J; τ_m = 20 ms (so R = τ_m/C_m = 80); the L4E -> L2/3E probability 0.0880; and
adaptation of L2/3E (κ = 1.5, τ_a = 10 s; rate f(H - A)). The background in-degrees are what
makes its L2/3E rise monotonically with L4 drive (docs/columns.md, "Why WTA failed").
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from . import pd

#: population sizes per visual area (ODE-Column config/model.toml), order as pd.POPULATIONS
AREA_SIZES = {
    "v1": (47386, 13366, 70387, 17597, 20740, 4554, 19839, 4063),
    "v2": (50521, 14250, 36685, 9171, 19079, 4189, 19248, 3941),
    "v3": (58475, 16494, 47428, 11857, 12056, 2647, 14529, 2975),
    "v3a": (40887, 11532, 23789, 5947, 12671, 2782, 15218, 3116),
    "mt": (60606, 17095, 28202, 7050, 14176, 3113, 15837, 3243),
    "mstd": (44343, 12507, 22524, 5631, 14742, 3237, 17704, 3625),
    "lip": (51983, 14662, 20095, 5024, 11630, 2554, 28115, 5757),
    "fef": (44053, 12425, 23143, 5786, 16943, 3720, 16128, 3302),
    "fst": (36337, 10249, 12503, 3126, 12624, 2772, 15160, 3104),
}
K_BACKGROUND = 2510.0            # every population's background in-degree
P_L4E_TO_L23E = 0.0880           # replaces C[L2/3E][L4E] = 0.0437 (x 2.014)
L4_TO_L23_GAIN = P_L4E_TO_L23E / pd.C[0, 2]


def sizes(area: str, divisor: float = 1.0) -> np.ndarray:
    try:
        table = AREA_SIZES[area.lower()]
    except KeyError:
        raise UserError(f"unknown area {area!r}; use one of {', '.join(AREA_SIZES)}") from None
    if not divisor >= 1:
        raise UserError(f"size_divisor must be >= 1, got {divisor!r}")
    return np.asarray(table, dtype=np.float64) / divisor


def weights(params) -> tuple[np.ndarray, np.ndarray]:
    """(W (8, 8), drive (8,)) of one ODE-Column column for ``params`` (a DMFParams)."""
    N = sizes(params.area, params.size_divisor)
    J = np.full(8, params.J_E)
    J[1::2] = -N[0::2] / N[1::2] * params.J_E    # -N_E/N_I per layer
    W = pd.in_degrees(params.l4_to_l23_gain, N) * J[None, :]
    return W, np.full(8, K_BACKGROUND) * params.J_E * params.nu_bg
