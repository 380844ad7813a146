"""Degenerate gradient fits (spec rsnn.md §5a): a loss can be lowered by solutions that only
game it. A raw band-power loss was raised ×1983 on held-out seeds by silencing the E
population (rsnn-research.md §2.4: E rate 21 → 0 Hz, the band's share of the power
unchanged), so every Brian2 re-simulation of a fit is checked: a fit is ``degenerate`` when
its E rate is below ``MIN_RATE_E`` or, for ``--band`` fits, when the band's share of the E
rate's power over ``SHARE_RANGE`` rose by less than ``MIN_SHARE_GAIN`` over its start's."""

from __future__ import annotations

import numpy as np

#: Hz: an E population slower than this is silent, whatever the loss says
MIN_RATE_E = 0.5
#: the band's share of the power must rise by at least this fraction over the start's
MIN_SHARE_GAIN = 0.10
#: Hz: the total the band's share is taken of
SHARE_RANGE = (1.0, 200.0)


def activity(result, t_start: float, band: tuple | None) -> tuple[float, float]:
    """(E rate in Hz, the band's share of the E rate's power over SHARE_RANGE, NaN without a
    band or a spectrum) of one simulation after ``t_start``."""
    from ..features.sets import PSD_BIN, PSD_SEGMENT
    from ..features.spikedata import SpikeData

    spikes = SpikeData.from_simulation(result).window(t_start)
    e = spikes.select("E") if "E" in spikes.groups else spikes
    rate_e = e.n_spikes / (max(e.n_units, 1) * e.duration) if e.duration > 0 else np.nan
    return rate_e, band_share(e.population_rate(PSD_BIN), band, PSD_SEGMENT) if band else np.nan


def band_share(rate: np.ndarray, band: tuple, segment: float) -> float:
    """Power in ``band`` over power in SHARE_RANGE of a population rate in the PSD features'
    bins (Welch, as those features); NaN when there is no power."""
    from ..features.psd import rate_psd
    from ..features.sets import PSD_BIN

    freqs, psd = rate_psd(rate, PSD_BIN, segment, fmin=SHARE_RANGE[0], fmax=SHARE_RANGE[1])
    total = psd.sum()
    if not len(psd) or total <= 0:
        return float("nan")
    return float(psd[(freqs >= band[0]) & (freqs <= band[1])].sum() / total)


def degenerate(rate_e: np.ndarray, share_fit: np.ndarray | None = None,
               share_start: np.ndarray | None = None) -> np.ndarray:
    """Per fit: E rate below MIN_RATE_E (NaN — not simulated — is not flagged), or, given the
    band's shares, a share that rose by less than MIN_SHARE_GAIN relative to the start's."""
    rate_e = np.asarray(rate_e, float)
    flagged = np.nan_to_num(rate_e, nan=np.inf) < MIN_RATE_E
    if share_fit is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = np.asarray(share_fit, float) / np.asarray(share_start, float) - 1
        flagged |= np.nan_to_num(gain, nan=np.inf) < MIN_SHARE_GAIN
    return flagged
