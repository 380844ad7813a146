"""Learned classifiers beside the cheap model (automind/cheap/learned.py): known answers where
the statuses follow θ, or follow the model's signals only."""

import numpy as np

from automind.cheap.learned import learned_report

N, N_CAL = 900, 600


def _case(by: str, seed: int = 0):
    """Statuses from one column's terciles (silent < ok < runaway): of θ, or of the signals."""
    rng = np.random.default_rng(seed)
    theta, signals = rng.uniform(size=(N, 4)), rng.normal(size=(N, 3))
    x = theta[:, 0] if by == "theta" else signals[:, 0]
    low, high = np.quantile(x, [1 / 3, 2 / 3])
    status = np.where(x < low, "silent", np.where(x < high, "ok", "runaway"))
    return theta, status, signals


def test_statuses_that_follow_theta_are_learned_from_theta_alone():
    theta, status, signals = _case("theta")
    r = learned_report(theta, status, signals, N_CAL, recall=0.95, cheap_auc_ok=0.9)
    assert [s["n_train"] for s in r["theta_only"]] == [250, 500, 600]
    assert all(s["auc_ok"] > 0.97 for s in r["theta_only"])
    assert r["theta_only_matches_cheap_at"] == 250
    assert r["hybrid"]["ok"]["recall"] >= 0.9
    assert min(r["hybrid"][c]["recall"] for c in ("silent", "runaway")) > 0.9


def test_statuses_that_follow_the_signals_need_the_hybrid():
    theta, status, signals = _case("signals")
    r = learned_report(theta, status, signals, N_CAL, recall=0.95, cheap_auc_ok=0.9)
    assert all(s["auc_ok"] < 0.65 for s in r["theta_only"])  # θ says nothing: chance
    assert r["theta_only_matches_cheap_at"] is None
    h = r["hybrid"]
    assert h["auc_ok"] > 0.97 and h["ok"]["recall"] >= 0.9
    assert min(h[c]["recall"] for c in ("silent", "runaway")) > 0.9


def test_too_few_runs_of_a_status_are_skipped_not_guessed():
    theta, status, signals = _case("theta")
    status[:N_CAL][status[:N_CAL] == "runaway"] = "ok"  # no runaway run to train on
    r = learned_report(theta, status, signals, N_CAL, recall=0.95, cheap_auc_ok=0.9)
    assert r["theta_only"] == [] and r["hybrid"] is None
