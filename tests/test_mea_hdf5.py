"""MEA HDF5 spike lists (sjemea / meaRtools layout), Neo files and --min-rate, on files
written here with known content (the real recordings are tested in test_recordings_real)."""

import h5py
import numpy as np
import pytest

from automind.errors import UserError
from automind.features import SpikeData, compute_features
from automind.recordings import read_recording
from automind.recordings.mea_hdf5 import hdf5_kind
from automind.recordings.selection import describe_drop, drop_slow_units

START, END = 10.0, 40.0
TRAINS = [np.array([10.5, 11.0, 12.25, 30.0]), np.array([]), np.array([15.0, 39.5]),
          np.array([10.0 + 0.01 * k for k in range(200)])]          # 4 channels, one silent
NAMES = [b"ch_12A_unit_0", b"ch_13A_unit_0", b"ch_21A_unit_0", b"ch_22A_unit_0"]
EPOS = np.array([[200.0, 200.0, 400.0, 400.0], [1400.0, 1200.0, 1400.0, 1200.0]])


def write_mea(path, trains=TRAINS, names=NAMES, epos=EPOS, span=(START, END), meta=True,
              counts=None):
    with h5py.File(path, "w") as handle:
        handle["spikes"] = np.concatenate([np.asarray(t, float) for t in trains])
        handle["sCount"] = np.array([len(t) for t in trains] if counts is None else counts, np.int32)
        if names is not None:
            handle["names"] = np.array(names)
        if epos is not None:
            handle["epos"] = epos
        if span is not None:
            handle["recordingtime"] = np.array(span)
        if meta:
            handle["array"] = np.array([b"MCS_8x8_200um"])
            handle["meta/age"] = np.array([14], np.int32)
            handle["meta/region"] = np.array([b"ctx"])
    return path


def test_reads_every_channel_as_a_unit_with_positions_and_metadata(tmp_path):
    data = read_recording(write_mea(tmp_path / "culture.h5"))
    assert data.n_units == 4 and data.duration == pytest.approx(END - START)
    np.testing.assert_allclose(data.times[data.unit_ids == 0], TRAINS[0] - START)
    np.testing.assert_allclose(data.positions, EPOS.T)
    assert data.metadata["age_div"] == 14 and data.metadata["region"] == "ctx"
    assert data.metadata["array"] == "MCS_8x8_200um"
    assert data.metadata["n_silent"] == 1 and data.metadata["unit_names"][1] == "ch_13A_unit_0"
    # the silent listed channel counts: rate_mean = all spikes / (4 units x 30 s)
    n_spikes = sum(len(t) for t in TRAINS)
    assert compute_features(data, "spikes")["rate_mean"] == pytest.approx(n_spikes / (4 * 30.0))


def test_chosen_by_content_and_optional_fields_may_be_absent(tmp_path):
    path = write_mea(tmp_path / "culture.dat", epos=None, span=None, meta=False, names=None)
    assert hdf5_kind(path) == "mea"
    data = read_recording(path)
    assert data.n_units == 4 and data.positions is None
    assert data.duration == pytest.approx(39.5)           # the last spike, without recordingtime
    assert data.metadata["unit_names"][2] == "ch_2"
    np.testing.assert_allclose(data.times[data.unit_ids == 2], TRAINS[2])


def test_positions_follow_selection(tmp_path):
    data = read_recording(write_mea(tmp_path / "c.h5"))
    kept = drop_slow_units(data, 0.1)                      # 4/30, 0, 2/30, 200/30 Hz
    np.testing.assert_array_equal(kept.units, [0, 3])
    np.testing.assert_allclose(kept.positions, EPOS.T[[0, 3]])
    assert kept.metadata["dropped_units"] == ["ch_13A_unit_0", "ch_21A_unit_0"]
    assert describe_drop(kept) == ("--min-rate 0.1 Hz: kept 2 of 4 units, dropped 2 "
                                   "(ch_13A_unit_0, ch_21A_unit_0)")
    assert kept.n_spikes == len(TRAINS[0]) + len(TRAINS[3])
    with pytest.raises(UserError, match="no active electrode: none of 4 units fires at >= 100 Hz"):
        drop_slow_units(data, 100.0)


def truncated(path):
    raw = write_mea(path.with_suffix(".full"), trains=[np.arange(2000) * 0.01]).read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def text_file(path):
    path.write_text("spikes,sCount\n1,2\n")
    return path


BAD = {
    "not HDF5": (text_file, "not an HDF5 file"),
    "truncated": (truncated, "unreadable HDF5 file"),
    "sCount mismatch": (lambda p: write_mea(p, counts=[4, 0, 2, 201]),
                        "sCount adds up to 207 spikes but spikes holds 206"),
    "names mismatch": (lambda p: write_mea(p, names=NAMES[:3]), "3 channel names but 4 sCount"),
    "negative": (lambda p: write_mea(p, span=(20.0, 40.0)), "before the recording start"),
    "unsorted": (lambda p: write_mea(p, trains=[TRAINS[0][::-1]] + TRAINS[1:]),
                 "spike times of channel ch_12A_unit_0 are not sorted"),
    "no active electrode": (lambda p: write_mea(p, trains=[[], [], [], []]),
                            "no active electrode"),
    "other HDF5": (lambda p: h5py.File(p, "w").close() or p, "without spikes and sCount"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_one_clear_message(tmp_path, case):
    make, message = BAD[case]
    path = make(tmp_path / "bad.h5")
    with pytest.raises(UserError) as err:
        read_recording(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_neo_files_read_through_neo(tmp_path):
    neo = pytest.importorskip("neo")
    import quantities as pq

    block = neo.Block()
    segment = neo.Segment()
    block.segments.append(segment)
    for k, train in enumerate(TRAINS):
        segment.spiketrains.append(neo.SpikeTrain(train * pq.s, t_start=START * pq.s,
                                                  t_stop=END * pq.s, name=f"unit{k}"))
    path = tmp_path / "session.mat"
    neo.io.NeoMatlabIO(str(path)).write_block(block)
    data = read_recording(path)
    direct = read_recording(write_mea(tmp_path / "same.h5"))
    np.testing.assert_allclose(data.times, direct.times)
    np.testing.assert_array_equal(data.unit_ids, direct.unit_ids)
    assert data.n_units == 4 and data.duration == pytest.approx(END - START)
    assert data.metadata["unit_names"] == ["unit0", "unit1", "unit2", "unit3"]
    (tmp_path / "junk.mat").write_bytes(b"\x00" * 300)
    with pytest.raises(UserError, match="NeoMatlabIO cannot read it"):
        read_recording(tmp_path / "junk.mat")
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UserError, match="refusing PickleIO"):
        read_recording(tmp_path / "x.pkl")


def test_spikedata_positions_must_match_units():
    with pytest.raises(UserError, match="one row per unit"):
        SpikeData(np.array([1.0]), np.array([0]), 2.0, positions=np.zeros((2, 2)))
    data = SpikeData(np.array([1.0, 1.5]), np.array([5, 2]), 2.0, units=[5, 2],
                     positions=[[0.0, 5.0], [0.0, 2.0]])
    np.testing.assert_allclose(data.positions[:, 1], [2.0, 5.0])   # sorted with the units


def test_prepare_reports_each_step(tmp_path):
    from automind.recordings.prepare import prepare_recording, recording_summary

    data = read_recording(write_mea(tmp_path / "c.h5"))
    prepared, notes = prepare_recording(data, min_rate=0.1)
    assert notes == ["--min-rate 0.1 Hz: kept 2 of 4 units, dropped 2 (ch_13A_unit_0, "
                     "ch_21A_unit_0)"]                         # 30 s: too short to find lines
    summary = recording_summary(prepared)
    assert summary["units"] == 2 and summary["masked_lines_hz"] == []
    assert summary["dropped_units"] == ["ch_13A_unit_0", "ch_21A_unit_0"]
    assert summary["age_div"] == 14 and summary["n_silent"] == 1


def test_features_cli_reports_min_rate_and_bad_files(tmp_path, capsys):
    import json

    from automind.cli import main

    path = write_mea(tmp_path / "culture.h5")
    assert main(["features", str(path), "--set", "spikes", "--min-rate", "0.1", "--json"]) == 0
    captured = capsys.readouterr()
    values = json.loads(captured.out.strip().splitlines()[-1])
    assert values["recording"]["units"] == 2 and values["recording"]["age_div"] == 14
    assert values["recording"]["dropped_units"] == ["ch_13A_unit_0", "ch_21A_unit_0"]
    assert values["rate_mean"] == pytest.approx((4 / 30 + 200 / 30) / 2)
    assert captured.err.strip() == ("note: --min-rate 0.1 Hz: kept 2 of 4 units, dropped 2 "
                                    "(ch_13A_unit_0, ch_21A_unit_0)")
    bad = write_mea(tmp_path / "bad.h5", counts=[4, 0, 2, 201])
    assert main(["features", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sCount adds up to 207" in err and str(bad) in err


def test_damaged_files_give_one_clear_message(tmp_path):
    """Truncations and byte flips of a valid file: read, or a UserError — never h5py's own
    exceptions (it raises OSError, RuntimeError, ... for corrupt internals)."""
    raw = write_mea(tmp_path / "base.h5").read_bytes()
    rng = np.random.default_rng(0)
    outcomes = []
    for k in range(90):
        damaged = bytearray(raw[: rng.integers(0, len(raw))] if k % 3 == 0 else raw)
        for _ in range(0 if k % 3 == 0 else rng.integers(1, 20)):
            damaged[rng.integers(0, len(damaged))] = rng.integers(0, 256)
        path = tmp_path / f"damaged{k}.h5"
        path.write_bytes(bytes(damaged))
        try:
            read_recording(path)
            outcomes.append("read")
        except UserError as err:
            assert "\n" not in str(err) and str(path) in str(err)
            outcomes.append("refused")
    assert outcomes.count("refused") > 45
