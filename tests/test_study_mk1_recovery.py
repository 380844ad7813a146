"""The mk1_recovery study at quick sizes: a full ranking of the 28 parameters, finite
calibration numbers and figures; an unknown feature set is refused before simulating."""

import json
from pathlib import Path

import numpy as np
import pytest

from automind.cli import main
from automind.errors import UserError
from automind.studies import run_study

STUDY = Path(__file__).resolve().parents[1] / "studies" / "mk1_recovery"


def test_quick_study_ranks_all_parameters(tmp_path, capsys):
    assert main(["study", "run", str(STUDY), "--quick", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = {r["features"]: r for r in summary["results"]}
    assert list(results) == ["psd", "psd_bands", "mk1_compact"]
    assert results["psd"]["n_features"] == 990 and results["psd_bands"]["n_features"] == 25
    for result in results.values():
        ranking = result["ranking"]
        assert len(ranking) == 28 and len({r["parameter"] for r in ranking}) == 28
        contraction = [r["contraction"] for r in ranking]
        assert contraction == sorted(contraction, reverse=True) and min(contraction) > 0
        assert np.isfinite(result["coverage_max_abs_error"]) and result["n_valid"] > 20
        gain = result["information_nats"]
        valid = result["n_valid"] / (result["n_valid"] + result["n_invalid"])
        assert gain["validity"] == pytest.approx(-np.log(valid)) and np.isfinite(gain["mean"])
        for figure in ("coverage.png", "training_curve.png", "sbc_ranks.png"):
            assert (tmp_path / result["features"] / figure).stat().st_size > 5000
    assert 0 <= summary["bursts_detected_fraction"] <= 1
    assert (tmp_path / "contraction.png").stat().st_size > 5000


def test_unknown_feature_set_is_refused_before_simulating(tmp_path):
    (tmp_path / "bad").mkdir()
    text = (STUDY / "study.toml").read_text().replace('"psd_bands"', '"lfp"')
    (tmp_path / "bad" / "study.toml").write_text(text)
    with pytest.raises(UserError, match="unknown feature set 'lfp'"):
        run_study(tmp_path / "bad", out=tmp_path / "out", quick=True, progress=False)
    assert not (tmp_path / "out" / "work").exists()
