"""The fit's posterior predictive check names the features its closest re-simulations miss."""

import json

import numpy as np

from automind.fit.misfit import closest_misfit, describe
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
