"""The Potjans & Diesmann (2014) microcircuit tables and the in-degrees derived from them.

Numbers from the NEST example (pynest/examples/Potjans_2014/network_params.py), as listed in
shared/spec/rsnn.md §6. Order everywhere: L2/3E, L2/3I, L4E, L4I, L5E, L5I, L6E, L6I.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError

POPULATIONS = ("L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I")
LAYERS = ("L23", "L4", "L5", "L6")
EXCITATORY = np.array([name.endswith("E") for name in POPULATIONS])

#: full-scale population sizes
N = np.array([20683, 5834, 21915, 5479, 4850, 1065, 14395, 2948], dtype=np.float64)
#: background (external Poisson) in-degrees, each source at NU_BG
K_EXT = np.array([1600, 1500, 2100, 1900, 2000, 1900, 2900, 2100], dtype=np.float64)
NU_BG = 8.0  # Hz

#: connection probabilities C[target][source]
C = np.array([
    [.1009, .1689, .0437, .0818, .0323, 0, .0076, 0],
    [.1346, .1371, .0316, .0515, .0755, 0, .0042, 0],
    [.0077, .0059, .0497, .1350, .0067, .0003, .0453, 0],
    [.0691, .0029, .0794, .1597, .0033, 0, .1057, 0],
    [.1004, .0622, .0505, .0057, .0831, .3726, .0204, 0],
    [.0548, .0269, .0257, .0022, .0600, .3158, .0086, 0],
    [.0156, .0066, .0211, .0166, .0572, .0197, .0396, .2252],
    [.0364, .0010, .0034, .0005, .0277, .0080, .0658, .1443],
])

#: full-scale spiking-model mean rates (Hz), NEST example `full_mean_rates`
PD_SPIKING_RATES = np.array([0.971, 2.868, 4.746, 5.396, 8.142, 9.078, 0.991, 7.523])

#: population aliases accepted in specs and on the command line
_ALIASES = {name.replace("L23", "L2/3"): name for name in POPULATIONS if name.startswith("L23")}


def population_index(name: str) -> int:
    """Index of a population name (``L23E`` or ``L2/3E``); UserError for an unknown name."""
    canonical = _ALIASES.get(name, name)
    try:
        return POPULATIONS.index(canonical)
    except ValueError:
        raise UserError(f"unknown population {name!r}; use one of {', '.join(POPULATIONS)}") from None


def in_degrees(l4_to_l23_gain: float = 2.0, sizes: np.ndarray | None = None) -> np.ndarray:
    """In-degrees K[target][source]: total synapses ln(1 - C)/ln(1 - 1/(N_post N_pre)) per
    target neuron (outer product of the sizes; PD's ``N`` unless ``sizes`` are given). The
    L4E -> L2/3E probability is multiplied by ``l4_to_l23_gain`` (2: the DMF's doubling; PD
    double that pathway's weight instead)."""
    prob = C.copy()
    prob[0, 2] *= l4_to_l23_gain
    if not np.all((prob >= 0) & (prob < 1)):
        raise UserError(f"l4_to_l23_gain {l4_to_l23_gain:g} makes a connection probability "
                        "leave [0, 1)")
    sizes = N if sizes is None else np.asarray(sizes, dtype=np.float64)
    pairs = np.outer(sizes, sizes)
    total = np.log1p(-prob) / np.log1p(-1.0 / pairs)
    return total / sizes[:, None]
