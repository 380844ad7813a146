"""Where the fit's refinement and exploration move θ: each parameter standardised over its prior
box (zero mean, unit sd under a uniform prior), on a log scale where ``space == "log"`` and the
parameter is positive and its bounds span at least a decade (time constants, conductances,
rates), linearly elsewhere; parameters with a log-scale prior are always moved on a log scale
(``space == "prior"`` is then exactly ``Prior.standardise``).

Why: MK1's prior is uniform on a linear scale (AutoMIND's), so a parameter spanning three
decades puts its lowest decade on a sliver of its axis. ``studies/mk1_targets``' target 91, a
5.5 Hz rhythm, needs the E adaptation time constant τ_w (prior 5 ms – 20 s) near the truth's
182 ms to about a percent: moving τ_w alone by ±0.01 prior sd (±58 ms) put re-simulations
28–71 noise sd from the target, while the other parameters moved by ±0.03 prior sd stayed
within 2.3 noise sd except the E synaptic decay τ_ge. The posterior's samples had τ_w at
0.85–19 s (10–90 %) and the refined members wandered over 5 ms – 4 s: a linear Kalman step in prior
units cannot resolve 1 % of 182 ms; a step in log τ_w can.
"""

from __future__ import annotations

import math

import numpy as np

#: how the fit's refinement and exploration move θ
SPACES = ("prior", "log")
#: a positive parameter moves on a log scale (``"log"``) when high / low reaches this
DECADE = 10.0


class SearchSpace:
    """θ <-> standardised search coordinates u for ``prior`` (see the module docstring)."""

    def __init__(self, prior, space: str = "prior"):
        if space not in SPACES:
            raise ValueError(f"space must be one of {SPACES}, not {space!r}")
        low, high = np.asarray(prior.low, float), np.asarray(prior.high, float)
        self.log = np.array([p.scale == "log" for p in prior.parameters], bool)
        if space == "log":
            self.log |= (low > 0) & (high >= DECADE * low)
        f_low, f_high = self._forward(low), self._forward(high)
        self.mean, self.sd = (f_low + f_high) / 2, (f_high - f_low) / math.sqrt(12)
        self.low, self.high = self.to_u(low), self.to_u(high)

    def _forward(self, theta) -> np.ndarray:
        out = np.array(theta, dtype=float, copy=True)
        out[..., self.log] = np.log(out[..., self.log])
        return out

    def to_u(self, theta) -> np.ndarray:
        return (self._forward(theta) - self.mean) / self.sd

    def to_theta(self, u) -> np.ndarray:
        out = np.asarray(u, float) * self.sd + self.mean
        out[..., self.log] = np.exp(out[..., self.log])
        return out

    def clipped(self, u) -> np.ndarray:
        """u clipped into the open prior box (a margin of 1e-6 of its width)."""
        margin = 1e-6 * (self.high - self.low)
        return np.clip(u, self.low + margin, self.high - margin)
