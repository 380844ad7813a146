"""`automind fit --method gradient`: a drive rate recovered by gradient descent through the
torch MK1 and accepted by Brian2 re-simulation; the run layout, resume and refusals."""

import json

import numpy as np
import pytest

from automind.cli import main
from automind.errors import UserError
from automind.fit.gradient import BEST_SEEDS, fit_gradient
from automind.fit.plan import NOISE_REPEATS
from automind.rsnn.fit import fit_theta
from automind.simulators import SimulatorSpec
from test_rsnn_fit import drive_prior

SPEC = SimulatorSpec.load("mk1").with_overrides(N=20, dt=5e-4, duration=0.3, t_analysis_start=0.05)
FIT = dict(features="spikes", start_theta=[[1.8], [4.2]], fit_features=("rate_mean",), steps=20,
           lr=0.12, seed=3, progress=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """0.25 s of the uncoupled network driven at 3 Hz, simulated in Brian2, as an NWB file."""
    from automind.features.spikedata import SpikeData
    from automind.recordings.write import write_nwb
    from automind.simulators import Simulator

    result = Simulator(SPEC).run(drive_prior().to_simulator([3.0]), seed=4242)
    assert result.status == "ok"
    path = tmp_path_factory.mktemp("gradient-target") / "target.nwb"
    return write_nwb(SpikeData.from_simulation(result).window(0.05), path)


@pytest.fixture(scope="module")
def fitted(recording, tmp_path_factory):
    out = tmp_path_factory.mktemp("gradient") / "run"
    return out, fit_gradient(recording, out, simulator=SPEC, prior=drive_prior(), truth=[3.0], **FIT)


def test_gradient_fit_recovers_the_drive_and_brian2_accepts_it(fitted):
    out, summary = fitted
    assert summary["method"] == "gradient" and summary["n_starts"] == 2 and summary["n_failed"] == 0
    theta = [row["theta"]["E.poisson_rate"] for row in summary["fits"]]
    assert np.all(np.abs(np.array(theta) - 3.0) < 0.15), theta  # from 1.8 and 4.2 Hz, within 5 %
    assert summary["fits"][0]["accepted"] and summary["fits"][0]["brian2_distance"] <= 2
    assert summary["yield"] >= 0.5
    assert summary["yield"] == np.mean([row["accepted"] for row in summary["fits"]])
    record = json.loads((out / "fit.json").read_text())
    assert record["method"] == "gradient" and record["settings"]["starts"] == 2
    noise = json.loads((out / "final" / "noise.json").read_text())
    assert noise["reference"] == "truth" and len(noise["statuses"]) == NOISE_REPEATS
    rows = (out / "final" / "consistent_set.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + summary["n_consistent"] and rows[0].startswith("sample,E.poisson_rate")
    assert (out / "gradient" / "fits.csv").is_file() and (out / "final" / "samples.npy").is_file()
    assert not (out / "gradient" / "checkpoint.npz").exists()  # removed once the fits are saved
    assert json.loads((out / "summary.json").read_text())["yield"] == summary["yield"]
    # the best start: the lowest median d over the check's run and BEST_SEEDS - 1 new seeds,
    # all of which reproduce the 3 Hz recording (a fit within 5 % of the drive)
    distances = np.array([row["brian2_distances"] for row in summary["fits"]])
    assert distances.shape == (2, BEST_SEEDS) and np.all(distances < 2)
    assert distances[:, 0].tolist() == [row["brian2_distance"] for row in summary["fits"]]
    assert summary["best_start"] == int(np.argmin(np.median(distances, 1)))
    assert summary["simulations"] == 2 * BEST_SEEDS + NOISE_REPEATS


def test_screen_fits_the_draws_nearest_the_target(recording, tmp_path):
    """--screen 8 --starts 2: eight prior draws of the drive (1-5 Hz) run forward once, and the
    two with the lowest d² are fitted: on the rate of an uncoupled network they are the draws
    nearest the 3 Hz truth."""
    out = tmp_path / "run"
    settings = FIT | {"steps": 2, "screen": 8, "starts": 2}
    del settings["start_theta"]
    summary = fit_gradient(recording, out, simulator=SPEC, prior=drive_prior(), truth=[3.0],
                           **settings)
    draws = np.load(out / "screen" / "draws.npy")[:, 0]
    screened = np.load(out / "screen" / "screen.npz")
    assert len(draws) == 8 and screened["d2"].shape == (8,)
    kept = screened["kept"]
    assert set(kept) == set(np.argsort(screened["d2"])[:2])
    np.testing.assert_array_equal(np.load(out / "starts.npy")[:, 0], draws[kept])
    assert np.abs(draws[kept] - 3.0).max() < np.median(np.abs(draws - 3.0))
    assert summary["n_starts"] == 2 and summary["screen"]["draws"] == 8
    with pytest.raises(UserError, match="--screen draws the starts"):
        fit_gradient(recording, tmp_path / "both", simulator=SPEC, prior=drive_prior(),
                     **(FIT | {"screen": 8}))
    assert not (tmp_path / "both").exists()


def test_gauss_newton_alone_reaches_the_drive_from_both_sides(recording, tmp_path):
    """--steps 0 --gauss-newton 4: derivative-free Gauss–Newton steps on forward runs from 1.8 and
    4.2 Hz end near the 3 Hz truth and Brian2 accepts them; the layout and the refusals."""
    out = tmp_path / "run"
    summary = fit_gradient(recording, out, simulator=SPEC, prior=drive_prior(), truth=[3.0],
                           **(FIT | {"steps": 0, "gauss_newton": 4}))
    theta = np.array([row["theta"]["E.poisson_rate"] for row in summary["fits"]])
    assert np.all(np.abs(theta - 3.0) < 0.3), theta  # within 10 %, from 40 % away
    assert all(row["accepted"] for row in summary["fits"])
    refined = np.load(out / "gauss_newton" / "refined.npz")
    np.testing.assert_allclose(refined["theta"][:, 0], theta, rtol=1e-6)
    np.testing.assert_array_equal(refined["start"][:, 0], [1.8, 4.2])
    assert refined["d2"].shape == (4, 2) and np.all(refined["d2"][0] > refined["d2"][-1])
    r = summary["gauss_newton"]
    assert r["steps"] == 4 and r["median_d2_final"] < r["median_d2_first"]
    assert summary["fit_seconds"] == pytest.approx(r["seconds"])  # no gradient steps
    assert not (out / "gradient").exists() and (out / "gauss_newton" / "fits.csv").is_file()
    assert json.loads((out / "fit.json").read_text())["settings"]["gauss_newton"] == 4
    for bad, message in (({"steps": 0}, "--steps 0 needs --gauss-newton"),
                         ({"gauss_newton": 2, "fit": "weights"}, "weights fit"),
                         ({"gauss_newton": 2, "gauss_newton_step": 1.5}, "--gauss-newton-step"),
                         ({"gauss_newton": 2, "gauss_newton_seeds": 0}, "--gauss-newton-seeds")):
        with pytest.raises(UserError, match=message):
            fit_gradient(recording, tmp_path / "bad", simulator=SPEC, prior=drive_prior(),
                         **(FIT | bad))
    assert not (tmp_path / "bad").exists()


def test_fits_are_checked_for_degenerate_solutions(fitted, recording, tmp_path):
    """Every Brian2 check records the fit's E rate; a band fit also its band's share of the
    power at the start and the fit, on the same seeds. The uncoupled network's spectrum is flat
    whatever its drive, so both shares lie near the band's share of the frequency bins (81 of
    399; 16 E units over 2 s make them noisy), and the flag follows the shares' gain."""
    out, summary = fitted
    assert summary["n_degenerate"] == 0
    assert all(row["brian2_rate_E"] > 0.5 and row["degenerate"] is False for row in summary["fits"])
    band = fit_gradient(recording, tmp_path / "band", prior=drive_prior(), truth=[3.0],
                        simulator=SPEC.with_overrides(duration=2.1),
                        **(FIT | {"start_theta": [[2.0]], "steps": 2, "band": (20.0, 60.0),
                                  "rate_range": (0.1, 100.0)}))
    row = band["fits"][0]
    assert 0.1 < row["band_share"] < 0.35 and 0.1 < row["band_share_start"] < 0.35
    assert row["degenerate"] is (row["band_share"] / row["band_share_start"] < 1.1)
    assert band["n_degenerate"] == int(row["degenerate"])
    # the fit on BEST_SEEDS seeds and its start, in Brian2
    assert band["simulations"] == BEST_SEEDS + 1 + NOISE_REPEATS


def test_an_interrupted_gradient_stage_resumes_from_its_checkpoint(fitted, recording, tmp_path,
                                                                   monkeypatch):
    import automind.fit.gradient as gradient

    out, summary = fitted
    monkeypatch.setattr(gradient, "CHECKPOINT_STEPS", 5)

    def interrupted(progress, text):
        if text.startswith("step 10/"):  # reported after step 10's checkpoint was saved
            raise KeyboardInterrupt

    run = tmp_path / "run"
    monkeypatch.setattr(gradient, "_say", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit_gradient(recording, run, simulator=SPEC, prior=drive_prior(), truth=[3.0], **FIT)
    assert int(np.load(run / "gradient" / "checkpoint.npz")["step"]) == 9
    monkeypatch.setattr(gradient, "_say", lambda progress, text: None)
    again = fit_gradient(recording, run, simulator=SPEC, prior=drive_prior(), truth=[3.0], **FIT)
    assert [row["theta"] for row in again["fits"]] == [row["theta"] for row in summary["fits"]]
    assert not (run / "gradient" / "checkpoint.npz").exists()


def test_gradient_fit_resumes_and_refuses_other_settings_or_methods(fitted, recording):
    from automind.fit import fit

    out, summary = fitted
    stamp = (out / "gradient" / "fits.npz").stat().st_mtime_ns
    again = fit_gradient(recording, out, simulator=SPEC, prior=drive_prior(), truth=[3.0],
                         **(FIT | {"memory_limit_gib": 7.5}))  # a ceiling, not a setting
    assert again["fits"] == summary["fits"]
    assert (out / "gradient" / "fits.npz").stat().st_mtime_ns == stamp  # nothing recomputed
    with pytest.raises(UserError, match="other settings"):
        fit_gradient(recording, out, simulator=SPEC, prior=drive_prior(), truth=[3.0],
                     **(FIT | {"lr": 0.2}))  # another lr
    with pytest.raises(UserError, match="method"):
        fit(recording, out, simulator=SPEC, prior="mk1", features="spikes", budget=1000, refine=0,
            progress=False, report=False)


def test_gradient_fit_refusals(recording, tmp_path, capsys):
    prior = drive_prior()
    with pytest.raises(UserError, match="no differentiable feature"):
        fit_gradient(recording, tmp_path / "a", simulator=SPEC, prior=prior,
                     **(FIT | {"fit_features": ("isi_cv_mean",)}))
    with pytest.raises(UserError, match="outside the prior"):
        fit_gradient(recording, tmp_path / "b", simulator=SPEC, prior=prior,
                     **(FIT | {"start_theta": [[9.0]]}))
    with pytest.raises(UserError, match=r"need ~\d+\.\d GiB"):
        fit_gradient(recording, tmp_path / "c", simulator=SPEC.with_overrides(N=2000, duration=2.0),
                     prior=prior, **(FIT | {"start_theta": [[3.0]] * 16}))
    with pytest.raises(UserError, match="gameable"):
        fit_gradient(recording, tmp_path / "d", simulator=SPEC, prior=prior, **(FIT | {"band": (4, 8)}))
    assert not any((tmp_path / name).exists() for name in "abcd")
    assert main(["fit", str(recording), "--method", "gradient", "--band", "4", "8",
                 "--out", str(tmp_path / "e")]) == 2
    assert "--band needs --rate-range" in capsys.readouterr().err
    assert main(["fit", str(recording), "--out", str(tmp_path / "f")]) == 2
    assert "needs --budget" in capsys.readouterr().err
    # a device this machine lacks (CI has no GPU), or the sbi method asked for one
    import torch

    if not torch.cuda.is_available():
        assert main(["fit", str(recording), "--method", "gradient", "--device", "cuda",
                     "--out", str(tmp_path / "g")]) == 2
        assert "CUDA requested but no CUDA device" in capsys.readouterr().err
    assert main(["fit", str(recording), "--method", "gradient", "--device", "tpu",
                 "--out", str(tmp_path / "h")]) == 2
    assert "device must be cpu or cuda" in capsys.readouterr().err
    assert main(["fit", str(recording), "--budget", "100", "--device", "cuda",
                 "--out", str(tmp_path / "i")]) == 2
    assert "--device applies to --method gradient" in capsys.readouterr().err
    assert main(["fit", str(recording), "--method", "gradient", "--recurrent-grad", "1.5",
                 "--out", str(tmp_path / "j")]) == 2
    assert "--recurrent-grad must be in [0, 1]" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "ghij")


def test_a_start_whose_loss_turns_nan_fails_and_the_others_go_on():
    """At 0.5 Hz drive the network is silent: its Fano factor (0/0) is NaN, so that start is
    marked failed while the one at 3 Hz keeps descending."""
    result = fit_theta(SPEC, drive_prior(), {"rate_mean": 1.4, "fano_100ms": -0.3},
                       {"rate_mean": 0.05, "fano_100ms": 0.1}, [[0.5], [3.0]], steps=3, lr=0.1)
    assert result.status == ["failed", "ok"]
    assert "NaN" in result.messages[0] and np.isfinite(result.loss[:, 1]).all()
    assert result.theta[0, 0] == pytest.approx(0.5, abs=1e-4)  # frozen where it failed


class _Gaussian:
    """A stand-in posterior: N(0, 1) in one dimension."""

    def sample(self, n, x, seed=0):
        return np.random.default_rng(seed).standard_normal((n, 1))

    def log_prob(self, theta, x):
        return -0.5 * np.asarray(theta)[:, 0] ** 2


def test_hpd_level_of_a_gaussian_is_its_central_mass():
    from scipy.stats import norm

    from automind.fit.gradient_compare import hpd_levels

    theta = np.array([[0.0], [1.0], [-1.645], [3.0]])
    level = hpd_levels(_Gaussian(), None, theta, n=100_000)["hpd_level"]
    np.testing.assert_allclose(level, 2 * norm.cdf(np.abs(theta[:, 0])) - 1, atol=0.005)


def test_reference_hpd_counts_reproducing_rows_inside_the_90pct_region():
    """A N(0, 1) posterior; rows uniform on [−5, 5] that 'reproduce the target' when
    |θ| ≤ c: with c = 1.645 (the 90 % HPD boundary) all are inside, with c = 3 a share
    1.645 / 3; rows beyond the threshold or with no distance are left out."""
    from automind.fit.gradient_compare import reference_hpd

    theta = np.linspace(-5, 5, 2001)[:, None]
    for c, share in ((1.6, 1.0), (3.0, 1.645 / 3)):
        distance = np.abs(theta[:, 0]) / c * 2.0
        distance[0] = np.nan
        found = reference_hpd(_Gaussian(), None, theta, distance, threshold=2.0)
        assert found["n"] == 2001 and found["n_within"] == int((np.abs(theta) <= c).sum())
        assert found["share_inside_90pct_hpd"] == pytest.approx(share, abs=0.02)
        assert max(found["distances"]) <= 2.0 and len(found["hpd_levels"]) == found["n_within"]
    assert reference_hpd(_Gaussian(), None, theta, np.full(2001, 9.0), 2.0)[
        "share_inside_90pct_hpd"] is None


def test_compare_places_each_fit_under_a_posterior(fitted, recording, tmp_path_factory):
    """A posterior from 300 torch simulations of the drive prior: the resumed fit with
    --compare gives each fit its HPD level; the fit nearer the posterior's median lies deeper."""
    from automind.fit.baseline import prior_bank_posterior
    from automind.fit.target import target_of

    out, summary = fitted
    folder = tmp_path_factory.mktemp("gradient-posterior")
    x = target_of(recording, "spikes")[0]
    torch_spec = SPEC.with_overrides(backend="torch", torch={"batch": 50})
    posterior = prior_bank_posterior(folder / "bank", torch_spec, drive_prior(), "spikes", 300, 5, x)
    posterior.save(folder / "posterior")
    again = fit_gradient(recording, out, simulator=SPEC, prior=drive_prior(), truth=[3.0],
                         compare_with=folder / "posterior", **FIT)
    rows = again["compare"]["fits"]
    assert again["fits"] == summary["fits"] and len(rows) == 2
    median = np.median(posterior.sample(4000, x, seed=1))
    theta = np.array([row["theta"]["E.poisson_rate"] for row in summary["fits"]])
    nearer, farther = np.argsort(np.abs(theta - median))
    assert 0 <= rows[nearer]["hpd_level"] < rows[farther]["hpd_level"] <= 1
    assert [r["brian2_distance"] for r in rows] == [f["brian2_distance"] for f in summary["fits"]]
    saved = json.loads((out / "compare.json").read_text())
    assert saved["inside_90pct_hpd"] == sum(r["hpd_level"] <= 0.9 for r in rows)
    # the starts' levels from the same posterior draw as the fits'
    from automind.fit.gradient_compare import hpd_levels
    from automind.inference.posterior import load_posterior

    starts = hpd_levels(load_posterior(folder / "posterior"), x, np.load(out / "starts.npy"),
                        seed=FIT.get("seed", 0))["hpd_level"]
    np.testing.assert_allclose([r["start_hpd_level"] for r in rows], starts)
    # the training bank's runs that reproduce the recording: in one dimension the 90 % HPD
    # region is close to the posterior's central 90 % interval
    from automind.bank import Bank

    reference, bank = saved["reference"], Bank(folder / "bank").arrays()
    assert reference["n"] == 300 and 0 < reference["n_within"] < 300
    assert max(reference["distances"]) <= reference["threshold"] == 2.0
    within = bank["theta"][np.searchsorted(bank["index"], reference["rows"]), 0]
    low, high = np.quantile(posterior.sample(20_000, x, seed=2)[:, 0], [0.05, 0.95])
    inside = np.sum((within > low) & (within < high))
    assert 0 < inside < len(within) and abs(reference["inside_90pct_hpd"] - inside) <= 2


def test_cli_gradient_fit_from_a_prior_start(recording, tmp_path, capsys):
    """The command line: spec and prior as files, one start screened from two prior draws
    (seed 0), two gradient steps and one refinement step, the noise reference the first draw (no
    truth for a file target); the summary is printed per start."""
    from conftest import QUIET_MK1

    from automind.specs import find_spec

    text = find_spec("simulators", "mk1").read_text()
    for old, new in (("N = 2000", "N = 20"), ('dt = "0.2 ms"', 'dt = "0.5 ms"'),
                     ('duration = "10 s"', 'duration = "0.3 s"'),
                     ('t_analysis_start = "0.1 s"', 't_analysis_start = "0.05 s"')):
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "spec.toml").write_text(text)
    lines = ['name = "drive"', "[[parameter]]", 'name = "E.poisson_rate"', 'unit = "Hz"',
             "low = 0.5", "high = 5.0"]
    for name, value in QUIET_MK1.items():
        if name != "E.poisson_rate":
            lines += ["[[constant]]", f'name = "{name}"', f"value = {value!r}"]
    (tmp_path / "drive.toml").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert main(["fit", str(recording), "--method", "gradient", "--simulator", str(tmp_path / "spec.toml"),
                 "--prior", str(tmp_path / "drive.toml"), "--features", "spikes", "--starts", "1",
                 "--steps", "2", "--fit-features", "rate_mean", "--workers", "1", "--out", str(out),
                 "--screen", "2", "--gauss-newton", "1", "--gauss-newton-seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "gradient fits reproduce" in printed and "start 0: ok, Brian2 d = " in printed
    assert "screened 2 draws in" in printed and "2 seed(s) each" in printed
    noise = json.loads((out / "final" / "noise.json").read_text())
    assert noise["reference"] == "first start"
    settings = json.loads((out / "fit.json").read_text())["settings"]
    assert settings["fit_features"] == ["rate_mean"] and settings["gauss_newton_seeds"] == 2


def test_a_failed_start_counts_against_the_yield_and_is_not_simulated(recording, tmp_path):
    """The Fano-curve term is NaN for a silent start (0.6 Hz drive): that start fails, is not
    re-simulated, and counts in the yield's denominator; the start at 3 Hz goes on."""
    summary = fit_gradient(recording, tmp_path / "run", simulator=SPEC, prior=drive_prior(),
                           truth=[3.0], **(FIT | {"start_theta": [[3.0], [0.6]], "steps": 2,
                                                  "loss": ("fano_curve",)}))
    first, second = summary["fits"]
    assert (first["status"], second["status"]) == ("ok", "failed")
    assert second["brian2_status"] == "failed" and second["brian2_distance"] is None
    assert summary["n_failed"] == 1 and summary["n_simulated_final"] == 1
    assert summary["yield"] == first["accepted"] / 2
