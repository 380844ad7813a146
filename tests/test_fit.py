"""`automind fit` on a reduced Brunel network: probe region, truncated rounds, consistent set,
resume, and clear refusals."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_small_brunel

from automind.cli import main
from automind.errors import UserError
from automind.fit import FitSettings, fit
from automind.fit.region import Region, TruncatedPrior
from automind.fit.target import near_target
from automind.prior import Prior

TRUTH = np.array([5.0, 2.0])  # Brunel's asynchronous irregular regime
FIT = dict(features="spikes", budget=600, probe_rounds=1, rounds=2, probe_duration=0.3,
           duration=1.0, seed=3, workers=2, progress=False, final_samples=36, refine=2, explore=1,
           refine_until=None)


def test_budget_splits_into_rounds_and_refuses_too_little():
    plan = FitSettings(budget=10_000).split()
    assert plan["probe"] == 1750 and plan["final"] == 400 and plan["total"] <= 10_000
    assert plan["refine"] == 400  # 6 generations, each as large as the final validation
    assert plan["total"] == (2 * plan["probe"] + 3 * plan["round"] + 7 * plan["final"]
                             + plan["noise"])
    assert "refine" not in FitSettings(budget=10_000, refine=0).split()
    explored = FitSettings(budget=10_000, explore=2).split()
    assert explored["explore"] == 400 and explored["round"] < plan["round"]
    assert explored["total"] == plan["total"] + 2 * 400 - 3 * (plan["round"] - explored["round"])
    with pytest.raises(UserError, match="below one round"):
        FitSettings(budget=300).split()
    with pytest.raises(UserError, match="rate_tolerance"):
        FitSettings(budget=1000, rate_tolerance=0)
    with pytest.raises(UserError, match="refine_step must be one of full, adaptive"):
        FitSettings(budget=1000, refine_step="half")
    with pytest.raises(UserError, match="refine_space must be one of prior, log"):
        FitSettings(budget=1000, refine_space="linear")
    # the values runs used before an option existed stay out of fit.json, so those runs resume
    # (given them explicitly where the default changed); log coordinates, the default since
    # session 18, are recorded
    old = FitSettings(budget=1000, refine_step="full", refine_space="prior",
                      refine_until=None).to_dict()
    assert not {"refine_step", "refine_space", "refine_until"} & set(old)
    new = FitSettings(budget=1000).to_dict()
    assert "refine_step" not in new and new["refine_space"] == "log"
    assert new["refine_until"] == 0.9
    with pytest.raises(UserError, match=r"refine_until must be a yield in \(0, 1\]"):
        FitSettings(budget=1000, refine_until=1.5)
    assert FitSettings(budget=1000, refine_step="adaptive").to_dict()["refine_step"] == "adaptive"


def test_consistent_mass_gain_is_a_validated_log_ratio_with_an_honest_bound():
    from scipy.stats import beta

    from automind.fit.baseline import consistent_mass_gain

    same = consistent_mass_gain(40, 400, 40, 400)
    assert same["point"] == 0 and same["lower"] < 0  # equal shares: no gain claimed
    # none of the baseline's 400 accepted: its share's upper bound is 1 - 0.025^(1/400)
    gain = consistent_mass_gain(174, 400, 0, 400)
    assert gain["point"] is None  # unbounded
    expected = np.log(beta.ppf(0.025, 174, 227)) - np.log(1 - 0.025 ** (1 / 400))
    assert gain["lower"] == pytest.approx(expected) and 3.5 < gain["lower"] < 4.0
    assert consistent_mass_gain(0, 400, 5, 400)["lower"] is None


def test_near_target_needs_ok_status_and_both_tolerances():
    target = {"rate_mean": 10.0, "isi_cv_mean": 1.0}
    stats = np.array([[10.0, 1.0], [15.0, 1.0], [16.0, 1.0], [10.0, 1.6], [10.0, np.nan],
                      [10.0, 1.0], [0.0, np.nan]])
    status = np.array(["ok"] * 5 + ["runaway", "silent"])
    near, distance = near_target(status, stats, target, FitSettings(budget=1000))
    # log10(15/10) = 0.176 <= 0.2 decades; log10(1.6) = 0.204 > 0.2; CV 0.6 > 0.5 off
    assert near.tolist() == [True, True, False, False, True, False, False]
    assert distance[0] == 0 and np.isinf(distance[-1])


def test_truncated_prior_samples_the_region_exactly_and_by_index():
    """A region learnt from labels of a known box (g in [4, 6], ν in [1.5, 2.5]: 1/16 of the
    prior) keeps about that mass, and bank index k always gets the same θ."""
    prior = Prior.load("brunel")
    theta = prior.sample(4000, seed=1)
    inside = (np.abs(theta[:, 0] - 5) < 1) & (np.abs(theta[:, 1] - 2) < 0.5)
    region = Region.train(prior, theta, inside, seed=0, allowed_false_negatives=0.02)
    assert region.contains(TRUTH[None])[0]
    proposal = TruncatedPrior(prior, region)
    mass, _ = proposal.prior_mass(n=50_000, seed=2)
    assert 0.045 < mass < 0.095
    draws = proposal.sample_indexed(7, range(40))
    assert region.contains(draws).all()
    assert np.mean((np.abs(draws[:, 0] - 5) < 1.15) & (np.abs(draws[:, 1] - 2) < 0.6)) > 0.9
    np.testing.assert_array_equal(proposal.sample_indexed(7, [31, 3]), draws[[31, 3]])


def test_region_threshold_is_honest_on_theta_it_has_not_seen():
    """12 parameters, a known region (p0 + p1 > 1.4, 18 % of the prior), 600 labelled draws:
    the out-of-fold threshold cuts away about the allowed 5 % of *new* θ inside the region,
    where the in-sample rule (sbi's) cuts away several times more."""
    prior = Prior.from_dict({"parameter": [{"name": f"p{k}", "low": 0.0, "high": 1.0}
                                           for k in range(12)]})
    inside = lambda t: t[:, 0] + t[:, 1] > 1.4  # noqa: E731
    theta = prior.sample(600, seed=1)
    region = Region.train(prior, theta, inside(theta), seed=0, allowed_false_negatives=0.05)
    fresh = prior.sample(20_000, seed=2)
    p = region.probability(fresh[inside(fresh)])
    cut_out_of_fold = np.mean(p <= region.threshold)
    cut_in_sample = np.mean(p <= region.info["in_sample_threshold"])
    assert cut_out_of_fold < 0.1
    assert cut_in_sample > 2 * cut_out_of_fold


def test_region_artifact_round_trips_and_refuses_tampering(tmp_path):
    prior = Prior.load("brunel")
    theta = prior.sample(500, seed=1)
    region = Region.train(prior, theta, theta[:, 0] > 4, seed=0)
    region.save(tmp_path / "region")
    again = Region.load(tmp_path / "region")
    assert again.sha256 == region.sha256
    np.testing.assert_allclose(again.probability(theta[:50]), region.probability(theta[:50]))
    data = bytearray((tmp_path / "region" / "region.pt").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "region" / "region.pt").write_bytes(bytes(data))
    with pytest.raises(UserError, match="checksum"):
        Region.load(tmp_path / "region")


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    """The reduced network as a simulator spec file (the CLI takes a name or a path)."""
    return write_small_brunel(tmp_path_factory.mktemp("fit-spec") / "small_brunel.toml")


@pytest.fixture(scope="module")
def target(spec_file, tmp_path_factory):
    """A 3 s recording of the reduced network at the truth, as an NWB file: three times the
    truncated rounds' analysed 0.95 s, so the fit cuts it to a window (recordings.windows)."""
    from automind.features.spikedata import SpikeData
    from automind.recordings.write import write_nwb
    from automind.simulators import Simulator, SimulatorSpec

    spec = SimulatorSpec.load(spec_file)
    result = Simulator(spec).run(Prior.load("brunel").to_simulator(TRUTH), seed=424242,
                                 duration=3.05)
    assert result.status == "ok"
    path = tmp_path_factory.mktemp("fit-target") / "target.nwb"
    write_nwb(SpikeData.from_simulation(result).window(0.05), path)
    return path


@pytest.fixture(scope="module")
def fitted(spec_file, target, tmp_path_factory):
    """`automind fit`, stopped (SIGTERM, as a scheduler would) during its first probe round,
    then run again to the end from Python: the resumed run must complete the same fit."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path_factory.mktemp("fit") / "run"
    command = [sys.executable, "-m", "automind.cli", "fit", str(target), "--simulator",
               str(spec_file), "--features", "spikes", "--budget", "600", "--probe-rounds", "1",
               "--rounds", "2", "--probe-duration", "0.3", "--sim-duration", "1.0", "--seed", "3",
               "--final-samples", "36", "--refine", "2", "--refine-until", "never",
               "--explore", "1",
               "--workers", "2", "--out", str(out), "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest, deadline = out / "probe" / "r1" / "manifest", time.time() + 600
    while proc.poll() is None and time.time() < deadline and \
            len(list(manifest.glob("*.json")) if manifest.is_dir() else []) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(300) == 130, "the fit was not interrupted as a user's Ctrl-C would"
    assert not (out / "summary.json").exists()
    return out, fit(target, out, simulator=str(spec_file), **FIT)


def test_fit_finds_a_consistent_set_around_the_truth(fitted, tmp_path):
    out, summary = fitted
    probe, *rounds = summary["rounds"]
    assert probe["stage"] == "probe" and probe["nats"] > 0.5  # the region cuts the prior
    assert all(r["stage"] == "truncated" for r in rounds)
    # truncated proposals waste far fewer runs than the prior did
    assert rounds[0]["valid_fraction"] > probe["valid_fraction"]
    assert summary["yield"] > 0.2 and summary["n_consistent"] >= 10
    assert summary["simulations"] <= 600
    assert [r["round"] for r in summary["refinement"]] == [1, 2]
    refined = np.loadtxt(out / "refine" / "g2" / "consistent_set.csv", delimiter=",",
                         skiprows=1, ndmin=2)[:, 1:3]
    lo, hi = refined.min(0), refined.max(0)
    assert ((lo - 0.5 <= TRUTH) & (TRUTH <= hi + 0.5)).all(), (lo, hi)
    # the refined set pools every configuration accepted from the final validation on: the
    # last generation's and the final validation's accepted ones, each once, all accepted
    pooled = np.load(out / "refine" / "set" / "consistent.npz")
    last, final = (np.load(out / folder / "consistent.npz")["theta"]
                   for folder in ("refine/g2", "final"))
    assert len(pooled["theta"]) >= len(last) + len(final) and len(last) == summary["n_consistent"]
    assert len(np.unique(pooled["theta"], axis=0)) == len(pooled["theta"])
    assert np.all(pooled["distance"] <= 2.0)
    for rows in (last, final):
        assert all(np.any(np.all(pooled["theta"] == row, axis=1)) for row in rows)
    # exploration adds consistent configurations to the pooled ones, never loses them
    assert [r["round"] for r in summary["exploration"]] == [1]
    assert summary["consistent_set_folder"].endswith("explore/set")
    assert summary["last_generation_folder"].endswith("refine/g2")
    explored = np.loadtxt(out / "explore" / "set" / "consistent_set.csv", delimiter=",",
                          skiprows=1, ndmin=2)[:, 1:3]
    assert len(explored) == summary["set_size"] == \
        len(pooled["theta"]) + summary["exploration"][0]["new_consistent"]
    assert (explored.min(0) <= lo).all() and (explored.max(0) >= hi).all()
    # pooled sets carry their target and posterior: `compare` reads them like any run
    from automind.invariance.compare import compare_runs

    compared = compare_runs([out / "refine" / "set", out / "explore" / "set"], tmp_path / "cmp",
                            ["refined", "explored"], n_local=3)
    assert compared["compared"] == "consistent"
    assert 0 < summary["set_sd_over_prior_sd"] < 0.5  # the set is far narrower than the prior
    assert "set spread / prior spread" in (out / "report" / "index.html").read_text()
    # the posterior predictive check: the closest re-simulations are accepted ones here
    misfit = summary["closest_misfit"]
    assert misfit["closest"] == 5 and misfit["distances"] == sorted(misfit["distances"])
    assert misfit["distances"][0] <= 2.0 and misfit == json.loads((out / "misfit.json").read_text()) | {
        "description": misfit["description"]}
    report = (out / "report" / "index.html").read_text()
    assert "What the closest configurations miss" in report
    assert "configurations closest to it (accepted; noise sd" in report
    # a simulation of the model itself is inside what the rounds produced
    assert json.loads((out / "misspecification.json").read_text())["n_reference"] > 100
    assert not summary["misspecified"], summary["out_of_range_features"]
    assert (out / "probe" / "region1" / "region.json").is_file()
    # the 3 s recording was fitted on one 0.95 s window; its windows' spread widens the noise
    record = json.loads((out / "fit.json").read_text())["target"]
    assert record["windows"] == 3 and record["duration"] == pytest.approx(0.95)
    noise = json.loads((out / "final" / "noise.json").read_text())
    assert np.all(np.array(noise["sigma"]) >= np.array(noise["sigma_simulations"]))
    assert np.any(np.array(noise["sigma_target"]) > 0)
    assert json.loads((out / "fit.json").read_text())["plan"]["probe"] == 210


def test_fit_resumes_without_new_simulations_and_refuses_other_settings(fitted, target, spec_file,
                                                                       tmp_path):
    import shutil

    from automind.bank import Bank

    out, summary = fitted
    sizes = [len(Bank(out / "rounds" / f"r{r}").table()["index"]) for r in (1, 2)]
    # the same spec and recording from other paths (another checkout) resume the same fit
    moved_spec, moved_target = tmp_path / "spec.toml", tmp_path / Path(target).name
    shutil.copy(spec_file, moved_spec)
    shutil.copy(target, moved_target)
    again = fit(moved_target, out, simulator=str(moved_spec), **FIT)
    assert again["yield"] == summary["yield"] and again["nats"] == pytest.approx(summary["nats"])
    assert [len(Bank(out / "rounds" / f"r{r}").table()["index"]) for r in (1, 2)] == sizes
    # a recording no longer where the run began is read from where it is now (the report
    # reads it again), and still labelled as the run began
    moved_run = tmp_path / "moved_run"
    shutil.copytree(out, moved_run)
    record = json.loads((moved_run / "fit.json").read_text())
    record["target"]["source"] = str(tmp_path / "gone" / "target.nwb")
    (moved_run / "fit.json").write_text(json.dumps(record))
    resumed = fit(moved_target, moved_run, simulator=str(moved_spec), **FIT)
    assert resumed["yield"] == summary["yield"] and (moved_run / "report" / "index.html").is_file()
    assert "gone" in json.loads((moved_run / "fit.json").read_text())["target"]["source"]
    with pytest.raises(UserError, match=r"other settings \(rate_tolerance: 0.2 in the run, "
                                        r"0.3 now\)"):
        fit(target, out, simulator=str(spec_file), **(FIT | {"rate_tolerance": 0.3}))


def test_a_run_from_before_the_refinement_defaults_resumes_with_them_given(fitted, target,
                                                                          spec_file, tmp_path):
    """A fit.json without refine_space (written before session 18, when runs moved in prior
    coordinates) is refused under today's default, naming what differs, and resumes with the
    old value given. Adaptive steps are recorded and report each generation's median step."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(fitted[0], out, ignore=shutil.ignore_patterns("refine", "explore", "report",
                                                                  "summary.json"))
    record = json.loads((out / "fit.json").read_text())
    del record["settings"]["refine_space"]
    (out / "fit.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match=r"refine_space: prior in the run, log now"):
        fit(target, out, simulator=str(spec_file), **FIT)
    summary = fit(target, out, simulator=str(spec_file), **(FIT | {"refine_space": "prior"}))
    assert "refine_space" not in json.loads((out / "fit.json").read_text())["settings"]
    assert all("median_step" not in r for r in summary["refinement"])  # full steps
    assert summary["yield"] > 0.2
    adaptive = tmp_path / "adaptive"
    shutil.copytree(fitted[0], adaptive, ignore=shutil.ignore_patterns(
        "refine", "explore", "report", "summary.json"))
    record = json.loads((adaptive / "fit.json").read_text())
    record["settings"]["refine_step"] = "adaptive"
    (adaptive / "fit.json").write_text(json.dumps(record))
    summary = fit(target, adaptive, simulator=str(spec_file), **(FIT | {"refine_step": "adaptive"}))
    steps = [r["median_step"] for r in summary["refinement"]]
    assert steps[0] == 1.0 and all(1 / 16 <= s <= 1 for s in steps)
    assert summary["yield"] > 0.2


def test_refinement_stops_at_the_first_generation_reaching_refine_until(fitted, target,
                                                                          spec_file, tmp_path):
    """The run resumed with refine_until at its first generation's yield stops there: one
    generation of 36 moved samples fewer, its set pooled from the final validation and g1."""
    import shutil

    run, summary = fitted
    first = summary["refinement"][0]["yield"]
    assert len(summary["refinement"]) == 2  # the fixture runs every generation
    out = tmp_path / "run"
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("refine", "explore", "report",
                                                            "summary.json"))
    record = json.loads((out / "fit.json").read_text())
    record["settings"]["refine_until"] = first
    (out / "fit.json").write_text(json.dumps(record))
    stopped = fit(target, out, simulator=str(spec_file), **(FIT | {"refine_until": first}))
    assert [r["round"] for r in stopped["refinement"]] == [1]
    assert not (out / "refine" / "g2").exists()
    assert stopped["simulations"] == summary["simulations"] - 36
    assert stopped["yield"] == first and stopped["last_generation_folder"].endswith("refine/g1")
    pooled = np.load(out / "refine" / "set" / "consistent.npz")["theta"]
    firsts = [np.load(out / f / "consistent.npz")["theta"] for f in ("final", "refine/g1")]
    assert len(pooled) == len(np.unique(np.concatenate(firsts), axis=0))


def test_on_bounds_tells_a_saturated_flow_from_a_posterior():
    from automind.fit.region import on_bounds

    prior = Prior.load("brunel")
    inside = prior.sample(500, seed=0)
    assert on_bounds(prior, inside) == 0.0
    corners = np.where(np.arange(2) == 0, prior.low, prior.high)[None].repeat(300, 0)
    assert on_bounds(prior, np.vstack([inside, corners])) == pytest.approx(300 / 800)


def test_a_degenerate_round_keeps_the_proposal_and_the_last_usable_posterior(
        tmp_path, spec_file, target, monkeypatch):
    """Round 2's posterior made to look saturated at the prior's corners, and round 3's to put
    no draw inside the probe region (as a flow that extrapolates at a target outside its
    features does): the fit warns, truncates with neither and goes on with round 1's
    posterior. One fit checks both failures (they used to be two fits, 65 s each)."""
    import automind.fit.run as run_module
    from automind.fit.region import NoMassNearTarget

    real = run_module.posterior_information

    def degenerate_after_round_1(posterior, *args, **kwargs):
        out = real(posterior, *args, **kwargs)
        if posterior.provenance.get("fit_round") == 3:
            raise NoMassNearTarget("no draw in the region")
        return out | {"on_bounds": 0.9} if posterior.provenance.get("fit_round") == 2 else out

    monkeypatch.setattr(run_module, "posterior_information", degenerate_after_round_1)
    settings = FIT | {"budget": 550, "rounds": 3, "final_samples": 20, "refine": 0, "explore": 0,
                      "duration": 0.5}
    summary = fit(target, tmp_path / "run", simulator=str(spec_file), **settings)
    first, *later = summary["rounds"][1:]
    assert len(later) == 2 and all(r["degenerate"] and "log_threshold" not in r for r in later)
    assert not first.get("degenerate") and summary["posterior"].endswith("posterior1")
    assert summary["nats"] == first["posterior_nats"]
    assert not any((tmp_path / "run" / "rounds" / f"truncation{r}.json").exists() for r in (2, 3))
    assert summary["n_simulated_final"] == 20


def test_fit_stops_with_the_nearest_probes_when_nothing_comes_near(tmp_path, spec_file):
    """A 'recording' far outside anything the model produces (every unit firing regularly at
    800 Hz, faster than its 2 ms refractory period allows) stops after the probes with a clear
    statement, not a meaningless posterior."""
    from automind.features.spikedata import SpikeData
    from automind.recordings.write import write_nwb

    trains = [np.arange(1e-4 * u, 4.0, 1 / 800) for u in range(10)]
    times = np.concatenate(trains)
    units = np.concatenate([np.full(len(t), u) for u, t in enumerate(trains)])
    path = write_nwb(SpikeData(times, units, 4.0), tmp_path / "odd.nwb")
    with pytest.raises(UserError, match="no probe run came near the target"):
        fit(path, tmp_path / "run", simulator=str(spec_file), **FIT)
    assert (tmp_path / "run" / "nearest_probes.csv").read_text().count("\n") == 21


def test_cli_fit_refusals(tmp_path, target, capsys):
    assert main(["fit", str(target), "--out", str(tmp_path / "a"), "--budget", "50"]) == 2
    assert "below one round" in capsys.readouterr().err
    assert main(["fit", str(target), "--out", str(tmp_path / "b")]) == 2
    assert "needs --budget" in capsys.readouterr().err
    assert main(["fit", str(target), "--out", str(tmp_path / "b"), "--budget", "5000",
                 "--refine", "30"]) == 2
    assert "refine must be 0..20" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    assert main(["fit", str(target), "--simulator", "brunel", "--features", "spikes",
                 "--out", str(tmp_path / "c"), "--budget", "5000"]) == 2
    assert "not made by `automind fit`" in capsys.readouterr().err
    assert (tmp_path / "c" / "notes.txt").read_text() == "mine"


def test_near_target_reads_the_range_of_the_recordings_probe_windows():
    """With the recording's probe-window statistics, a probe is near when it lies within the
    tolerances of their 5–95 % range (distance 0 inside), not of the whole recording's values."""
    target = {"rate_mean": 3.3, "isi_cv_mean": 1.04}  # a bursting target's 4 s statistics
    windows = {"rate_mean": [0.73, 6.44], "isi_cv_mean": [0.33, 0.54]}  # its 0.5 s windows
    stats = np.array([[5.5, 0.36], [10.0, 0.5], [6.44 * 10 ** 0.3, 0.4], [3.3, 1.2]])
    status = np.array(["ok"] * 4)
    settings = FitSettings(budget=1000)
    near, distance = near_target(status, stats, target, settings, windows)
    assert near.tolist() == [True, True, False, False]
    assert distance[0] == 0 and distance[2] == pytest.approx(1.5)
    assert distance[3] == pytest.approx((1.2 - 0.54) / 0.5)
    # without windows: the whole recording's values (the first probe is 0.22 decades off)
    assert near_target(status, stats, target, settings)[0].tolist() == [False, False, False, True]


def test_probe_windows_of_a_bursting_recording_span_bursts_and_gaps(tmp_path):
    """A recording that bursts once a second, cut into 0.5 s windows: half the windows hold a
    burst (high rate), half a gap (low rate), so the range spans both; fewer than 3 windows:
    None (the whole recording's statistics are used)."""
    from automind.features.spikedata import SpikeData
    from automind.fit.target import probe_windows
    from automind.recordings.write import write_nwb

    rng = np.random.default_rng(0)
    units, times = [], []
    for u in range(40):
        bursts = np.concatenate([b + rng.uniform(0, 0.15, 6) for b in np.arange(0.1, 4.0, 1.0)])
        quiet = rng.uniform(0, 4.0, 2)
        t = np.sort(np.r_[bursts, quiet])
        times.append(t), units.append(np.full(len(t), u))
    data = SpikeData(np.concatenate(times), np.concatenate(units), 4.0, np.arange(40))
    path = write_nwb(data, tmp_path / "bursting.nwb")
    got = probe_windows(path, "spikes", 0.5)
    assert got["windows"] == 8
    low, high = got["rate_mean"]
    assert low < 1.5 and high > 10  # gaps ~0.5 Hz, bursts ~12.5 Hz per unit
    assert probe_windows(path, "spikes", 1.5) is None  # 2 windows
