"""studies/mk1_targets_300 at CI size: each target is fitted twice, without and with the cheap
target-rate screen in the first probe round (automind/studies/screen_compare.py)."""

import json
from pathlib import Path

import numpy as np

from automind.bank import Bank
from automind.cli import main

STUDY = Path(__file__).resolve().parents[1] / "studies" / "mk1_targets_300"


def test_quick_study_fits_each_target_with_and_without_the_screen(tmp_path, capsys):
    from automind.cheap.screen import RateWindowScreen
    from automind.prior import Prior
    from automind.simulators import SimulatorSpec

    assert main(["study", "run", str(STUDY), "--quick", "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [row] = result["targets"]
    k, s = row["index"], result["settings"]
    plain = Bank(tmp_path / "work" / f"fit_{k}" / "probe" / "r1").table()
    screened = Bank(tmp_path / "work" / f"fit_{k}_screened" / "probe" / "r1").table()
    # same seed: the screened fit's first round drew the very θ of the unscreened one ...
    assert np.array_equal(plain["theta"], screened["theta"])
    # ... and skipped exactly those the window rejects (all units' rate: mk1_compact's)
    spec = SimulatorSpec.load("mk1").with_overrides(N=s["N"], duration=s["probe_duration"],
                                                    t_analysis_start=s["t_analysis_start"])
    fit_record = json.loads((tmp_path / "work" / f"fit_{k}" / "fit.json").read_text())
    window = RateWindowScreen.for_spec(spec, Prior.load("mk1"), fit_record["target"]["rate_mean"],
                                       s["screen_half_width"], "analytic")
    skipped = screened["status"] == "screened"
    assert np.array_equal(skipped, ~window.keep(plain["theta"]))
    assert 0 < skipped.sum() < len(skipped)
    # the runs it kept are the unscreened fit's own runs (same seeds)
    assert np.array_equal(screened["status"][~skipped], plain["status"][~skipped])
    assert np.allclose(screened["rate_E"][~skipped], plain["rate_E"][~skipped], equal_nan=True)
    compare = row["screen"]
    assert compare["screened"]["probe"] == {
        "drawn": len(skipped), "simulated": int((~skipped).sum()), "screened": int(skipped.sum()),
        "run_seconds": compare["screened"]["probe"]["run_seconds"]}
    # screened draws are not spent from the budget: the probe round counts the simulated ones
    summary = json.loads((tmp_path / "work" / f"fit_{k}_screened" / "summary.json").read_text())
    probe = summary["rounds"][0]
    assert probe["simulations"] == int((~skipped).sum()) and probe["screened"] == int(skipped.sum())
    # the window's recall on the unscreened first round counts the near runs it keeps: the
    # screened fit's near runs of that round (identical simulations; near_fraction is of draws)
    recall = compare["window_on_unscreened_round_1"]
    assert recall["near_kept"] == round(probe["near_fraction"] * len(skipped))
    assert recall["near"] >= recall["near_kept"] > 0
    assert result["screen"]["probe_simulations"] == {"unscreened": len(skipped),
                                                    "screened": int((~skipped).sum())}
    assert (tmp_path / "screen_compare.png").stat().st_size > 5000
