"""Targets of inference: a recording file or ``BANK:INDEX`` (one simulation of a bank).

Shared by the CLI, the demo and the studies, so a target means the same thing everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError


def is_bank(path) -> bool:
    return (Path(path) / "bank.json").is_file()


def bank_target(text: str) -> tuple[str, int] | None:
    """(bank folder, index) when ``text`` is BANK:INDEX, else None (a recording path)."""
    folder, _, index = str(text).rpartition(":")
    if not folder or not is_bank(folder):
        return None
    try:
        return folder, int(index)
    except ValueError:
        raise UserError(f"{text}: write BANK:INDEX with an integer index") from None


def read_target(target: str, min_rate: float | None = None, mask_lines: bool = False,
                report=None, **recording_options):
    """The target's ``SpikeData``: a recording (read with ``read_recording`` and these options:
    fmt, duration, fs, area, quality; then units below ``min_rate`` Hz dropped and line noise
    masked, each step passed to ``report`` as one line: ``recordings.prepare``) or a stored
    simulation of a bank that kept spikes (from the bank's analysis start on)."""
    from ..features.spikedata import SpikeData
    from ..recordings import read_recording

    hit = bank_target(target)
    if hit is not None:
        from ..bank import Bank

        bank = Bank(hit[0])
        row = bank.table(index_range=(hit[1], hit[1] + 1))
        if len(row["index"]) and row["status"][0] == "screened":
            raise UserError(f"{target} was screened out by the bank's cheap-model screen and "
                            "never simulated: it has no spikes")
        data = SpikeData.from_simulation(bank.spikes(hit[1]), {"path": target, "format": "bank"})
        start = bank.meta["simulator"].get("t_analysis_start", 0.0)
        return data.window(start) if 0 < start < data.duration else data
    from ..recordings.prepare import prepare_recording

    data, notes = prepare_recording(read_recording(target, **recording_options), min_rate,
                                    mask_lines)
    for note in notes if report else ():
        report(note)
    return data


def target_features(posterior, target: str, **recording_options) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw features of the target with the posterior's own feature set, and the true θ when
    the target is a simulation of a bank (stored features are used when the bank has them)."""
    from ..features.sets import get_feature_set

    name = posterior.features.get("set")
    if name is None or name == "imported":
        raise UserError("this posterior was trained on custom features; pass features from Python")
    fs = get_feature_set(name)
    truth = None
    hit = bank_target(target)
    if hit is not None:
        from ..bank import Bank

        bank, index = Bank(hit[0]), hit[1]
        table = bank.table(index_range=(index, index + 1))
        if not len(table["index"]):
            raise UserError(f"simulation {index} is not in bank {hit[0]}")
        truth = table["theta"][0]
        if name in bank.feature_sets:  # use the features stored with the simulation
            data = bank.arrays(features=name, index_range=(index, index + 1))
            if len(data["index"]):
                return data["x"][0].astype(np.float64), truth
    data = read_target(target, **recording_options)
    if name in ("psd", "mk1") and data.duration < 2.0:
        raise UserError(f"{target} lasts {data.duration:g} s; the {name} feature set needs at "
                        "least 2 s (one Welch segment)")
    return fs.compute(data), truth
