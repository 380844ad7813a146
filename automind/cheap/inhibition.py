"""Slow, granular inhibition: the table's rate blended with its quasi-static average over the
inhibitory conductance's own distribution (docs/cheap.md, "The asynchronous rate error").

The table describes the synaptic input as Gaussian noise with one correlation time. Where
inhibition arrives in few, large events that are slow against the membrane (κ_i = τ_i/τ_eff
large), neurons fire in the gaps between them, which the Gaussian tail misses (single Brian2
neurons fire up to several-fold more deep in the tail). The quasi-static limit averages the
table's rate over the stationary distribution of the inhibitory conductance — exponentially
filtered Poisson events, in units of one quantum the generalized Dickman distribution with
parameter n = λτ_i (the events per τ_i) — with the inhibitory noise then frozen; the fast
limit is the table itself. Between them: log ν = (1 − w) log ν_table + w log ν_quasi-static,
w = κ_i/(1 + κ_i).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .moments import Drive, dimensionless, membrane

#: equal-probability bins of the inhibitory conductance per evaluation (each one table lookup)
NODES = 8
#: events per τ_i tabulated (log grid); beyond it the nearest end is used
EVENTS = np.geomspace(0.01, 100.0, 33)


@lru_cache(maxsize=None)
def conductance_samples(samples: int = 4000, seed: int = 0) -> np.ndarray:
    """(samples, len(EVENTS)) sorted draws of X = Σ_k e^{−T_k} (Poisson arrivals T_k at rate n
    per τ; the generalized Dickman distribution), one column per n of ``EVENTS``. Sampled
    through the perpetuity X = U^{1/n}(1 + X) from X = n, with enough iterations for the start
    to be forgotten (it contracts by n/(n + 1) per iteration)."""
    rng = np.random.default_rng(seed)
    x = np.tile(EVENTS, (samples, 1))
    for _ in range(int(np.ceil((EVENTS[-1] + 1) * np.log(1e5)))):
        x = rng.uniform(size=x.shape) ** (1.0 / EVENTS) * (1.0 + x)
    return np.sort(x, axis=0)


@lru_cache(maxsize=None)
def _node_table(nodes: int = NODES) -> np.ndarray:
    """(len(EVENTS), nodes): the means of ``nodes`` equal-probability bins of X, in units of
    X's mean (they average to exactly 1: quantile midpoints would lose the mean where n ≪ 1
    and a few rare events carry it)."""
    x = conductance_samples()
    bins = x.reshape(nodes, -1, len(EVENTS)).mean(axis=1).T
    return bins / bins.mean(axis=1, keepdims=True)


def conductance_nodes(events) -> np.ndarray:
    """(..., NODES) multipliers of the mean inhibitory conductance at ``events`` per τ_i
    (interpolated in log n); 1 where there are no events (no inhibitory input)."""
    events = np.asarray(events, float)
    table = _node_table()
    finite = np.isfinite(events) & (events > 0)
    x = np.interp(np.log(np.where(finite, events, 1.0)), np.log(EVENTS), np.arange(len(EVENTS)))
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, len(EVENTS) - 1)
    f = (x - lo)[..., None]
    out = (1 - f) * table[lo] + f * table[hi]
    return np.where(finite[..., None], out, 1.0)


def table_rate(table, neuron, drive: Drive, w, cv: bool = False) -> tuple:
    """(ν Hz capped at 1/t_ref, the moments, ISI CV (None unless ``cv``), extrapolated) of the
    table for these inputs: the one step from moments to rate of every caller."""
    mom = membrane(neuron, drive, w)
    log_rate, cvs, extra = table.lookup(dimensionless(neuron, mom), cv=cv)
    return np.minimum(10.0 ** log_rate / mom.tau_eff, 1 / neuron.t_refrac), mom, cvs, extra


def slow_inhibition_rate(table, neuron, drive: Drive, w, rate, mom) -> np.ndarray:
    """The table's ``rate`` (at moments ``mom``) blended with its quasi-static average over
    the inhibitory conductance (module docstring)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        events = np.where(drive.i2 > 0, drive.i1 ** 2 / drive.i2 * neuron.tau_i, np.inf)
    mult = conductance_nodes(events)
    quasi = 0.0
    for j in range(mult.shape[-1]):
        frozen = Drive(drive.e1, drive.e2, drive.i1 * mult[..., j], np.zeros_like(drive.i2))
        quasi = quasi + table_rate(table, neuron, frozen, w)[0] / mult.shape[-1]
    kappa = neuron.tau_i / mom.tau_eff
    weight = kappa / (1 + kappa)
    with np.errstate(divide="ignore"):
        blended = np.exp((1 - weight) * np.log(rate) + weight * np.log(quasi))
    # a rate of zero in either limit (deep below threshold): the other limit decides
    return np.where((rate > 0) & (quasi > 0), blended, np.maximum(rate, quasi))
