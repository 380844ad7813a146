"""What the CLI does to a recording before features: drop slow units, mask line noise,
each step reported in one line (and recorded in the SpikeData's metadata)."""

from __future__ import annotations

from ..features.spikedata import SpikeData


def prepare_recording(data: SpikeData, min_rate: float | None = None,
                      mask_lines: bool = True) -> tuple[SpikeData, list[str]]:
    """(prepared data, notes to print). ``min_rate`` (Hz) drops slower units
    (``selection.drop_slow_units``); ``mask_lines`` finds line-noise peaks and has the
    spectral features interpolate over them (``features.line_noise``)."""
    from ..features.line_noise import with_line_mask
    from .selection import describe_drop, drop_slow_units

    notes = []
    if min_rate is not None:
        data = drop_slow_units(data, min_rate)
        notes.append(describe_drop(data))
    if mask_lines:
        data = with_line_mask(data)
        lines = data.metadata["masked_lines_hz"]
        if lines:
            shown = ", ".join(f"{f:g}" for f in lines[:12]) + (" ..." if len(lines) > 12 else "")
            notes.append(f"masked {len(lines)} line-noise peak{'s' if len(lines) > 1 else ''} "
                         f"from the spectral features: {shown} Hz")
    return data, notes


def recording_summary(data: SpikeData) -> dict:
    """What a features report says about the recording it read (JSON-ready)."""
    keys = ("age_div", "region", "n_channels", "n_silent", "min_rate", "dropped_units",
            "masked_lines_hz")
    return {"units": data.n_units, "spikes": data.n_spikes, "duration": data.duration,
            **{k: data.metadata[k] for k in keys if k in data.metadata}}
