"""Status prediction beyond the activity window (issue #16): the first-step crossing averaged
over random in-degrees, and the calibrated status classifier."""

import numpy as np
import pytest

import automind.cheap.networks as networks
from automind.cheap.classify import StatusClassifier, calibrate_classifier
from automind.cheap.moments import Drive, Neuron, first_step_crossing, membrane, step_constants
from automind.cheap.screen import CheapModel, Window, classify, label_scores
from automind.errors import UserError
from automind.prior import Prior
from automind.simulators import SimulatorSpec
from automind.simulators.execution import make_jobs
from automind.simulators.simulator import Simulator

DT = 2e-4


def test_quenched_crossing_is_the_average_over_in_degrees():
    """P₁ averaged over neurons whose recurrent Σλ_kQ_k varies with a Poisson in-degree equals
    the crossing with the quenched variance added (known answer: Monte Carlo over K)."""
    from scipy.special import ndtr

    n = Neuron(C=200e-12, g_L=10e-9, v_rest=-65e-3, v_thresh=-50e-3, v_reset=-58e-3,
               t_refrac=2e-3, delta_T=2e-3, a=0.0, b=0.0, tau_w=0.1, tau_e=5e-3, tau_i=5e-3,
               E_e=0.0, E_i=-80e-3)
    step = step_constants(n, DT)
    k_mean, q, nu = 40.0, 4e-9, 450.0  # presynaptic neurons, quantum (S), their rate (Hz)
    drive = Drive(np.asarray(k_mean * q * nu), np.asarray(k_mean * q**2 * nu), np.asarray(0.0),
                  np.asarray(0.0))
    mom = membrane(n, drive, 0.0)
    # neuron by neuron: the mean step is linear in K, the shot-noise sd taken at the mean K
    # (as the closed form does); averaged over Poisson in-degrees
    k = np.random.default_rng(0).poisson(k_mean, 200_000).astype(float)
    gap = step.scale * (mom.mu_G * (mom.mu_V - step.v_reset) + step.reset_current) - step.gap
    sd = step.scale * np.sqrt(step.lever_e * drive.e2)
    monte_carlo = np.mean(ndtr((gap + step.scale * step.slope_e * (k - k_mean) * q * nu) / sd))
    closed = first_step_crossing(step, drive, mom, (np.asarray(k_mean * q**2 * nu**2),
                                                    np.asarray(0.0)))
    assert closed == pytest.approx(monte_carlo, abs=0.01)  # 0.78
    assert first_step_crossing(step, drive, mom) > monte_carlo + 0.15  # homogeneous: 0.96


def test_in_degree_spread_fixes_a_near_saturated_ok_run(monkeypatch):
    """Draw 24 of the MK1 prior at seed 1005 (N = 500, 1 s): Brian2 keeps it ok (activity
    just below the runaway threshold); the homogeneous first-step crossing called it runaway
    (predicted ν_E·t_ref 1.010), the in-degree-averaged one ok (0.81)."""
    spec = SimulatorSpec.load("mk1").with_overrides(N=500, duration=1.0)
    prior = Prior.load("mk1")
    theta = prior.sample_indexed(1005, [24])
    job = make_jobs(prior, theta, spec.duration, seed=1005, indices=[24])[0]
    assert Simulator(spec).run(job.params, seed=job.seed).status == "ok"
    model = CheapModel.for_spec(spec, prior, "analytic")
    said = {}
    for heterogeneous in (False, True):
        monkeypatch.setattr(networks, "HETEROGENEOUS_FIRST_STEP", heterogeneous)
        pred = model.predict(theta, status_only=True)
        said[heterogeneous] = classify(pred, model.t_refrac(theta), Window())[0]
    assert said == {False: "runaway", True: "ok"}


def _synthetic(n, rng):
    """Statuses decided as in MK1: a run is runaway iff its saturated fraction 1 − d beats
    0.99 / a_max; the model compresses small deficits d (predicts √(0.02 d) below 0.02).
    The other signals (drive-only activity, probe-end activity, saturated z, onset time) are
    uninformative here."""
    a_max = rng.uniform(1.0, 1.15, n)
    near = rng.uniform(size=n) < 0.3
    d_true = np.where(near, 10 ** rng.uniform(-3.5, -1, n), 1 - 0.9 * 10 ** rng.uniform(-6, 0, n))
    d_pred = np.where(d_true < 0.02, np.sqrt(0.02 * d_true), d_true)
    activity = (1 - d_pred) * a_max
    m0 = rng.uniform(-20, 2, n)
    status = np.where((1 - d_true) * a_max > 0.99, "runaway",
                      np.where(activity * np.exp(rng.normal(0, 0.3, n)) < 1e-4, "silent", "ok"))
    noise = np.column_stack([10 ** rng.uniform(-6, 0, n), 10 ** rng.uniform(-6, 0, n),
                             rng.normal(0, 2, n), 10 ** rng.uniform(-3, 0, n)])
    return np.column_stack([activity, a_max, m0, noise]), status.astype(str)


def test_classifier_recovers_statuses_decided_by_saturation_and_headroom():
    from types import SimpleNamespace

    rng = np.random.default_rng(3)
    signals, status = _synthetic(4000, rng)
    cal, held = slice(0, 2000), slice(2000, None)
    pred = SimpleNamespace(status=np.full(4000, "ok", object))
    part = SimpleNamespace(status=pred.status[held], extrapolated=np.zeros(2000, bool))
    clf = calibrate_classifier(SimpleNamespace(status=pred.status[cal]), signals[cal],
                               status[cal], recall=0.95)
    scored = label_scores(part, clf.classify(part, signals[held]), status[held])
    assert scored["ok"]["recall"] >= 0.93 and scored["runaway"]["recall"] >= 0.9
    assert scored["silent"]["recall"] >= 0.9
    # round trip of the stored form
    again = StatusClassifier.from_dict(clf.to_dict())
    assert np.array_equal(again.classify(part, signals[held]), clf.classify(part, signals[held]))


def test_classifier_calibration_errors_are_user_errors():
    from types import SimpleNamespace

    from automind.errors import UserError

    signals = np.ones((30, 7))
    pred = SimpleNamespace(status=np.full(30, "ok", object))
    with pytest.raises(UserError, match="each status"):
        calibrate_classifier(pred, signals, np.array(["ok"] * 30))
    with pytest.raises(UserError, match="recall"):
        calibrate_classifier(pred, signals, np.array(["ok"] * 30), recall=1.5)


def test_hinge_basis_known_values():
    from automind.cheap.classify import hinge_basis

    x = np.array([[0.0, 5.0], [2.0, -1.0]])
    got = hinge_basis(x, ((1.0,), (0.0, 4.0)))
    assert np.array_equal(got, [[0.0, 5.0, 0.0, 5.0, 1.0], [2.0, -1.0, 1.0, 0.0, 0.0]])


def test_classifier_learns_that_a_weak_drive_stays_silent_despite_a_predicted_ignition():
    """Known answer, the finite-network case of docs/cheap.md: a run is silent iff its
    drive-only activity is below 10× the silent threshold, *whatever* activity the mean field
    predicts (which ignites to saturation for many of them); otherwise ok. Only the hinge
    basis can put a step in the drive-only activity; recall must be near 1 for both."""
    from types import SimpleNamespace

    rng = np.random.default_rng(5)
    n = 4000
    a_drive = 10 ** rng.uniform(-7, -1, n)
    ignites = rng.uniform(size=n) < 0.5
    activity = np.where(ignites, rng.uniform(0.3, 0.9, n), a_drive * 10 ** rng.uniform(0, 2, n))
    status = np.where(a_drive < 1e-3, "silent", "ok").astype("<U7")
    status[:40] = "runaway"  # a few, so that every class is present
    signals = np.column_stack([activity, np.full(n, 1.05), rng.uniform(-20, 2, n), a_drive,
                               activity, rng.normal(0, 2, n), 10 ** rng.uniform(-3, 0, n)])
    cal, held = slice(0, 2000), slice(2000, None)
    clf = calibrate_classifier(SimpleNamespace(status=np.full(2000, "ok", object)), signals[cal],
                               status[cal], recall=0.95)
    part = SimpleNamespace(status=np.full(2000, "ok", object), extrapolated=np.zeros(2000, bool))
    scored = label_scores(part, clf.classify(part, signals[held]), status[held])
    assert scored["silent"]["recall"] >= 0.95 and scored["ok"]["recall"] >= 0.93
    assert scored["ok"]["precision"] >= 0.95


SMALL_MK1 = SimulatorSpec.load("mk1").with_overrides(N=500, duration=1.0)


def _model_runs(seed, window=Window()):
    """300 prior draws "simulated" by the analytic model itself: θ, its statuses at the early
    stop's thresholds, its probe rates, its statuses under ``window``, t_ref."""
    prior = Prior.load("mk1")
    model = CheapModel.for_spec(SMALL_MK1, prior, "analytic")
    theta = prior.sample_indexed(seed, range(300))
    pred = model.predict(theta, status_only=True)
    t_ref = model.t_refrac(theta)
    return theta, classify(pred, t_ref, Window()).astype(str), pred.rate_E, \
        classify(pred, t_ref, window).astype(str), t_ref


def test_check_runs_calibrated_on_another_bank_scores_all_runs():
    """``check_runs(..., calibrate_on=...)``: when the "simulated" statuses are the model's own
    (early-stop thresholds), the classifier calibrated on one set of draws reproduces them on
    another (known answer: recall ~1), and every scored run is held out."""
    from automind.cheap.check import check_runs

    theta, status, rate = _model_runs(1)[:3]
    report = check_runs(SMALL_MK1, Prior.load("mk1"), theta, status, rate, table="analytic",
                        calibrate_on=_model_runs(2)[:2])
    m = report["models"]["analytic"]
    assert report["held_out"] == int(np.isin(status, ("ok", "silent", "runaway")).sum())
    assert m["classifier"]["ok"]["recall"] >= 0.9
    for cls in ("silent", "runaway"):
        assert m["classifier"][cls]["recall"] >= 0.9 and m["classifier"][cls]["n"] >= 5
    assert m["default_thresholds"]["ok"]["recall"] == 1.0


def test_check_runs_with_saturation_scores_saturated_ok_runs_as_runaway():
    """Known answer: the "simulated" statuses are the model's own at the early stop's 0.99 and
    the rates its own probe rates, so the ok runs above activity 0.5 are exactly the ones the
    model's 0.5-threshold window calls runaway; ``saturation=0.5`` must score those as runaway
    (counts exact), and the classifier calibrated on that label on other draws recalls them."""
    from automind.cheap.check import check_runs, saturated_ok

    prior = Prior.load("mk1")
    theta, status, rate, at_half, t_ref = _model_runs(1, Window(high=0.5))
    relabelled = saturated_ok(status, rate, t_ref, 0.5)
    assert np.array_equal(np.where(relabelled, "runaway", status), at_half)
    assert relabelled.sum() >= 15  # the case is not empty
    other = _model_runs(2)[:3]
    report = check_runs(SMALL_MK1, prior, theta, status, rate, table="analytic",
                        calibrate_on=other, saturation=0.5)
    runaway = report["models"]["analytic"]["classifier"]["runaway"]
    assert runaway["n"] == int((at_half == "runaway").sum())
    assert runaway["recall"] >= 0.9
    assert report["saturated_ok"]["n"] == int(saturated_ok(status, rate, t_ref).sum())
    with pytest.raises(UserError, match="E rate of every ok run"):  # no rates to relabel by
        check_runs(SMALL_MK1, prior, theta, status, rate, table="analytic",
                   calibrate_on=other[:2], saturation=0.5)


def test_classifier_uses_the_onset_time_to_separate_saturated_runs():
    """Known answer, the case of docs/cheap.md "Onset time": networks that saturate from t_on on
    are runaway iff a_max (1 − t_on) > 0.99, and the predicted probe activity cannot tell (it
    is saturated for all of them); the onset signal is t_on with a 10 % error. With it the
    classifier must reach runaway recall >= 0.9 at ok recall ~0.95; without it (NaN), it
    cannot (recall < 0.8)."""
    from types import SimpleNamespace

    rng = np.random.default_rng(7)
    n = 4000
    a_max = rng.uniform(1.0, 1.12, n)
    t_on = 10 ** rng.uniform(-2.3, -0.8, n)
    status = np.where(a_max * (1 - t_on) > 0.99, "runaway", "ok").astype("<U7")
    status[rng.uniform(size=n) < 0.03] = "silent"  # a few, so that every class is present
    activity = np.where(status == "silent", 1e-6, a_max * 0.98)
    onset = t_on * np.exp(rng.normal(0, 0.1, n))
    signals = np.column_stack([activity, a_max, rng.uniform(-20, 2, n), np.full(n, 0.1),
                               activity, rng.normal(0, 2, n), onset])
    cal, held = slice(0, 2000), slice(2000, None)
    part = SimpleNamespace(status=np.full(2000, "ok", object), extrapolated=np.zeros(2000, bool))
    recall = {}
    for known in (True, False):
        s = signals if known else np.column_stack([signals[:, :6], np.full(n, np.nan)])
        clf = calibrate_classifier(SimpleNamespace(status=np.full(2000, "ok", object)), s[cal],
                                   status[cal], recall=0.95)
        scored = label_scores(part, clf.classify(part, s[held]), status[held])
        recall[known] = scored["runaway"]["recall"]
        if known:
            assert scored["ok"]["recall"] >= 0.93
    assert recall[True] >= 0.9 and recall[False] < 0.8


def test_onset_time_is_the_charging_time_under_the_drive_and_falls_with_it():
    """``MK1Network.onset_time``: τ_e plus the noise-free charging time from v_rest to v_thresh
    (the linear membrane's exact solution, checked by integrating it) where that is sooner than
    the drive-only ISI; a stronger external drive starts the network sooner."""
    spec = SimulatorSpec.load("mk1").with_overrides(N=500, duration=1.0)
    prior = Prior.load("mk1")
    model = CheapModel.for_spec(spec, prior, "analytic")
    theta = np.repeat(((prior.low + prior.high) / 2)[None], 5, axis=0)
    theta[:, prior.names.index("E.poisson_rate")] = np.linspace(2.0, prior.high[
        prior.names.index("E.poisson_rate")], 5)
    net = model.network(theta)
    onset = net.onset_time()
    assert np.all(np.diff(onset) <= 0) and np.all((onset > 0) & (onset <= 1.0))
    # the strongest drive: integrate C dv/dt = μ_G (μ_V − v) from v_rest to v_thresh
    zero = np.zeros_like(net.max_rate)
    neuron, drive = net.neuron(0, 4), net.drives(zero)
    mom = membrane(neuron, Drive(*(getattr(drive, k)[4, 0] for k in ("e1", "e2", "i1", "i2"))), 0.0)
    assert mom.mu_V > neuron.v_thresh
    v, t, dt = float(neuron.v_rest), 0.0, 1e-7
    while v < neuron.v_thresh:
        v += dt * (mom.mu_V - v) / mom.tau_eff
        t += dt
    isi = 1 / net.evaluate(zero, zero, cv=False)[0][4, 0]
    assert onset[4] == pytest.approx(neuron.tau_e + min(t, isi), rel=1e-3)
