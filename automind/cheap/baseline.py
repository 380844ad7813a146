"""The analytic transfer function the table must beat (spec §4): the same solver with Φ from
the coloured-noise Siegert formula (LIF at θ*, the exponential term ignored) and the
noise-free ISI, instead of the simulated table."""

from __future__ import annotations

import numpy as np

from . import analytic


class AnalyticPhi:
    """Drop-in for :class:`table.Table` in the networks: ``lookup(inputs)``."""

    key = "analytic-siegert"

    def lookup(self, inputs, cv: bool = True):
        m, r, rho, kappa = (np.asarray(getattr(inputs, k), float) for k in ("m", "r", "rho", "kappa"))
        det = np.asarray(inputs.deterministic, bool)
        shape = np.broadcast(m, r, rho, kappa, det).shape
        m, r, rho, kappa, det = (np.broadcast_to(v, shape) for v in (m, r, rho, kappa, det))
        log_rate = analytic.log10_siegert(m, r, rho, np.where(det, 0.0, kappa))
        if det.any():
            with np.errstate(divide="ignore"):
                log_rate = np.where(det, np.log10(analytic.deterministic_rate(
                    m, r, np.zeros(shape), np.zeros(shape), rho)), log_rate)
        return log_rate, (np.where(det, 0.0, 1.0) if cv else None), det.copy()
