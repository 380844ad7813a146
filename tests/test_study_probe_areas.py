"""The probe_areas study on the real Neuropixels recordings (../shared/data/neuropixels-rat):
per-area targets from the real files, the quick study end to end (misspecification,
posterior predictive check, comparison per recording), clear errors without the data,
and the MK1 hook's call into ``automind fit``."""

import json
from pathlib import Path

import numpy as np
import pytest

from automind.cli import main
from automind.errors import UserError
from automind.features.sets import get_feature_set
from automind.studies import load_study, run_study
from automind.studies import probe_areas

STUDY = Path(__file__).resolve().parents[1] / "studies" / "probe_areas"
DATA = (STUDY / load_study(STUDY)["data"]).resolve()
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"the Neuropixels recordings are not "
                                f"in {DATA} (../shared/data/neuropixels-rat); nothing to read")


@needs_data
def test_area_targets_read_the_real_units_and_their_line_noise():
    """All units of T209 aIC fire at 5.14 Hz (PROVENANCE.md) and carry the 31.4 Hz line and
    its mixtures; its single units carry none; 600 s make 200 windows of 3 s."""
    fs = get_feature_set("spikes")
    path = DATA / "T209_2019_05_10.nwb"
    every = probe_areas.area_target(path, "aIC", [], 3.0, fs)
    assert every["info"]["units"] == 133 and every["info"]["rate_hz"] == pytest.approx(5.14, abs=0.01)
    lines = np.array(every["info"]["masked_lines_hz"])
    assert np.abs(lines - 31.375).min() < 0.1 and np.abs(lines - 120.0).min() < 0.1
    good = probe_areas.area_target(path, "aIC", ["quality==good"], 3.0, fs)
    assert good["info"]["units"] == 86 and good["info"]["masked_lines_hz"] == []
    assert good["info"]["windows"] == 200
    # the target is the per-feature median over windows: its mean rate is the median window's
    data = good["data"]
    per_window = [data.window(3.0 * k, 3.0 * (k + 1)).n_spikes / (86 * 3.0) for k in range(200)]
    assert good["x"][fs.names.index("rate_mean")] == pytest.approx(np.median(per_window))


@needs_data
def test_mk1_check_reads_the_window_the_fit_compared(tmp_path):
    """The MK1 posterior predictive check sets re-simulations beside exactly the fit's target:
    the area's single units over the fit's window (fit.json), in the fit's feature set."""
    import json

    (tmp_path / "fit.json").write_text(json.dumps({"settings": {"features": "mea86"},
                                                   "target": {"window_s": [20.0, 30.0]}}))
    data, fs = probe_areas.fitted_window(DATA / "T209_2019_05_10.nwb", tmp_path, "aIC",
                                         ["quality==good"])
    assert data.n_units == 86 and data.duration == pytest.approx(10.0) and fs.name == "mea86"
    whole = probe_areas.area_target(DATA / "T209_2019_05_10.nwb", "aIC", ["quality==good"], 10.0,
                                    fs)["data"]
    assert data.n_spikes == whole.window(20.0, 30.0).n_spikes > 0


@needs_data
def test_quick_study_checks_every_area_against_the_model(tmp_path, capsys):
    assert main(["study", "run", str(STUDY), "--quick", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["areas"]) == {"T224 PrL", "T224 Cg1", "T209 aIC", "T209 SC",
                                     "T182 Str", "T182 M2"}
    assert set(summary["pairs"]) == {"T224: PrL vs Cg1", "T209: aIC vs SC", "T182: Str vs M2"}
    for area in summary["areas"].values():
        # the measured answer: Brunel's homogeneous networks fire too regularly for real units
        # (ISI CV out of the bank's range) and no bank simulation comes near any area
        assert area["misspecification"]["misspecified"]
        assert "isi_cv_mean" in [o["name"] for o in area["misspecification"]["out_of_range"]]
        near = area["nearest_bank"]
        assert near["distance_nearest"] > 3 * near["bank_nearest_neighbour_median"]
        assert near["nearest_feature_z"]["rate_std"] < -2  # too little rate heterogeneity
        assert area["n_simulated"] == 4 and 0 <= area["n_accepted"] <= 4
        assert area["yield"] == area["n_accepted"] / 4
    for pair in summary["pairs"].values():
        assert set(pair["shift_prior_sd"]) == {"g", "nu_ext"}
        assert all(0 <= v <= 1 for v in pair["overlap"].values())
        assert pair["consistent"] is None  # fewer than 10 accepted samples per area
    # without the features a homogeneous network cannot produce, every area is in range and
    # its posterior puts the drive below threshold (fluctuation-driven low rates, ν_ext < 1)
    restricted = summary["restricted"]
    assert set(restricted["dropped"]) & set(restricted["features"]) == set()
    assert len(restricted["features"]) == 10
    for area in restricted["areas"].values():
        assert not area["misspecification"]["out_of_range"]
        assert area["posterior_mean"]["nu_ext"] < 1.0
        assert area["n_simulated"] == 2
    assert (tmp_path / "ppc.png").stat().st_size > 20000
    assert (tmp_path / "restricted" / "ppc.png").stat().st_size > 20000
    assert (tmp_path / "T209" / "compare.json").is_file()


def test_missing_recordings_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMIND_PROBE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="probe recordings are not in .*nowhere.*downloads nothing"):
        run_study(STUDY, out=tmp_path / "out", quick=True, progress=False)
    assert not (tmp_path / "out" / "work").exists()


def test_mk1_hook_fits_each_area_and_compares_the_areas(tmp_path, monkeypatch):
    """[mk1] enabled: one `automind fit` per area, with the area, the quality filter and line
    masking; a fit that cannot reach an area is reported, not fatal; the two areas of a
    recording are compared (known answer: only the parameter their consistent sets differ in
    separates them)."""
    import automind.fit
    from automind.invariance.consistent import write_set
    from automind.prior import Prior

    prior, rng, calls = Prior.load("mk1"), np.random.default_rng(0), []

    def fake_fit(recording, out, **kwargs):
        calls.append((recording, out, kwargs))
        area = kwargs["recording_options"]["area"]
        if area == "SC":
            raise UserError("the model never comes near the recording")
        u = rng.normal(0.0, 0.1, (80, prior.dim))
        u[:, 3] += 0.8 if area == "M2" else 0.0
        out.mkdir(parents=True)
        write_set(out, prior, prior.destandardise(u), np.zeros((80, 2)), np.arange(80),
                  np.ones(80), np.arange(80))
        return {"yield": 0.1, "n_consistent": 80, "set_size": 80, "simulations": 100,
                "run": str(out), "consistent_set_folder": str(out)}

    monkeypatch.setattr(automind.fit, "fit", fake_fit)
    checked = []
    monkeypatch.setattr(probe_areas, "area_checks", lambda path, summary, area, quality, spec,
                        folder, s, workers: checked.append((area, folder, s)) or {"ppc": area})
    settings = {"enabled": True, "N": 300, "duration": 5.5, "budget": 100, "probe_rounds": 1,
                "min_set": 56, "local": 0}
    recordings = {"T209": (Path("T209.nwb"), ["aIC", "SC"]),
                  "T182": (Path("T182.nwb"), ["Str", "M2"])}
    result = probe_areas.fit_mk1(settings, recordings, ["quality==good"], tmp_path / "work",
                                 tmp_path / "out", 1, False, 3)
    areas = result["areas"]
    assert areas["T209 aIC"]["yield"] == 0.1 and "never comes near" in areas["T209 SC"]["error"]
    # every fitted area gets its posterior predictive check, in its own folder
    assert [(a, f) for a, f, _ in checked] == [
        ("aIC", tmp_path / "out" / "mk1" / "T209" / "aIC"),
        ("Str", tmp_path / "out" / "mk1" / "T182" / "Str"),
        ("M2", tmp_path / "out" / "mk1" / "T182" / "M2")]
    assert checked[0][2] == {"min_set": 56, "local": 0, "conditional": 10, "shown": 4}
    assert areas["T182 M2"]["ppc"] == "M2"
    recording, out, kwargs = calls[0]
    assert recording == Path("T209.nwb") and out == tmp_path / "work" / "mk1_T209_aIC"
    assert kwargs["recording_options"] == {"area": "aIC", "quality": ["quality==good"],
                                           "mask_lines": True}
    assert kwargs["simulator"].N == 300 and kwargs["budget"] == 100 and kwargs["probe_rounds"] == 1
    assert "min_set" not in kwargs and "local" not in kwargs
    assert list(result["pairs"]) == ["T182: Str vs M2"]  # T209 has one fitted area
    pair = result["pairs"]["T182: Str vs M2"]
    assert pair["compared"] == "consistent"
    assert [p["separating_parameters"] for p in pair["pairs"].values()] == [[prior.names[3]]]
    assert (tmp_path / "out" / "mk1" / "T182" / "compare.json").is_file()
