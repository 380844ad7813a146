"""The fit's posterior predictive check names the features its closest re-simulations miss;
without posterior mass in the probe region the final stage starts from the nearest round runs."""

import json

import numpy as np
import pytest

from automind.errors import UserError
from automind.fit.misfit import closest_configurations, closest_misfit, describe, shown_label
from automind.io import save_npz


def _folder(path, features, distance, status, sigma):
    (path / "chunks").mkdir(parents=True)
    n = len(features)
    save_npz(path / "chunks" / "c00000.npz", index=np.arange(n), seed=np.arange(n),
             status=np.array(status, dtype="U8"), distance=np.array(distance, float),
             accepted=np.array(distance) <= 2, features=np.array(features, float))
    (path / "noise.json").write_text(json.dumps({"sigma": sigma}))
    return path


def test_the_closest_runs_miss_exactly_the_feature_the_model_cannot_reach(tmp_path):
    rng = np.random.default_rng(0)
    target = np.array([1.0, 2.0, 3.0])
    sigma = [0.1, 0.5, None]  # the third feature has no noise scale: never counted
    # every run within noise on "rate", 3 sd too low on "spread"; the far runs say nothing
    near = target + np.c_[rng.normal(0, 0.1, 6), -1.5 + rng.normal(0, 0.1, 6), rng.normal(0, 9, 6)]
    far = target + np.c_[np.full(4, 5.0), np.zeros(4), np.zeros(4)]
    a = _folder(tmp_path / "final", np.r_[near[:3], far[:2]], [2.1, 2.2, 2.3, 30, 31],
                ["ok"] * 5, sigma)
    b = _folder(tmp_path / "g1", np.r_[near[3:], far[2:], [[np.nan] * 3]],
                [2.4, 2.5, 2.05, 29, 28, np.nan], ["ok"] * 5 + ["silent"], sigma)
    misfit = closest_misfit([a, b, tmp_path / "unfinished"], target, ["rate", "spread", "psd"], 2.0)
    assert misfit["closest"] == 5 and misfit["distances"] == [2.05, 2.1, 2.2, 2.3, 2.4]
    by_name = {f["name"]: f for f in misfit["features"]}
    assert misfit["missed"] == ["spread"]
    assert by_name["spread"]["median_z"] < -2.5 and abs(by_name["rate"]["median_z"]) < 1.5
    assert by_name["psd"]["median_abs_z"] == 0.0  # σ = inf: ignored, like the acceptance
    assert [f["name"] for f in misfit["features"]][0] == "spread"
    line = describe(misfit)
    assert "2.05–2.40 noise sd" in line
    assert line.endswith(f"miss spread ({by_name['spread']['median_z']:+.1f} sd)")


def test_no_valid_run_is_said_plainly(tmp_path):
    a = _folder(tmp_path / "final", [[np.nan, np.nan]], [np.nan], ["silent"], [1.0, 1.0])
    misfit = closest_misfit([a], np.zeros(2), ["a", "b"], 2.0)
    assert misfit["closest"] == 0 and misfit["missed"] == []
    assert describe(misfit) == "no valid re-simulation to compare with the target"


def test_the_figures_show_accepted_configurations_else_the_closest_simulated(tmp_path):
    from automind.invariance.consistent import write_set
    from automind.prior import Prior

    prior = Prior.load("brunel")
    theta = prior.sample(5, seed=0)
    last = _folder(tmp_path / "g2", np.zeros((5, 2)), [3.0, np.nan, 1.5, 2.5, 9.0], ["ok"] * 5,
                   [1.0, 1.0])
    np.save(last / "samples.npy", theta)
    pooled = tmp_path / "set"
    pooled.mkdir()
    write_set(pooled, prior, theta[[2]], np.zeros((1, 2)), np.array([7]), np.array([1.5]),
              np.array([2]))
    summary = {"consistent_set_folder": str(pooled), "last_generation_folder": str(last),
               "set_size": 1}
    # one accepted configuration is fewer than asked for: the closest re-simulations, in order
    best = closest_configurations(summary, 3)
    assert best["distance"].tolist() == [1.5, 2.5, 3.0] and best["accepted"].tolist() == [
        True, False, False]
    assert np.array_equal(best["theta"], theta[[2, 3, 0]])
    assert shown_label(best["accepted"]) == "closest (1 accepted)"
    # enough accepted ones: the set's own
    best = closest_configurations(summary, 1)
    assert best["seed"].tolist() == [7] and shown_label(best["accepted"]) == "accepted"
    assert shown_label(np.zeros(2, bool)) == "closest, none accepted"


class _PosteriorWithNoMassThere:
    """A posterior whose draws all fall outside its restriction (sampling gives up)."""

    model = {"feature_columns": [0, 1]}
    features = {"transforms": ["log10", "none", "none"]}

    def sample(self, n, x, seed=0):
        from automind.inference.posterior import TooFewSamples

        raise TooFewSamples("only 0 of 4 posterior samples in 20000 draws fall inside")


def test_a_final_stage_without_posterior_mass_starts_from_the_nearest_round_runs(tmp_path):
    """Every round's posterior extrapolating beyond the probe region used to end the fit; the
    final stage starts from the valid round simulations nearest the target instead (in the
    transformed features, scaled by their spread; a missing feature is far), repeating
    them when fewer than asked, and says so."""
    from automind.fit.run import Fit

    fit = Fit.__new__(Fit)
    fit.out, fit.settings = tmp_path, type("S", (), {"seed": 1})()
    fit.x_target = np.array([10.0, 0.5, np.nan])  # rate 10 Hz (log10), CV 0.5
    x = np.array([[100.0, 0.5, 0], [10.0, 0.6, 0], [9.0, np.nan, 0], [10.0, 0.5, 0],
                  [1.0, 2.0, 0]])
    theta = np.arange(10.0).reshape(5, 2)
    status = np.array(["ok", "ok", "ok", "silent", "ok"])
    fit.round_data = [{"theta": theta[:2], "x": x[:2], "status": status[:2]},
                      {"theta": theta[2:], "x": x[2:], "status": status[2:]}]
    chosen = fit._final_samples(_PosteriorWithNoMassThere(), 6)
    # valid runs by distance: 1 (CV off by 0.1), 0 (rate ×10), 4 (far), 2 (CV missing)
    np.testing.assert_array_equal(chosen, theta[[1, 0, 4, 2, 1, 0]])
    source = json.loads((tmp_path / "final" / "samples_source.json").read_text())
    assert source["source"] == "nearest round simulations" and source["valid_round_simulations"] == 4
    assert "posterior samples" in source["reason"]
    for data in fit.round_data:
        data["status"] = np.array(["silent"] * len(data["status"]))
    (tmp_path / "final" / "samples_source.json").unlink()
    with pytest.raises(UserError, match="no truncated-round simulation is valid"):
        fit._final_samples(_PosteriorWithNoMassThere(), 6)
