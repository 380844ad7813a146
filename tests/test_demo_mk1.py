"""`automind demo --quick` (the default, MK1): a held-out MK1 recording drawn by the written
rule, written as NWB, fitted with `automind fit`; at the CI sizes of studies/mk1_targets."""

import json
import re

import numpy as np
import pytest

from automind import demo_mk1
from automind.bank import Bank
from automind.cli import main
from automind.cli.demo import print_mk1_summary
from automind.errors import UserError
from automind.features.sets import get_feature_set
from automind.prior import Prior
from automind.recordings import read_recording
from automind.studies.fit_targets import RULE_FEATURES, e_halves, select_targets


def test_quick_mk1_demo_fits_the_held_out_recording(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--workers", "1", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "mk1" and summary["quick"]
    target, size = summary["target"], demo_mk1.QUICK

    # the target is the first pool draw the written rule accepts (sustained E activity)
    pool = Bank(out / "pool")
    data = pool.arrays(features="mk1_compact")
    rule_data = pool.arrays(features=RULE_FEATURES)
    names = pool.feature_sets[RULE_FEATURES]["names"]
    rule = demo_mk1.RULE | {"duration_analysed": size.duration - size.t_analysis_start}
    chosen = select_targets(rule_data, names, rule, e_halves(pool, rule_data, size.t_analysis_start))
    assert min(chosen) == (target["pool_index"], target["kind"])
    assert 1.0 <= target["pool_E_rate_mean"] <= 30.0
    row = np.flatnonzero(data["index"] == target["pool_index"])[0]
    assert data["status"][row] == "ok"
    np.testing.assert_allclose(target["theta"], data["theta"][row])
    assert Prior.load("mk1").validate(np.array(target["theta"]))[0].shape == (28,)

    # the recording, read back like a user's, is the drawn θ's pool run: the same spikes
    recording = read_recording(out / "recording.nwb")
    assert recording.duration == pytest.approx(size.duration - size.t_analysis_start)
    fs = get_feature_set("mk1_compact")
    x = fs.compute(recording)
    rate = x[fs.names.index("rate_mean")]
    assert rate == pytest.approx(data["x"][row, names.index("rate_mean")], rel=1e-5)
    assert rate == pytest.approx(target["recording_rate_mean"]) and 1 <= rate <= 30

    # the fit ran on that file with the drawn θ as its known truth, within its budget
    record = json.loads((out / "fit" / "fit.json").read_text())
    assert record["target"]["source"] == str(out / "recording.nwb")
    np.testing.assert_allclose(record["truth"], target["theta"])
    assert (record["settings"]["budget"], record["settings"]["refine"]) == (size.budget, size.refine)
    fitted = json.loads((out / "fit" / "summary.json").read_text())
    assert summary["simulations"] == fitted["simulations"] <= size.budget
    assert 0 <= summary["yield"] == fitted["yield"] <= 1
    assert summary["n_consistent"] == round(summary["yield"] * summary["n_simulated_final"])
    yields = summary["refinement_yields"]  # every generation, or up to the first at 0.9
    assert len(yields) == size.refine or (len(yields) < size.refine and yields[-1] >= 0.9)
    # the truth's own re-simulations are within the acceptance: the rule is attainable
    assert 0.5 <= summary["truth_resimulations_accepted"] <= 1
    assert 0 <= summary["truth_in_90pct_intervals"] <= 28
    inside = summary["truth_in_set_5_95"]  # None below 10 consistent configurations
    assert (inside is None) == (summary["n_consistent"] < 10)

    # the fit's report, and the demo's overview page pointing at it
    page = out / "fit" / "report" / "index.html"
    assert summary["report"] == str(page)
    images = re.findall(r"src='(figures/[^']+)'", page.read_text())
    assert {"figures/target_vs_accepted.png", "figures/rounds.png",
            "figures/consistent_set_pairplot.png", "figures/refinement.png"} <= set(images)
    assert all((page.parent / image).stat().st_size > 5000 for image in images)
    assert "href='fit/report/index.html'" in (out / "index.html").read_text()
    assert json.loads((out / "demo.json").read_text())["yield"] == summary["yield"]

    # what `make demo` prints without --json
    print_mk1_summary(summary | {"truth_in_set_5_95": 21})
    printed = capsys.readouterr().out
    assert f"yield {summary['yield']:.3f}" in printed and "for 21 of 28 parameters" in printed
    assert f"overview: {summary['index']}" in printed


def test_no_qualifying_draw_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_mk1, "RULE", demo_mk1.RULE | {"rate_low": 1e3, "rate_high": 1e4})
    spec = demo_mk1.demo_spec(demo_mk1.QUICK).with_overrides(duration=1.0, t_analysis_start=0.2)
    with pytest.raises(UserError, match="none of the 4 prior draws"):
        demo_mk1.draw_target(tmp_path / "pool", spec, Prior.load("mk1"), 4, 1, 1, False)
