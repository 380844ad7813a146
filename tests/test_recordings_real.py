"""Real recordings beside the repository (../shared/data, as CI has it next to the clone):
MEA cultures (GPL, read in place, never copied here) and Neuropixels probes (Apache-2.0)."""

from pathlib import Path

import numpy as np
import pytest

from automind.features import compute_features
from automind.features.bursts import detect_bursts
from automind.features.line_noise import find_lines, with_line_mask
from automind.recordings import read_recording
from automind.recordings.events import population_events

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MEA = DATA / "mea-cultures"
PROBES = DATA / "neuropixels-rat"
needs_mea = pytest.mark.skipif(not MEA.is_dir(), reason=f"MEA recordings not found at {MEA} "
                               "(they live beside the repository, never inside it)")
needs_probes = pytest.mark.skipif(not PROBES.is_dir(),
                                  reason=f"Neuropixels recordings not found at {PROBES}")

# (file, age in DIV, region, listed channels, spikes) as the files' own sCount / meta say
CULTURES = [
    ("C57_CTX_G2CEPHYS1_TC11_DIV07_A.h5", 7, "ctx", 44, 11137),
    ("C57_CTX_G2CEPHYS1_TC11_DIV11_A.h5", 11, "ctx", 56, 103799),
    ("C57_CTX_G2CEPHYS1_TC11_DIV14_A.h5", 14, "ctx", 56, 145643),
    ("C57_CTX_G2CEPHYS1_TC11_DIV18_A.h5", 18, "ctx", 57, 267232),
    ("C57_CTX_G2CEPHYS1_TC11_DIV21_A.h5", 21, "ctx", 56, 328806),
    ("C57_CTX_G2CEPHYS1_TC11_DIV25_A.h5", 25, "ctx", 56, 410656),
    ("C57_CTX_G2CEPHYS1_TC11_DIV29_A.h5", 29, "ctx", 57, 260953),
    ("TC188-DIV07_A.h5", 7, "hpc", 59, 64534),
    ("TC188-DIV11_A.h5", 11, "hpc", 59, 162581),
    ("TC188-DIV14_A.h5", 14, "hpc", 59, 243923),
    ("TC188-DIV18_A.h5", 18, "hpc", 59, 615122),
    ("TC188-DIV21_A.h5", 21, "hpc", 59, 189013),
    ("TC188-DIV26_A.h5", 26, "hpc", 59, 195236),
]


@pytest.fixture(scope="module")
def cultures():
    return {name: read_recording(MEA / name) for name, *_ in CULTURES}


@needs_mea
def test_every_culture_recording_reads_with_its_metadata(cultures):
    assert len(list(MEA.glob("*.h5"))) == len(CULTURES)
    for name, age, region, channels, spikes in CULTURES:
        data = cultures[name]
        assert (data.metadata["age_div"], data.metadata["region"]) == (age, region), name
        assert (data.n_units, data.n_spikes) == (channels, spikes), name
        assert 911.0 <= data.duration <= 911.5 and data.metadata["n_silent"] == 0
        assert data.positions.shape == (channels, 2)
        assert np.all(data.positions % 200 == 0)                  # the 200 µm grid
        assert data.metadata["array"] == "MCS_8x8_200um"


@needs_mea
def test_the_independent_count_gives_the_issues_figures(cultures):
    # issue #13: 319 population events in TC11 DIV 21, 306 in TC188 DIV 14
    assert len(population_events(cultures["C57_CTX_G2CEPHYS1_TC11_DIV21_A.h5"])) == 319
    assert len(population_events(cultures["TC188-DIV14_A.h5"])) == 306


@needs_mea
@pytest.mark.parametrize("name", [c[0] for c in CULTURES if c[1] >= 11])
def test_bursts_agree_with_the_independent_count(cultures, name):
    data = cultures[name]
    events = population_events(data)
    peaks = detect_bursts(data.population_rate(1e-3))["peaks"]
    assert abs(len(peaks) - len(events)) <= 0.25 * len(events)
    # and they are the same events: each event has a burst peak from 0.3 s before its first
    # hot bin to 1 s after, for >= 85 % of events and of bursts
    after = np.searchsorted(peaks, events - 0.3)
    matched = [k < len(peaks) and peaks[k] <= e + 1.0 for k, e in zip(after, events)]
    assert np.mean(matched) >= 0.85
    before = np.searchsorted(events, peaks - 1.0)
    matched = [k < len(events) and events[k] <= p + 0.3 for k, p in zip(before, peaks)]
    assert np.mean(matched) >= 0.85
    features = compute_features(data, "bursts")
    assert features["burst_valid"] == 1.0 and features["burst_num"] == len(peaks)


@needs_probes
def test_line_noise_of_the_T209_insula_is_found_and_masked():
    data = read_recording(PROBES / "T209_2019_05_10.nwb", area="aIC")
    lines = find_lines(data.population_rate(1e-3))
    for expected in (31.375, 120.0, 240.0, 360.0):               # PROVENANCE.md: 30 Hz family
        assert np.min(np.abs(lines - expected)) <= 0.125, (expected, lines)
    assert lines.max() > 450 and lines.min() > 30
    masked = with_line_mask(data)
    raw, fixed = (compute_features(d, "psd") for d in (data, masked))
    assert fixed["psd_120Hz"] < raw["psd_120Hz"] / 5             # the 120 Hz line is gone
    assert fixed["psd_100Hz"] == raw["psd_100Hz"]                 # away from lines: unchanged


@needs_probes
def test_recordings_without_lines_are_left_alone():
    data = read_recording(PROBES / "T224_2019_12_18_bank0.nwb", area="PrL")
    assert len(find_lines(data.population_rate(1e-3))) == 0


@needs_mea
def test_with_the_active_electrodes_only_even_div7_agrees(cultures):
    from automind.recordings.selection import drop_slow_units

    for name, *_ in CULTURES:                    # the count's own selection: >= 0.1 Hz
        data = drop_slow_units(cultures[name], 0.1)
        bursts = len(detect_bursts(data.population_rate(1e-3))["peaks"])
        events = len(population_events(data))
        assert abs(bursts - events) <= 0.1 * events, (name, bursts, events)
