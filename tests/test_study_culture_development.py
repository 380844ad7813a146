"""The culture_development study: real MEA recordings (read in place from ../shared/data),
fitted per age with `automind fit`, compared across ages and regions."""

import copy
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from automind.errors import UserError
from automind.features.sets import get_feature_set, resolve_feature_set
from automind.recordings import read_recording
from automind.recordings.events import population_events
from automind.recordings.selection import drop_slow_units
from automind.studies.culture_development import _settings, read_target_data, recordings

STUDY = Path(__file__).resolve().parents[1] / "studies" / "culture_development"
CONFIG = tomllib.loads((STUDY / "study.toml").read_text())
DATA = (Path(__file__).resolve().parents[1] / CONFIG["data"]).resolve()
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"the MEA recordings are not at {DATA} "
                                "(GPL data kept beside the project, see its PROVENANCE.md)")


@needs_data
def test_recordings_come_in_age_order_with_the_features_the_readers_give():
    entries = recordings(CONFIG)
    assert [e["label"] for e in entries] == ["TC11_DIV07", "TC11_DIV11", "TC11_DIV14",
                                             "TC11_DIV21", "TC11_DIV25", "TC188_DIV14"]
    assert [e["age"] for e in entries if e["culture"] == "TC11"] == [7, 11, 14, 21, 25]
    s = _settings(CONFIG, quick=False)
    length = s["duration"] - s["t_analysis_start"]
    for entry in entries:
        data = read_target_data(entry, s, CONFIG["min_rate"])
        fs = get_feature_set(resolve_feature_set(CONFIG["features"], data))
        assert fs.name == f"mea{data.n_units}"  # a virtual MEA of the recording's electrodes
        raw = read_recording(entry["path"])
        rates = np.bincount(raw.unit_ids, minlength=len(raw.units)) / raw.duration
        assert data.n_units == int((rates >= 0.1).sum())
        assert int(data.metadata["age_div"]) == entry["age"]
        assert data.metadata["region"] == entry["region"]
        # the target is one window of a simulated run's analysed length, the one whose
        # population-event count is the median over the recording's windows
        start, stop = data.metadata["target_window_s"]
        assert stop - start == pytest.approx(length) and data.duration == pytest.approx(length)
        kept = drop_slow_units(raw, 0.1)
        events = population_events(kept)
        n = int(kept.duration // length)
        counts = np.histogram(events, bins=n, range=(0, n * length))[0]
        assert counts[int(round(start / length))] == counts[np.argmin(np.abs(counts - np.median(counts)))]
        expected = fs.compute(kept.window(start, stop))
        np.testing.assert_allclose(fs.compute(data), expected, equal_nan=True)
    # PROVENANCE.md's figures for TC11 DIV 7: 20 electrodes active at >= 0.1 Hz, 0.56 Hz
    first = read_target_data(entries[0], s, CONFIG["min_rate"], whole=True)
    fs = get_feature_set(resolve_feature_set(CONFIG["features"], first))
    names = list(fs.names)
    assert first.n_units == 20 and first.duration > 900
    assert fs.compute(first)[names.index("rate_mean")] == pytest.approx(0.56, abs=0.01)


@needs_data
def test_a_study_toml_whose_age_disagrees_with_the_file_is_refused():
    config = copy.deepcopy(CONFIG)
    config["recordings"]["TC11_DIV14"]["age"] = 18
    [entry] = recordings(config, ["TC11_DIV14"])
    with pytest.raises(UserError, match="the file says DIV 14"):
        read_target_data(entry, _settings(config, False), 0.1)
    with pytest.raises(UserError, match="unknown recordings"):
        recordings(config, ["TC11_DIV99"])


def test_an_absent_data_folder_is_one_clear_message(tmp_path):
    config = copy.deepcopy(CONFIG) | {"data": str(tmp_path / "nowhere")}
    with pytest.raises(UserError, match="the MEA recordings are not at"):
        recordings(config)


@needs_data
def test_quick_study_fits_two_regions_and_compares_them(tmp_path, capsys):
    from automind.cli import main

    assert main(["study", "run", str(STUDY), "--quick", "--out", str(tmp_path), "--json",
                 "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = summary["recordings"]
    assert [(r["label"], r["region"], r["age_div"]) for r in rows] == [
        ("TC11_DIV14", "ctx", 14), ("TC188_DIV14", "hpc", 14)]
    budget = summary["settings"]["budget"]
    for row in rows:
        assert row["electrodes"] == 16 and row["duration_s"] == pytest.approx(2.5)
        assert row["recording_duration_s"] > 900 and row["windows"]["n"] == 30
        assert 0 <= row["fit"]["yield"] <= 1 and row["fit"]["simulations"] <= budget
        assert isinstance(row["fit"]["misspecified"], bool)
        # the fit conditioned on exactly the features the study read
        record = json.loads((Path(row["fit"]["run"]) / "fit.json").read_text())
        fit_x = record["target"]["x"]
        assert fit_x == pytest.approx([row["target"][n] for n in row["target"]], nan_ok=True)
        # the fit cut the whole recording to the study's window, on a 16-electrode virtual MEA
        assert record["target"]["window_s"] == pytest.approx(row["target_window_s"])
        assert record["settings"]["features"] == "mea16"
        assert row["ppc"]["shown"] >= 1
        assert all(Path(f).stat().st_size > 5000 for f in row["figures"])
    regions = summary["compare"]["regions"]
    assert regions["compared"] in ("consistent", "posterior")
    assert list(regions["pairs"]) == ["TC11_DIV14 vs TC188_DIV14"]
    assert (tmp_path / "compare_regions" / "compare.json").is_file()
    # the null: TC11 DIV 14 fitted again with another seed, compared with its first fit
    replicate = summary["compare"]["replicate"]
    assert list(replicate["pairs"]) == ["TC11_DIV14 vs TC11_DIV14 replicate"]
    again = json.loads((tmp_path / "work" / "fit_TC11_DIV14_replicate" / "fit.json").read_text())
    first = json.loads((Path(rows[0]["fit"]["run"]) / "fit.json").read_text())
    assert again["settings"]["seed"] == first["settings"]["seed"] + 100
    assert again["target"]["x"] == first["target"]["x"]
