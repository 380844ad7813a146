"""The neuropixels_areas dataset-comparison study at quick sizes: areas written to one NWB
file and read back per area, every pair compared, documented changes reported; bad
dataset definitions are refused before simulating."""

import json
from pathlib import Path

import numpy as np
import pytest

from automind.cli import main
from automind.errors import UserError
from automind.recordings import read_recording
from automind.studies import run_study

STUDY = Path(__file__).resolve().parents[1] / "studies" / "neuropixels_areas"


def test_quick_study_compares_every_pair_of_areas(tmp_path, capsys):
    assert main(["study", "run", str(STUDY), "--quick", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["pairs"]) == {"VISp vs CA1", "VISp vs LGd", "CA1 vs LGd"}
    visp_ca1 = summary["pairs"]["VISp vs CA1"]
    assert visp_ca1["changed"] == ["nu_ext"]
    assert visp_ca1["documented_shift_prior_sd"]["nu_ext"] == pytest.approx(1.5 / (4 / np.sqrt(12)))
    for pair in summary["pairs"].values():
        assert set(pair["inferred_shift_prior_sd"]) == {"g", "nu_ext"}
        assert all(0 <= v <= 1 for v in pair["overlap"].values())
        assert 0 <= pair["local"]["local_dimensionality_p_value"] <= 1
    # each area reads back from the one NWB file with its own units
    areas = {name: read_recording(summary["recordings"], area=name) for name in ("VISp", "CA1", "LGd")}
    assert len({tuple(a.units[:3]) for a in areas.values()}) == 3
    assert all(a.n_units == 160 for a in areas.values())  # N_E of N = 200
    for figure in ("compare_marginals.png", "compare_local.png", "documented_vs_found.png"):
        assert (tmp_path / figure).stat().st_size > 5000


def test_bad_datasets_are_refused_before_simulating(tmp_path):
    (tmp_path / "bad").mkdir()
    text = (STUDY / "study.toml").read_text().replace("LGd = {g = 6.5", "LGd = {gain = 6.5")
    (tmp_path / "bad" / "study.toml").write_text(text)
    with pytest.raises(UserError, match=r"LGd: unknown parameters \['gain'\], missing \['g'\]"):
        run_study(tmp_path / "bad", out=tmp_path / "out", quick=True, progress=False)
    assert not (tmp_path / "out" / "work").exists()
