"""Loss terms a gradient fit adds to validate's d² (spec rsnn.md §5): the recording's unit-rate
quantiles (Huber, κ 2 Hz), its Fano curve (log10 F at 10 widths from 1 ms to T/2), and the
power of one band of the E population rate held inside a rate range by a hinge.

Raw band power alone is gameable: a network can raise it by changing its rate (a ×1983 power
gain with the E rate going from 21 to 0 Hz, rsnn-research.md §2.4), so ``band`` needs
``rate_range``. The targets are computed from the recording with the same torch functions
the model's terms use, so the definitions cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from ..features.spikedata import bin_index
from ..rsnn import features as F

HUBER_KAPPA = 2.0      # Hz, rate-quantile Huber scale (V's 0.002 per ms)
FANO_WIDTHS = 10       # widths of the Fano curve, log-spaced 1 ms .. T/2
FANO_SCALE = 0.05      # decades of log10 F per unit of loss
RATE_SCALE = 1.0       # Hz: the hinge's (rate outside the range)² is in units of this²
TERMS = ("rate_quantiles", "fano_curve")


def check_terms(terms, band, rate_range) -> None:
    """Refuse unknown terms and ``band`` without ``rate_range`` (one clear message each)."""
    unknown = [t for t in terms if t not in TERMS]
    if unknown:
        raise UserError(f"gradient fit: unknown loss term(s) {unknown}; known: {list(TERMS)} "
                        "(d2 is always included)")
    if band is not None:
        lo, hi = band
        if not 0 < lo < hi <= 495:
            raise UserError(f"--band {lo:g} {hi:g}: give 0 < F1 < F2 <= 495 Hz")
        if rate_range is None:
            raise UserError("--band needs --rate-range LO HI: raw band power is gameable, a "
                            "network raises it by changing its rate (in a test, ×1983 power "
                            "while the E rate fell from 21 to 0 Hz), so the E rate must be held "
                            "inside a range by a hinge")
    if rate_range is not None and not 0 <= rate_range[0] < rate_range[1]:
        raise UserError(f"--rate-range {rate_range[0]:g} {rate_range[1]:g}: give 0 <= LO < HI (Hz)")


def recording_counts(data) -> torch.Tensor:
    """(1, T, n_units) 1 ms spike counts of a recording (its listed units, silent ones too)."""
    T = int(np.floor(data.duration / F.BIN + 1e-9))
    counts = np.zeros((T, data.n_units))
    column = np.searchsorted(np.asarray(data.units), data.unit_ids)
    row = bin_index(data.times, F.BIN)
    keep = (row >= 0) & (row < T)
    np.add.at(counts, (row[keep], column[keep]), 1)
    return torch.as_tensor(counts)[None]


def fano_widths(T: int) -> np.ndarray:
    """Widths (s) of the Fano curve for T 1 ms bins: log-spaced 1 ms .. T/2, whole ms."""
    return np.unique(np.round(np.geomspace(1, max(2, T // 2), FANO_WIDTHS))) * F.BIN


def fano_curve(counts: torch.Tensor, widths) -> torch.Tensor:
    """(B, len(widths)) log10 Fano factor of the pooled count at each width."""
    return torch.stack([F.log10_floor(F.fano(counts, w)) for w in widths], 1)


def make_extra(terms, band, rate_range, recording, model_bins: int):
    """``extra(counts, counts_e, n_e) -> (B,)`` for ``fit_theta`` (None when nothing is
    added), with the recording's targets; ``model_bins``: 1 ms bins the model's window has."""
    check_terms(terms, band, rate_range)
    parts = []
    if "rate_quantiles" in terms:
        rates = np.sort(F.unit_rates(recording_counts(recording))[0].numpy())

        def quantiles(counts, counts_e, n_e):
            model = torch.sort(F.unit_rates(counts), 1).values
            p = (np.arange(model.shape[1]) + 0.5) / model.shape[1]
            goal = torch.as_tensor(np.quantile(rates, p, method="hazen"), dtype=model.dtype)
            huber = torch.nn.functional.huber_loss(model, goal.expand_as(model), reduction="none",
                                                   delta=HUBER_KAPPA)
            return huber.mean(1) / (HUBER_KAPPA ** 2 / 2)
        parts.append(quantiles)
    if "fano_curve" in terms:
        rec = recording_counts(recording)
        widths = fano_widths(min(rec.shape[1], model_bins))
        goal = fano_curve(rec, widths)[0]
        if not torch.isfinite(goal).all():
            raise UserError("gradient fit: the recording's Fano curve is undefined (too few "
                            "spikes or bins); drop fano_curve from --loss")

        def fano(counts, counts_e, n_e):
            return (((fano_curve(counts, widths) - goal.to(counts.dtype)) / FANO_SCALE) ** 2).mean(1)
        parts.append(fano)
    if band is not None:
        lo, hi = rate_range
        if model_bins < F.PSD_NPERSEG:
            raise UserError(f"--band needs an analysis window of at least {F.PSD_NPERSEG / 1000:g} s "
                            f"(one Welch segment); the simulator's is {model_bins / 1000:g} s")

        def band_term(counts, counts_e, n_e):
            n = torch.tensor(n_e, dtype=counts_e.dtype)[:, None]
            rate = counts_e / n                         # (B, T) spikes per E unit per bin
            power = F.band_power(F.psd(rate.unsqueeze(2)), *band)
            mean_rate = rate.mean(1) / F.BIN
            hinge = (torch.relu(lo - mean_rate) + torch.relu(mean_rate - hi)) / RATE_SCALE
            return -F.log10_floor(power) + hinge ** 2
        parts.append(band_term)
    if not parts:
        return None
    return lambda counts, counts_e, n_e: sum(part(counts, counts_e, n_e) for part in parts)
