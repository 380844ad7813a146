"""The cheap model's regimes scored against simulated runs (automind/cheap/regimes.py)."""

from types import SimpleNamespace

import numpy as np

from automind.cheap.regimes import auc, regime_report, simulated_labels
from automind.cheap.screen import CheapModel
from automind.prior import Prior
from automind.simulators import SimulatorSpec


def test_simulated_labels_follow_the_synchronous_rule_and_quiet_ends():
    labels = simulated_labels(rate=[0.0, np.nan, 2.0, 2.0, 2.0, 0.06],
                              corr=[0.5, 0.5, 0.2, 0.05, np.nan, 0.01],
                              bursts=[9, 0, 0, 3, 0, 2])
    assert labels.tolist() == ["quiet", "quiet", "synchronous", "synchronous", "asynchronous",
                               "asynchronous"]


def test_regime_report_counts_a_known_table():
    """Six runs ok in both, one simulated silent: the table, both detectors and the period
    (predicted 2x the simulated interval) are known."""
    pred = SimpleNamespace(
        status=np.array(["ok"] * 7, object),
        regime=np.array(["async", "async", "bursting", "bursting", "multistable", "multistable",
                         "bursting"], object),
        period=np.array([np.nan, np.nan, 0.4, 1.0, np.nan, np.nan, 0.2]),
        loop_gain=np.array([0.5, 0.2, 1.5, 0.9, 2.0, 0.1, 3.0]),
        burst_score=np.array([0.5, 0.2, 2.5, 0.9, 2.0, 0.1, 3.0]))
    status = np.array(["ok"] * 6 + ["silent"])
    features = {"rate_mean": [1, 0.01, 3, 1, 0.0, 2, 5],
                "corr_mean": [0.01, 0, 0.3, 0.02, 0, 0.5, 1],
                "burst_num": [0, 0, 4, 0, 0, 0, 9],
                "burst_interval_mean": [np.nan] * 2 + [0.2, 0.5] + [np.nan] * 2 + [0.1]}
    r = regime_report(pred, status, features)
    assert r["n"] == 6
    assert r["table"] == {"async": {"asynchronous": 1, "synchronous": 0, "quiet": 1},
                          "bursting": {"asynchronous": 1, "synchronous": 1, "quiet": 0},
                          "multistable": {"asynchronous": 0, "synchronous": 1, "quiet": 1}}
    b, q = r["bursting_finds_synchronous"], r["multistable_finds_quiet"]
    assert (b["recall"], b["precision"], b["base_rate"]) == (0.5, 0.5, 2 / 6)
    assert (q["recall"], q["precision"]) == (0.5, 0.5)
    assert r["period"]["n"] == 2 and np.isclose(r["period"]["median_log10_ratio"], np.log10(2))
    # one run ok in both has valid bursts (4 ≥ 2); its loop gain 1.5 beats 4 of the 5 others,
    # its burst score 2.5 all 5; as a score "bursting" beats 4 and ties 1
    s = r["bursts"]
    assert (s["n"], s["burst_valid"]) == (6, 1)
    assert s["auc_loop_gain"] == 0.8 and s["auc_bursting_regime"] == 0.9
    assert s["auc_burst_score"] == 1.0


def test_auc_known_values():
    assert auc([1, 2, 3], [False, False, True]) == 1.0
    assert auc([3, 2, 1], [False, False, True]) == 0.0
    assert auc([1, 1, 1, np.nan], [True, False, False, True]) == 0.5
    assert np.isnan(auc([1, 2], [True, True]))


def test_check_runs_scores_regimes_where_the_runs_do_what_the_model_says():
    """Known answer through ``check_runs``: runs whose features are the model's own regimes
    (multistable ones end quiet, the others fire at the predicted rate, asynchronously) give
    recall and precision 1 for "multistable finds quiet"."""
    from automind.cheap.check import check_runs
    from automind.cheap.screen import Window, classify

    spec = SimulatorSpec.load("mk1").with_overrides(N=500, duration=1.0)
    prior = Prior.load("mk1")
    model = CheapModel.for_spec(spec, prior, "analytic")
    theta = prior.sample_indexed(3, range(300))
    pred = model.predict(theta)
    status = classify(pred, model.t_refrac(theta), Window()).astype(str)
    multistable = pred.regime == "multistable"
    features = {"rate_mean": np.where(multistable, 0.0, np.maximum(pred.rate_E, 1.0)),
                "corr_mean": np.full(300, 0.01), "burst_num": np.zeros(300),
                "burst_interval_mean": np.full(300, np.nan)}
    report = check_runs(spec, prior, theta, status, pred.rate_E, table="analytic",
                        regime_features=features)
    r = report["models"]["analytic"]["regimes_vs_simulated"]
    ok = (status == "ok") & (pred.status == "ok")
    assert r["n"] == ok.sum() and (multistable & ok).sum() >= 5
    q = r["multistable_finds_quiet"]
    assert q["recall"] == 1.0 and q["precision"] == 1.0
    assert r["bursting_finds_synchronous"]["simulated"] == 0
