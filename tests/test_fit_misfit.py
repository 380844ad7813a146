"""The fit's posterior predictive check names the features its closest re-simulations miss."""

import json

import numpy as np

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
