"""The acceptance's noise model (``inference/noise.py``) on cases with known answers."""

import numpy as np
import pytest

from automind.inference.noise import NoiseModel, held_out_distances, shrunk_correlation

K = 40


def common_mode(n, rng, independent=0.3):
    """Features that move together (one shared N(0, 1) term, as PSD bands of a bursting
    network do) plus independent noise of sd ``independent``."""
    return rng.normal(size=(n, 1)) + independent * rng.normal(size=(n, K))


def test_a_common_mode_no_longer_rejects_the_truths_own_runs():
    """With ~1 effective degree of freedom the RMS of z is spread far wider than for
    independent features: the RMS rule rejects ~15 % of the truth's own runs, the whitened
    distance (σ and shrunk R from 32 runs) about none."""
    rng = np.random.default_rng(0)
    model = NoiseModel.from_runs(common_mode(32, rng), np.zeros(K))
    target, runs = common_mode(1, rng)[0], common_mode(4000, rng)
    assert (model.distance(runs, target) <= 2).mean() > 0.98
    assert (NoiseModel(model.sigma).distance(runs, target) <= 2).mean() < 0.9


def test_it_is_stricter_on_patterns_the_noise_does_not_make():
    """A shift of ±3 independent sd in alternating features (not the common mode) is within
    1 total σ per feature, so the RMS rule accepts it; the whitened distance does not."""
    rng = np.random.default_rng(1)
    model = NoiseModel.from_runs(common_mode(32, rng), np.zeros(K))
    pattern = 0.9 * np.where(np.arange(K) % 2, 1.0, -1.0)
    shifted = common_mode(500, rng) + pattern
    target = np.zeros(K)
    assert (NoiseModel(model.sigma).distance(shifted, target) <= 2).mean() > 0.8
    assert (model.distance(shifted, target) <= 2).mean() < 0.05


def test_independent_features_keep_the_rms_rule():
    rng = np.random.default_rng(2)
    runs = rng.normal(size=(32, K))
    R = shrunk_correlation(runs)
    assert np.abs(R - np.eye(K)).max() < 0.15  # shrunk to near the identity
    model = NoiseModel.from_runs(runs, np.zeros(K))
    test = rng.normal(size=(2000, K))
    new, old = model.distance(test, np.zeros(K)), NoiseModel(model.sigma).distance(test, np.zeros(K))
    assert np.median(np.abs(new / old - 1)) < 0.1
    assert abs((new <= 2).mean() - (old <= 2).mean()) < 0.02


def test_constant_and_missing_features():
    rng = np.random.default_rng(3)
    runs = np.c_[rng.normal(size=(32, 3)), np.full(32, 5.0)]  # the last feature never varies
    model = NoiseModel.from_runs(runs, np.array([0, 0, 0, 5.0]))
    assert model.sigma[3] == pytest.approx(1e-3 * 6) and model.correlation[3, 3] == 1
    assert np.all(model.correlation[3, :3] == 0)
    assert np.isnan(model.distance(np.array([[0.1, np.nan, 0, 5]]), np.array([0, 0, 0, 5.0]))[0])
    again = NoiseModel.from_dict(model.to_dict())
    np.testing.assert_allclose(again.distance(runs, runs[0]), model.distance(runs, runs[0]),
                               rtol=1e-5)


def test_widened_adds_independent_noise_in_quadrature():
    model = NoiseModel(np.array([1.0, 2.0]), np.array([[1.0, 0.5], [0.5, 1.0]]))
    wide = model.widened([np.nan, 2.0])
    np.testing.assert_allclose(wide.sigma, [1.0, np.sqrt(8.0)])
    assert wide.correlation[0, 1] == pytest.approx(0.5 * 2 / np.sqrt(8.0))
    plain = NoiseModel(np.array([3.0])).widened([4.0])
    assert plain.sigma[0] == pytest.approx(5.0) and plain.correlation is None


def test_held_out_distances_score_each_repeat_against_the_others():
    rng = np.random.default_rng(4)
    runs = common_mode(32, rng)
    d = held_out_distances(runs, runs.mean(0))
    assert d.shape == (32,) and np.all(np.isfinite(d)) and np.median(d) < 2
    # in-sample the runs set their own scale and look closer than they are
    assert np.median(NoiseModel.from_runs(runs, runs.mean(0)).distance(runs, runs.mean(0))) < np.median(d)


def test_a_failed_repeat_does_not_switch_the_correlation_off():
    """A failed or timed-out reference run has no features (all NaN): it is left out of R
    instead of making every feature 'missing' (R = I, the RMS rule again)."""
    rng = np.random.default_rng(5)
    runs = common_mode(32, rng)
    failed = runs.copy()
    failed[7] = np.nan
    R = shrunk_correlation(failed)
    np.testing.assert_allclose(R, shrunk_correlation(np.delete(runs, 7, 0)))
    assert np.abs(R - np.eye(K)).max() > 0.5


def test_select_keeps_the_subset_of_sigma_and_correlation():
    model = NoiseModel(np.array([1.0, 2.0, 3.0]),
                       np.array([[1.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.0]]))
    part = model.select(np.array([True, False, True]))
    np.testing.assert_array_equal(part.sigma, [1.0, 3.0])
    np.testing.assert_array_equal(part.correlation, [[1.0, 0.1], [0.1, 1.0]])
    assert NoiseModel(np.array([1.0, 2.0])).select([1]).correlation is None


def test_features_without_a_noise_scale_are_not_counted_as_matches():
    """A feature no repeat defines (σ = inf) is left out of the distance, and out of k: d
    equals the distance on the other features alone (it used to shrink d by √(k_used/k))."""
    rng = np.random.default_rng(5)
    runs = np.c_[rng.normal(size=(32, 2)), np.full((32, 2), np.nan)]
    model = NoiseModel.from_runs(runs, np.zeros(4))
    assert np.all(np.isinf(model.sigma[2:]))
    x = np.array([[1.0, 1.0, np.nan, np.nan]])
    assert model.distance(x, np.zeros(4))[0] == pytest.approx(
        model.select([0, 1]).distance(x[:, :2], np.zeros(2))[0])


def test_features_the_repeats_tie_together_exactly_keep_r_invertible():
    """Two features that are exact mirror images in every repeat (b and 1 − b): the
    Ledoit–Wolf weight can be 0, which left R singular; the floor keeps it positive
    definite, also after the JSON round trip."""
    b = np.r_[np.zeros(16), np.ones(16)]
    model = NoiseModel.from_runs(np.c_[b, 1 - b], np.zeros(2))
    assert np.linalg.eigvalsh(model.correlation).min() > 0
    again = NoiseModel.from_dict(model.to_dict())
    assert np.isfinite(again.distance(np.array([[0.5, 0.5]]), np.zeros(2))).all()


def test_noise_counts_only_the_repeats_that_ran_ok():
    """Stopped (silent / runaway) repeats are not noise of the reference's activity; fewer
    than 3 ok repeats is a clear error naming the statuses."""
    from types import SimpleNamespace

    from automind.errors import UserError
    from automind.inference.validate import ok_runs

    runs = [SimpleNamespace(status=s) for s in ["ok"] * 5 + ["runaway"] * 2]
    assert len(ok_runs(runs)) == 5
    with pytest.raises(UserError, match="ok in 2 of 4 repeats .*runaway 2"):
        ok_runs(runs[3:])
    assert len(ok_runs(runs[:2])) == 2  # two asked for, both ok (the quick studies' case)


def test_without_a_truth_the_noise_reference_moves_on_from_a_sample_that_does_not_run_ok(monkeypatch):
    """The first posterior sample runs silent in every repeat: the next one becomes the
    reference (labelled so); when none of the candidates runs ok, the error says why; with a
    truth there is no fallback."""
    from types import SimpleNamespace

    import automind.inference.validate as validate
    from automind.errors import UserError
    from automind.invariance.consistent import _noise_reference

    samples = np.array([[0.0], [1.0], [2.0]])
    runs_ok = {0.0: False, 1.0: True, 2.0: True}

    def fake_runs(posterior, spec, reference, repeats, seed, workers, dask):
        status = "ok" if runs_ok[float(reference[0])] else "silent"
        return [SimpleNamespace(status=status)] * repeats

    monkeypatch.setattr(validate, "noise_runs", fake_runs)
    reference, runs, label = _noise_reference(None, None, samples, None, 0, 1, None)
    assert reference.tolist() == [1.0] and label == "sample 1" and len(runs) == 32
    runs_ok.update({1.0: False, 2.0: False})
    with pytest.raises(UserError, match="ok in 0 of 32 repeats"):
        _noise_reference(None, None, samples, None, 0, 1, None)
    with pytest.raises(UserError):  # the truth is the reference or nothing
        _noise_reference(None, None, samples, np.array([0.0]), 0, 1, None)


def test_an_indicator_all_repeats_agree_on_is_floored_at_a_bernoulli_sd():
    """burst_valid = 1 in all 32 repeats: its sd is 0 and the plain floor (0.002) puts a run
    without bursts 500 sd away; as a 0/1 feature (step 1) its σ is the Bernoulli sd at
    Laplace's share 33/34 (0.169), so that run lies 5.9 sd away on it. Other features keep
    their σ."""
    rng = np.random.default_rng(3)
    runs = np.column_stack([rng.normal(size=32), np.ones(32)])
    target = np.array([0.0, 1.0])
    plain = NoiseModel.from_runs(runs, target)
    floored = NoiseModel.from_runs(runs, target, quantum=np.array([0.0, 1.0]))
    assert plain.sigma[1] == pytest.approx(0.002)
    assert floored.sigma[1] == pytest.approx(np.sqrt(33 / 34 * 1 / 34))
    assert floored.sigma[0] == plain.sigma[0]
    no_bursts = np.array([[0.0, 0.0]])
    assert plain.distance(no_bursts, target)[0] > 300
    assert floored.distance(no_bursts, target)[0] == pytest.approx(34 / np.sqrt(33) / np.sqrt(2))
    half = np.column_stack([rng.normal(size=32), np.arange(32) % 2])  # 16 of 32: sd 0.5 either way
    assert NoiseModel.from_runs(half, target, quantum=np.array([0.0, 1.0])).sigma[1] == \
        pytest.approx(0.5)
    # 30 of 32 bursting: Laplace's share of the odd ones out, 3/34, above their plain sd
    mostly = np.column_stack([rng.normal(size=32), np.r_[np.ones(30), 0, 0]])
    assert NoiseModel.from_runs(mostly, target, quantum=np.array([0.0, 1.0])).sigma[1] == \
        pytest.approx(np.sqrt(3 / 34 * 31 / 34))


def test_a_count_all_repeats_agree_on_is_floored_at_one_step():
    """Target 91 of studies/mk1_targets: each of 32 repeats has exactly one burst in its 4
    analysed seconds (burst_rate 0.25/s), so the plain floor (0.00125) put a run with 0 or 2
    bursts 200 sd away on that feature. As a count per second its step is 1/4 s⁻¹ and σ is
    the step times the Bernoulli sd at 1/34: one burst more or less counts 5.9 sd."""
    from automind.features.bursts import feature_quanta

    names = ["rate_mean", "burst_rate", "burst_valid"]
    quantum = feature_quanta(names, 4.0)
    assert quantum.tolist() == [0.0, 0.25, 1.0]
    rng = np.random.default_rng(5)
    runs = np.column_stack([rng.normal(size=32), np.full(32, 0.25), np.zeros(32)])
    target = np.array([0.0, 0.25, 0.0])
    sigma = NoiseModel.from_runs(runs, target, quantum=quantum).sigma
    assert NoiseModel.from_runs(runs, target).sigma[1] == pytest.approx(0.00125)
    assert sigma[1] == pytest.approx(0.25 * np.sqrt(33 / 34 * 1 / 34))
    for two_bursts in (0.5, 0.0):
        z = (two_bursts - 0.25) / sigma[1]
        assert abs(z) == pytest.approx(34 / np.sqrt(33))
    # a NaN-only column stays ignored (σ = inf), whatever its step
    missing = np.column_stack([runs[:, :2], np.full(32, np.nan)])
    assert np.isinf(NoiseModel.from_runs(missing, target, quantum=quantum).sigma[2])


def test_feature_quanta_follow_the_posteriors_selected_features_and_run_length():
    """The acceptance finds the quantised features among the columns the posterior
    conditions on, with counts per second stepping by 1 / the spec's analysed seconds."""
    from types import SimpleNamespace

    from automind.inference.validate import feature_quanta

    names = {"names": ["rate_mean", "burst_rate", "burst_valid"]}
    spec = SimpleNamespace(duration=4.5, t_analysis_start=0.5)
    assert feature_quanta(SimpleNamespace(features=names, config={"feature_columns": [0, 2]}),
                          spec).tolist() == [0.0, 1.0]
    assert feature_quanta(SimpleNamespace(features=names, config={}), spec).tolist() == \
        [0.0, 0.25, 1.0]
