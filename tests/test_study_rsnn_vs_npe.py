"""rsnn_vs_npe: the loss Hessian's known answer on a quadratic, and the study at quick sizes
(target, NPE bank and consistent set, gradient fits with HPD levels, Hessian angles)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from automind.cli import main
from automind.prior import Prior
from automind.rsnn.hessian import abs_cos, loss_hessian

STUDY = Path(__file__).resolve().parents[1] / "studies" / "rsnn_vs_npe"


def test_loss_hessian_of_a_quadratic_in_standardised_coordinates():
    """L(θ) = (θ − c)ᵀA(θ − c) under a uniform box prior: H_u = 2·D A D with D the prior sd
    (width/√12), whatever the seeds; the sloppiest direction is its smallest eigenvector."""
    prior = Prior.from_dict({"parameter": [{"name": "a", "low": 0.0, "high": 2.0},
                                           {"name": "b", "low": 0.0, "high": 4.0}]})
    A, c = np.array([[3.0, 1.0], [1.0, 0.5]]), np.array([1.0, 2.0])
    At, ct = torch.tensor(A), torch.tensor(c)

    def loss(theta, seeds):
        d = theta - ct
        return ((d @ At) * d).sum(1)

    found = loss_hessian(loss, prior, [1.2, 1.5], step=0.1, repeats=2)
    D = np.diag([2.0, 4.0]) / np.sqrt(12)
    expected = 2 * D @ A @ D
    np.testing.assert_allclose(found["hessian"], expected, rtol=1e-6)
    values, vectors = np.linalg.eigh(expected)
    assert abs_cos(found["sloppiest"], vectors[:, np.argmin(np.abs(values))]) > 1 - 1e-9
    assert abs_cos([1, 0], [0, 1]) == 0 and abs_cos([1, 1], [-2, -2]) == pytest.approx(1)


def test_quick_study_places_gradient_fits_under_the_posterior(tmp_path):
    assert main(["study", "run", str(STUDY), "--quick", "--out", str(tmp_path), "--workers", "1"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] and results["n_fits"] == len(results["fits"]) == 2
    for row in results["fits"]:
        assert 0 <= row["hpd_level"] <= 1
        if row["status"] == "ok":
            assert row["brian2_distance"] is not None and row["brian2_distance"] >= 0
    angles = [r["abs_cos"] for r in results["fits"] if r["abs_cos"] is not None]
    assert len(angles) == 1 and 0 <= angles[0] <= 1
    assert results["accepted"] == sum(r["accepted"] for r in results["fits"])
    assert set(results["seconds"]) == {"bank", "training", "gradient_fits", "hessians"}
    assert results["hessian"] == "surrogate"  # study.toml's, quick or not
    hessians = [r for r in results["fits"] if r["abs_cos"] is not None]
    assert all(len(r["hessian_eigenvalues"]) == 6 and "hessian_resolved" not in r for r in hessians)
    assert 0 <= results["median_pc1_in_flat_subspace"] <= 1
    assert (tmp_path / "gradient" / "compare.json").is_file()
    assert all(0 <= r["start_hpd_level"] <= 1 for r in results["fits"])
    reference = results["bank_reference"]  # the bank's runs within d <= 2 and their HPD levels
    assert reference["n"] == 60 and reference["n_within"] == len(reference["hpd_levels"])
    assert max(reference["distances"], default=0) <= reference["threshold"] == 2.0
    from automind.inference import load_posterior
    assert len(load_posterior(tmp_path / "posterior").estimators) == 2  # quick: an ensemble of 2
    calibration = results["posterior_calibration"]  # the 10 of 40 held-out runs nearest the target
    assert calibration["cases"] == 10 and calibration["held_out"] == 40 and calibration["of"] >= 10
    assert 0 <= calibration["truth_hpd_level"] <= 1 and 0 <= calibration["hpd_inside_90pct"] <= 1
    assert set(calibration["marginal_inside_90pct_interval"]) == set(results["truth"])
    assert (tmp_path / "coverage_near.png").stat().st_size > 5000
    arms = {"prior", "from_posterior", "screened", "gauss_newton", "gauss_newton_from_posterior"}
    met = results["targets"]["8_of_10_accepted_inside_hpd"]
    assert set(met) == arms and set(results["targets"]["abs_cos_at_least_0.8"]) == arms
    assert met["gauss_newton"] == (results["gauss_newton"]["accepted_and_inside_90pct"] == 2)
    record = json.loads((tmp_path / "gradient_gauss_newton" / "fit.json").read_text())
    assert record["settings"]["gauss_newton_seeds"] == 3  # the study's, unchanged by [quick]
    posterior = results["from_posterior"]  # 2 fits from posterior samples, their own Hessian
    assert len(posterior["fits"]) == 2 and (tmp_path / "gradient_from_posterior").is_dir()
    record = json.loads((tmp_path / "gradient_from_posterior" / "fit.json").read_text())
    assert record["settings"]["starts_from"] == str(tmp_path / "posterior")
    assert (tmp_path / "consistent" / "consistent_set.csv").is_file()
    screened = results["screened"]  # the 2 of 4 prior draws with the lowest d², fitted
    d2 = np.load(tmp_path / "gradient_screened" / "screen" / "screen.npz")["d2"]
    assert len(screened["fits"]) == 2 and len(d2) == 4
    kept = np.load(tmp_path / "gradient_screened" / "starts.npy")
    draws = np.load(tmp_path / "gradient_screened" / "screen" / "draws.npy")
    np.testing.assert_array_equal(kept, draws[np.argsort(d2)[:2]])
    refined = results["gauss_newton"]  # the same screened starts, 2 Gauss–Newton steps alone
    np.testing.assert_array_equal(np.load(tmp_path / "gradient_gauss_newton" / "starts.npy"), kept)
    jtj = np.load(tmp_path / "gradient_gauss_newton" / "gauss_newton" / "refined.npz")["jtj"]
    assert len(refined["fits"]) == 2 and jtj.shape == (2, 6, 6)
    for row in refined["fits"]:  # |cos| from the refinement's own JᵀJ, with PC1
        assert row["abs_cos_gauss_newton"] is None or 0 <= row["abs_cos_gauss_newton"] <= 1
    assert refined["median_abs_cos_gauss_newton"] is not None
    from_posterior = results["gauss_newton_from_posterior"]  # the posterior starts, refined
    record = json.loads((tmp_path / "gradient_posterior_gauss_newton" / "fit.json").read_text())
    assert len(from_posterior["fits"]) == 2 and record["settings"]["gauss_newton"] == 2
    np.testing.assert_array_equal(
        np.load(tmp_path / "gradient_posterior_gauss_newton" / "starts.npy"),
        np.load(tmp_path / "gradient_from_posterior" / "starts.npy"))


@pytest.mark.parametrize("key, value, message", [
    ("hessian", "exact", "hessian must be one of"),
    ("posterior_starts", 2.5, "posterior_starts must be a whole number >= 0"),
    ("posterior_steps", 0, "posterior_steps must be a whole number >= 1"),
    ("screen", 1, r"screen \(1 draws\) must be 0 or at least starts"),
    ("gauss_newton", -1, "gauss_newton must be a whole number >= 0")])
def test_a_bad_gradient_setting_is_refused_before_any_work(tmp_path, key, value, message):
    import tomllib

    from automind.errors import UserError
    from automind.studies.rsnn_vs_npe import run

    config = tomllib.loads((STUDY / "study.toml").read_text())
    config["gradient"][key] = value
    config["quick"].pop(key, None)
    with pytest.raises(UserError, match=message):
        run(config, tmp_path / "out", workers=1, quick=True, progress=False)
    assert not (tmp_path / "out").exists()


def test_the_gauss_newton_hessian_reports_its_resolved_derivatives(tmp_path):
    import tomllib

    from automind.studies.rsnn_vs_npe import run

    config = tomllib.loads((STUDY / "study.toml").read_text())
    config["gradient"]["hessian"] = "gauss_newton"
    results = run(config, tmp_path, workers=1, quick=True, progress=False)
    assert results["hessian"] == "gauss_newton"
    hessians = [r for r in results["fits"] if r["abs_cos"] is not None]
    assert hessians and all(0 <= r["hessian_resolved"] <= 1 for r in hessians)
