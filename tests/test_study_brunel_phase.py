"""The brunel_phase study at quick sizes: every regime's posterior sits on the right side of
the balance point g = 4 and mostly in its own region."""

import json
from pathlib import Path

import pytest

from automind.cli import main
from automind.errors import UserError
from automind.studies import run_study

STUDY = str(Path(__file__).resolve().parents[1] / "studies" / "brunel_phase")


def test_quick_study_places_each_regime(tmp_path, capsys):
    assert main(["study", "run", STUDY, "--quick", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    targets = summary["targets"]
    assert set(targets) == {"SR", "AI", "SI_fast", "SI_slow"}
    assert targets["SR"]["posterior_mean"][0] < 4 < targets["AI"]["posterior_mean"][0]
    assert targets["SI_slow"]["posterior_mean"][1] < 1.2 < targets["SI_fast"]["posterior_mean"][1]
    for name, result in targets.items():  # more mass in its own region than in any other
        assert result["mass_in_own_region"] == max(result["mass_by_region"].values()), name
    assert json.loads((tmp_path / "results.json").read_text())["kind"] == "brunel_phase"
    assert all((tmp_path / f).stat().st_size > 5000 for f in ("posteriors.png", "targets.png"))


def test_a_target_outside_the_prior_is_refused(tmp_path):
    config = (tmp_path / "bad")
    config.mkdir()
    text = open(f"{STUDY}/study.toml").read().replace("SR = [3.0, 2.0]", "SR = [9.0, 2.0]")
    (config / "study.toml").write_text(text)
    with pytest.raises(UserError, match="SR = \\[9.0, 2.0\\] is not a .* inside the prior"):
        run_study(config, out=tmp_path / "out", quick=True, progress=False)
