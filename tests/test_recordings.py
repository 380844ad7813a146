"""Recording readers: every format gives the SpikeData (and features) its arrays give."""

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from automind.cli import main
from automind.errors import UserError
from automind.features import SpikeData, compute_features
from automind.recordings import read_recording


@pytest.fixture(scope="module")
def spikes():
    rng = np.random.default_rng(0)
    counts = rng.poisson(40, 12)
    ids = np.repeat(np.arange(12), counts)
    times = np.round(rng.uniform(0, 8.0, counts.sum()), 4)  # whole samples at 10 kHz
    return times, ids, 8.0


def same(a: SpikeData, b: SpikeData):
    np.testing.assert_allclose(a.times, b.times, atol=1e-9)
    np.testing.assert_array_equal(a.unit_ids, b.unit_ids)
    assert a.duration == pytest.approx(b.duration)


def test_npz_spike_times(tmp_path, spikes):
    times, ids, duration = spikes
    np.savez(tmp_path / "r.npz", spike_times=times, unit_ids=ids, duration=duration)
    same(read_recording(tmp_path / "r.npz"), SpikeData(times, ids, duration))


def test_automind_example_layout(tmp_path, spikes):
    times, ids, duration = spikes
    fs = 10000.0
    trains = np.empty(12, dtype=object)
    for k in range(12):
        trains[k] = np.round(np.sort(times[ids == k]) * fs).astype(np.int64)
    np.savez(tmp_path / "a.npz", spikes=trains, fs=fs, t_end=duration)
    same(read_recording(tmp_path / "a.npz"), SpikeData(times, ids, duration))


def test_mea_electrode_lists(tmp_path, spikes):
    times, ids, duration = spikes
    fs = 10000.0
    np.savez(tmp_path / "mea.npz", electrodes=ids + 100, samples=np.round(times * fs), fs=fs,
             n_samples=int(duration * fs))
    data = read_recording(tmp_path / "mea.npz")
    same(data, SpikeData(times, ids + 100, duration))
    csv = tmp_path / "mea.csv"
    csv.write_text("electrode,sample\n" + "".join(f"{e},{int(round(t * fs))}\n"
                                                  for e, t in zip(ids, times)))
    same(read_recording(csv, fs=fs, duration=duration), SpikeData(times, ids, duration))
    with pytest.raises(UserError, match="sampling rate"):
        read_recording(csv)


def test_csv_unit_time(tmp_path, spikes):
    times, ids, duration = spikes
    csv = tmp_path / "r.csv"
    csv.write_text("unit,time\n" + "".join(f"{u},{float(t)!r}\n" for u, t in zip(ids, times)))
    same(read_recording(csv, duration=duration), SpikeData(times, ids, duration))
    bad = tmp_path / "bad.csv"
    bad.write_text("neuron,when\n1,2\n")
    with pytest.raises(UserError, match="header must be"):
        read_recording(bad)


def write_nwb(path, times, ids, duration):
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="test", identifier="t1",
                  session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    device = nwb.create_device("probe")
    nwb.add_unit_column("quality", "curation label")
    nwb.add_unit_column("isi_violations", "ISI violation rate")
    groups = {}
    for k, area in enumerate(("VISp", "CA1")):
        groups[area] = nwb.create_electrode_group(f"shank{k}", "shank", area, device)
        for _ in range(2):
            nwb.add_electrode(group=groups[area], location=area)
    for unit in range(12):
        area = "VISp" if unit < 6 else "CA1"
        electrode = 0 if area == "VISp" else 2
        nwb.add_unit(spike_times=np.sort(times[ids == unit]), electrodes=[electrode],
                     electrode_group=groups[area], quality="good" if unit % 3 else "mua",
                     isi_violations=unit / 10, obs_intervals=[[0.0, duration]])
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def test_nwb_round_trip_and_filters(tmp_path, spikes):
    times, ids, duration = spikes
    path = tmp_path / "session.nwb"
    write_nwb(path, times, ids, duration)
    data = read_recording(path)
    reference = SpikeData(times, ids, duration)
    same(data, reference)
    assert compute_features(data, "spikes") == pytest.approx(compute_features(reference, "spikes"),
                                                             nan_ok=True)
    assert set(data.groups) == {"VISp", "CA1"}
    visp = read_recording(path, area="VISp")
    assert set(np.unique(visp.unit_ids)) == set(range(6))
    good = read_recording(path, quality=["quality==good", "isi_violations<0.75"])
    assert set(np.unique(good.unit_ids)) == {1, 2, 4, 5, 7}
    with pytest.raises(UserError, match="no units in area 'LGN'"):
        read_recording(path, area="LGN")
    with pytest.raises(UserError, match="columns"):
        read_recording(path, quality=["snr>3"])


def test_features_cli_on_a_recording(tmp_path, spikes, capsys):
    times, ids, duration = spikes
    np.savez(tmp_path / "r.npz", spike_times=times, unit_ids=ids, duration=duration)
    assert main(["features", str(tmp_path / "r.npz"), "--set", "spikes", "--json"]) == 0
    values = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = compute_features(SpikeData(times, ids, duration), "spikes")
    assert values["rate_mean"] == pytest.approx(expected["rate_mean"])
    assert main(["plot", str(tmp_path / "r.npz"), "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").stat().st_size > 10000


@pytest.mark.parametrize("content, message", [
    (dict(spike_times=np.array([1.0, np.nan]), unit_ids=np.array([0, 1]), duration=2.0), "NaN"),
    (dict(spike_times=np.array([-1.0, 1.0]), unit_ids=np.array([0, 1]), duration=2.0), "negative"),
    (dict(spike_times=np.zeros(0), unit_ids=np.zeros(0, int)), "no spikes and no duration"),
    (dict(foo=np.zeros(3)), "expected arrays"),
])
def test_bad_recordings_one_clear_message(tmp_path, capsys, content, message):
    np.savez(tmp_path / "bad.npz", **content)
    assert main(["features", str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_file_and_unknown_format(tmp_path, capsys):
    assert main(["features", str(tmp_path / "nothing.npz")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hi")
    assert main(["features", str(tmp_path / "x.txt")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err


def test_features_json_gives_the_spectrum_as_arrays(tmp_path, spikes, capsys):
    times, ids, _ = spikes
    np.savez(tmp_path / "r.npz", spike_times=times, unit_ids=ids, duration=8.0)
    assert main(["features", str(tmp_path / "r.npz"), "--set", "mk1", "--json"]) == 0
    values = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(values["psd"]) == len(values["psd_freqs"]) == 990
    assert values["psd_freqs"][0] == 0.5 and "rate_mean" in values and "burst_valid" in values
