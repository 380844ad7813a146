"""`automind cheap predict` end to end, and bad input: one line, exit 2, nothing overwritten."""

import json
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from automind.cheap.networks import for_spec
from automind.cheap.screen import CheapModel
from automind.cli import main
from automind.errors import UserError
from automind.prior import Prior
from automind.simulators import SimulatorSpec


def test_predict_writes_a_table_of_predictions(tmp_path, capsys):
    out = tmp_path / "pred.parquet"
    assert main(["cheap", "predict", "-n", "12", "--seed", "3", "--table", "analytic",
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = pq.read_table(out).to_pandas()
    assert len(table) == 12 and sum(summary["by_status"].values()) == 12
    # θ k is the θ a bank with the same seed holds at index k
    np.testing.assert_allclose(table["exc_prop"], Prior.load("mk1").sample_indexed(3, range(12))[:, 0])
    assert set(table["status"]) <= {"silent", "ok", "runaway", "undetermined"}
    # the all-unit mean rate (a recording's rate_mean) lies between the populations' rates
    rates = table[["rate_E_d", "rate_E_n", "rate_I"]].to_numpy()
    units = table["rate_units"].to_numpy()
    assert np.all((units >= rates.min(1) - 1e-9) & (units <= rates.max(1) + 1e-9))
    before = out.read_bytes()
    assert main(["cheap", "predict", "-n", "12", "--table", "analytic", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before


def test_missing_table_names_the_build_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTOMIND_CACHE", str(tmp_path))
    assert main(["cheap", "predict", "-n", "2", "--out", str(tmp_path / "p.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "automind cheap build" in err


def test_theta_outside_the_prior_or_nan_is_refused():
    model = CheapModel.for_spec(SimulatorSpec.load("mk1"), table="analytic")
    theta = Prior.load("mk1").sample(2, seed=0)
    theta[1, 9] = 1e4  # E.C far above 500 pF
    with pytest.raises(UserError, match="E.C.*outside the prior"):
        model.predict(theta)
    theta[1, 9] = np.nan
    with pytest.raises(UserError, match="NaN"):
        model.predict(theta)


def test_a_model_without_a_reduction_is_refused():
    with pytest.raises(UserError, match="no reduction"):
        for_spec(SimpleNamespace(model="hh", reference_quirks=False), {}, None)
    quirks = SimulatorSpec.load("mk1").with_overrides(reference_quirks=True)
    with pytest.raises(UserError, match="reference_quirks"):
        CheapModel.for_spec(quirks, table="analytic")


def test_check_scores_regimes_from_the_banks_features(tmp_path, capsys):
    """`automind cheap check BANK` on a bank with mk1_compact features scores the regimes on
    the runs ok in both, features matched to θ by bank index (rows of a bank with a gap in its
    features: the silent and runaway runs')."""
    from automind.bank import Bank, extend
    from automind.cheap.regimes import NEEDED, regime_report

    spec = SimulatorSpec.load("mk1").with_overrides(N=200, duration=0.6, t_analysis_start=0.1)
    prior = Prior.load("mk1")
    extend(tmp_path / "b", spec, prior, 400, 4, features=["mk1_compact"], progress=False,
           chunk_size=100)
    assert main(["cheap", "check", str(tmp_path / "b"), "--table", "analytic", "--json",
                 "--learned"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["regime_features"] == "mk1_compact"
    learned = report["models"]["analytic"]["learned"]  # known answers: tests/test_cheap_learned.py
    assert 0.5 < learned["cheap_auc_ok"] <= 1
    assert {s["n_train"] for s in learned["theta_only"]} <= {250, report["calibration"]}
    scored = report["models"]["analytic"]["regimes_vs_simulated"]
    bank = Bank(tmp_path / "b")
    rows = bank.table()
    data = bank.arrays(features="mk1_compact")
    names = list(bank.feature_sets["mk1_compact"]["names"])
    by_index = dict(zip(data["index"].tolist(), data["x"]))
    missing = np.full(len(names), np.nan)
    features = {k: np.array([by_index.get(i, missing)[names.index(k)] for i in rows["index"]])
                for k in NEEDED}
    pred = CheapModel.for_spec(spec, prior, "analytic").predict(rows["theta"])
    assert scored == json.loads(json.dumps(regime_report(pred, rows["status"], features)))
    assert scored["n"] >= 5
    # the spec's rate accuracy on asynchronous ok runs (corr_mean < 0.05), held-out part, and
    # a calibration share other than half
    assert main(["cheap", "check", str(tmp_path / "b"), "--table", "analytic", "--calibration",
                 "0.75", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    done = np.isin(rows["status"], ("ok", "silent", "runaway"))
    n_cal = int(round(0.75 * done.sum()))
    assert report["calibration"] == n_cal
    held = np.flatnonzero(done)[n_cal:]
    flat = held[(rows["status"][held] == "ok") & (pred.status[held] != "undetermined")
                & (features["corr_mean"][held] < 0.05)]
    dlog = np.abs(np.log10(np.maximum(pred.rate_E[flat], 1e-3))
                  - np.log10(np.maximum(rows["rate_E"][flat], 1e-3)))
    got = report["models"]["analytic"]["async_rate"]
    assert got["n"] == len(flat) > 0 and got["median_abs_dlog10"] == pytest.approx(np.median(dlog))
    assert main(["cheap", "check", str(tmp_path / "b"), "--table", "analytic",
                 "--calibration", "1.5"]) == 2
    assert capsys.readouterr().err.count("\n") == 1



def test_a_saved_classifier_screens_a_new_bank(tmp_path, capsys):
    """`cheap check --save-classifier F` then `simulate --screen cheap:classifier=F`: the rows
    screened are exactly those the saved classifier calls silent or runaway, recomputed here
    from the file; mismatched or malformed classifiers and a window beside one are refused."""
    from automind.bank import Bank, extend
    from automind.cheap.classify import StatusClassifier

    spec = SimulatorSpec.load("mk1").with_overrides(N=200, duration=0.6, t_analysis_start=0.1)
    prior = Prior.load("mk1")
    extend(tmp_path / "b", spec, prior, 400, 4, progress=False, chunk_size=100)
    saved = tmp_path / "clf.json"
    assert main(["cheap", "check", str(tmp_path / "b"), "--table", "analytic",
                 "--save-classifier", str(saved), "--json"]) == 0
    capsys.readouterr()
    record = json.loads(saved.read_text())
    assert record["table"] == "analytic-siegert" and record["calibrated_on"]["runs"] == 200
    before = saved.read_bytes()  # never overwritten
    assert main(["cheap", "check", str(tmp_path / "b"), "--table", "analytic",
                 "--save-classifier", str(saved)]) == 2
    assert "exists" in capsys.readouterr().err and saved.read_bytes() == before
    # calibrated with saturated ok runs as runaway: the file records the label
    saturated = tmp_path / "clf_saturated.json"
    assert main(["cheap", "check", str(tmp_path / "b"), "--table", "analytic", "--saturation",
                 "0.9", "--save-classifier", str(saturated), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["saturation"] == 0.9
    assert json.loads(saturated.read_text())["calibrated_on"]["saturation"] == 0.9
    assert main(["cheap", "check", str(tmp_path / "b"), "--table", "analytic", "--saturation",
                 "0"]) == 2
    assert "--saturation 0" in capsys.readouterr().err
    screen = f"cheap:classifier={saved},table=analytic"
    assert main(["simulate", "--N", "200", "--duration", "0.6", "-n", "40", "--seed", "9",
                 "--screen", screen, "--out", str(tmp_path / "s"), "--json"]) == 0
    capsys.readouterr()
    rows = Bank(tmp_path / "s").table()
    model = CheapModel.for_spec(spec, prior, "analytic")
    pred = model.predict(rows["theta"], status_only=True)
    said = StatusClassifier.from_dict(record["classifier"]).classify(
        pred, model.status_signals(rows["theta"], pred))
    skipped = rows["status"] == "screened"
    assert np.array_equal(skipped, ~np.isin(said, ("ok", "undetermined")))
    assert 0 < skipped.sum() < len(skipped)
    assert Bank(tmp_path / "s").meta["screen"]["classifier"] == record["classifier"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(record | {"table": "1606f26cb635a712"}))
    older = tmp_path / "older.json"  # calibrated before the start from rest (session 35)
    older.write_text(json.dumps(record | {"version": 1}))
    for bad, message in ((f"cheap:classifier={other},table=analytic", "calibrated with table"),
                         (f"cheap:classifier={older},table=analytic", "recalibrate"),
                         (f"cheap:classifier={tmp_path / 'none.json'},table=analytic", "cannot read"),
                         (f"cheap:classifier={saved},low=0.001", "one or the other")):
        assert main(["simulate", "--N", "200", "--duration", "0.6", "-n", "4", "--screen", bad,
                     "--out", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_gradients_report_and_figure_of_a_bank(tmp_path, capsys):
    """`automind cheap gradients BANK`: points are the bank's own θ (by bank index), the
    report and its figure are written, and bad options are refused in one line, exit 2."""
    from conftest import small_brunel_spec

    from automind.bank import Bank, extend

    prior = Prior.load("brunel")
    extend(tmp_path / "b", small_brunel_spec(), prior, 40, 2, progress=False)
    out = tmp_path / "g"
    assert main(["cheap", "gradients", str(tmp_path / "b"), "--points", "3", "--seeds", "1,2",
                 "--rate-range", "1", "200", "--table", "analytic", "--workers", "1",
                 "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out / "gradients.png").stat().st_size > 0
    assert json.loads((out / "gradients.json").read_text())["points"] == report["points"]
    assert 1 <= len(report["points"]) <= 3 and report["table"].startswith("analytic")
    rows = Bank(tmp_path / "b").table()
    for p in report["points"]:
        theta = rows["theta"][list(rows["index"]).index(p["bank_index"])]
        assert prior.destandardise(np.array(p["u"])) == pytest.approx(theta)
        assert p["angle_secant"] < 25.0
        assert p["simulated_regime"] == "unknown"  # the bank computed no features
    assert report["angle_secant_by_regime"]["unknown"]["n"] == len(report["points"])
    for bad, words in ((["--seeds", "1,1"], "must differ"), (["--seeds", "a"], "integers"),
                       (["--rate-range", "5", "1"], "LOW must be below HIGH"),
                       (["--analysed-from", "0.5"], "must lie in the runs")):
        assert main(["cheap", "gradients", str(tmp_path / "b"), "--table", "analytic",
                     "--out", str(tmp_path / "new"), *bad]) == 2
        assert words in capsys.readouterr().err
    assert main(["cheap", "gradients", str(tmp_path / "b"), "--table", "analytic",
                 "--out", str(out)]) == 2  # not empty: nothing overwritten
    assert "not empty" in capsys.readouterr().err
    # no bank run within a factor 2 of 1000-2000 Hz: nothing is simulated, exit 2
    assert main(["cheap", "gradients", str(tmp_path / "b"), "--table", "analytic", "--seeds",
                 "1", "--rate-range", "1000", "2000", "--out", str(tmp_path / "none")]) == 2
    assert "no ok, asynchronous run at 500-4000 Hz" in capsys.readouterr().err
    # candidates near the range that do not re-simulate inside it: said in one line, exit 0,
    # an empty report
    top = float(np.nanmax(rows["rate_E"]))
    assert main(["cheap", "gradients", str(tmp_path / "b"), "--table", "analytic", "--seeds",
                 "1", "--rate-range", str(1.3 * top), str(1.9 * top),
                 "--out", str(tmp_path / "none")]) == 0
    assert "none of" in capsys.readouterr().out
    assert json.loads((tmp_path / "none" / "gradients.json").read_text())["points"] == []


def test_reduction_reports_the_single_neuron_check_by_regime(capsys):
    # the known answer where neurons are mean-driven: the model's rate within 0.05 decades
    assert main(["cheap", "reduction", "-n", "60", "--duration", "3", "--seed", "11",
                 "--table", "analytic", "--json"]) == 0
    found = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert found["table"] == "analytic-siegert" and found["neurons"] == 60
    assert found["mean_driven"]["n"] >= 10 and found["mean_driven"]["median_abs_dlog10"] <= 0.05
    steps = [found[k]["n"] for k in ("kappa_over_10_step_below_1", "kappa_over_10_step_1_to_2",
                                     "kappa_over_10_step_from_2")]
    assert sum(steps) == found["kappa_over_10"]["n"]  # the step groups split the κ > 10 ones
    assert main(["cheap", "reduction", "-n", "5", "--duration", "1", "--transient", "1"]) == 2
    assert "--transient 1.0" in capsys.readouterr().err
