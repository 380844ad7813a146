"""Inference end to end on a small Brunel bank: calibrated, and usable from the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest

from automind.bank import extend
from automind.cli import main
from automind.errors import UserError
from automind.prior import Prior
from conftest import small_brunel_spec


@pytest.fixture(scope="module")
def banks(tmp_path_factory):
    """Training and held-out banks of a reduced Brunel network (N = 250, C_E = 100, 0.5 s)."""
    spec = small_brunel_spec()
    root = tmp_path_factory.mktemp("brunel-inference")
    prior = Prior.load("brunel")
    extend(root / "train", spec, prior, n=800, seed=1, workers=2, chunk_size=50,
           features=["spikes"], progress=False)
    extend(root / "held", spec, prior, n=120, seed=2, workers=2, chunk_size=40,
           features=["spikes"], progress=False)
    return root


def test_cli_train_infer_diagnose(banks, tmp_path, capsys):
    post = tmp_path / "post"
    assert main(["train", str(banks / "train"), "--features", "spikes", "--out", str(post),
                 "--json"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["n_valid"] + trained["n_invalid"] == 800
    assert (post / "training_curve.png").stat().st_size > 5000

    assert main(["diagnose", str(post), "--bank", str(banks / "held"), "--cases", "50",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    levels = np.array(report["hpd_coverage"]["empirical"])
    # the truth lies inside the 90 % highest-density region in >= 80 % of held-out cases
    assert levels[90] >= 0.8
    assert np.isfinite(report["coverage_max_abs_error"]) and report["latent_coverage"] is not None
    assert report["information"]["mean"] > report["information"]["shuffled"]
    assert report["contraction"]["g"] > 1.5 and report["contraction"]["nu_ext"] > 1.5
    assert all(Path(f).stat().st_size > 5000 for f in report["figures"])  # coverage, SBC

    # a target in the asynchronous irregular regime: its features vary from run to run, so
    # "within 2 noise sd" is a meaningful test (a synchronous regular network at ~170 Hz has
    # rate noise of 0.003 log10 units, and whether any sample passes depends on the machine)
    from automind.bank import Bank

    held = Bank(banks / "held").arrays(features="spikes", status="ok")
    target = int(held["index"][np.flatnonzero(held["theta"][:, 0] > 4.5)[0]])
    out = tmp_path / "samples"
    assert main(["infer", str(post), "--bank", str(banks / "held"), "--index", str(target), "-n", "200",
                 "--oversample", "5", "--out", str(out), "--json"]) == 0
    capsys.readouterr()
    rows = np.genfromtxt(out / "samples.csv", delimiter=",", names=True)
    assert len(rows) == 200 and (np.diff(rows["log_prob"]) <= 1e-9).all()  # top-n, sorted
    meta = json.loads((out / "samples.json").read_text())
    assert "kept the 200" in meta["note"] and meta["truth"] is not None
    assert (out / "pairplot.png").stat().st_size > 5000

    assert main(["validate", str(out), "--limit", "40", "--workers", "2", "--json"]) == 0
    validated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert validated["n_simulated"] == 40 and 0 < validated["yield"] <= 1
    assert validated["n_accepted"] == round(validated["yield"] * 40)
    consistent = np.genfromtxt(out / "consistent_set.csv", delimiter=",", names=True)
    assert len(np.atleast_1d(consistent)) == validated["n_accepted"]
    assert (out / "validation_features.png").exists()

    # calibration where a target is: a held-out simulation is its own nearest case (distance
    # 0), the cases come nearest first, and the report says so
    assert main(["diagnose", str(post), "--bank", str(banks / "held"), "--cases", "20",
                 "--near", f"{banks / 'held'}:{target}", "--json"]) == 0
    near = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert near["n_cases"] == 20 and near["near"]["rows"][0] == target
    assert 20 < near["near"]["of"] <= len(held["index"]) and near["near"]["distance_max"] > 0
    assert (post / "coverage_near.png").stat().st_size > 5000


def test_recording_too_short_for_the_feature_set(banks, tmp_path, capsys):
    from automind.inference.train import train_on_bank

    post = train_on_bank(banks / "train", "spikes", progress=False, max_epochs=5)
    post.features = post.features | {"set": "psd"}  # as if trained on the PSD
    post.save(tmp_path / "p")
    np.savez(tmp_path / "short.npz", spike_times=np.array([0.1, 0.5]), unit_ids=np.array([0, 1]),
             duration=1.0)
    assert main(["infer", str(tmp_path / "p"), "--recording", str(tmp_path / "short.npz"),
                 "--out", str(tmp_path / "s")]) == 2
    assert "needs at least 2 s" in capsys.readouterr().err


def test_diagnose_refuses_a_bank_of_other_parameters(banks, tmp_path, capsys):
    from automind.io import write_json
    from automind.inference.train import train_on_bank

    train_on_bank(banks / "train", "spikes", progress=False, max_epochs=3).save(tmp_path / "p")
    other = Prior.from_dict({"name": "other", "parameter": [{"name": "J", "low": 0, "high": 1},
                                                            {"name": "nu_ext", "low": 0, "high": 4}]})
    (tmp_path / "b" / "manifest").mkdir(parents=True)
    write_json(tmp_path / "b" / "bank.json", {
        "format": "automind-bank", "version": 1, "seed": 0, "created": "", "chunk_size": 8,
        "keep_spikes": False, "prior": other.to_dict(), "simulator": {"name": "x"},
        "versions": {}, "feature_sets": {}})
    assert main(["diagnose", str(tmp_path / "p"), "--bank", str(tmp_path / "b")]) == 2
    assert "but the posterior infers ['g', 'nu_ext']" in capsys.readouterr().err


def test_bad_inference_input(banks, tmp_path, capsys):
    assert main(["train", str(banks / "train"), "--features", "psd", "--out",
                 str(tmp_path / "p")]) == 2
    assert "no feature set 'psd'" in capsys.readouterr().err
    assert main(["infer", str(tmp_path / "missing"), "--recording", "x.npz", "--out",
                 str(tmp_path / "s")]) == 2
    assert "not a complete posterior artifact" in capsys.readouterr().err


def test_restriction_makes_resimulated_samples_valid_more_often(tmp_path):
    """Status thresholds of 1 Hz (silent) and 50 Hz (runaway) make ~90 % of the Brunel prior
    invalid. Posterior samples for valid held-out targets, re-simulated: the restricted
    posterior's are invalid far less often than the unrestricted one's (measured: 2 % vs 8 %
    with the first defaults; 1.1 % vs 3.6 % with TrainingConfig's, whose unrestricted
    posterior already strays less, so the absolute gap is smaller and the ratio is the test)."""
    from automind.inference.train import train_on_bank
    from automind.inference.validate import resimulate

    spec = small_brunel_spec(silent=0.002, runaway=0.1)
    prior = Prior.load("brunel")
    extend(tmp_path / "bank", spec, prior, n=800, seed=1, workers=2, chunk_size=50,
           features=["spikes"], progress=False)
    posterior = train_on_bank(tmp_path / "bank", "spikes", progress=False)
    assert posterior.metrics["n_invalid"] > 0.8 * 800 and posterior.restriction is not None

    held = resimulate(spec, prior, prior.sample_indexed(99, range(80)), 5, "spikes", workers=2)
    draws = {True: [], False: []}
    for k, r in enumerate(held):
        if r.status != "ok" or not posterior.conditionable(r.features["spikes"][None])[0]:
            continue
        try:  # a target whose posterior lies where the classifier expects failures is refused
            restricted = posterior.sample(40, r.features["spikes"], seed=k)
        except UserError:
            continue
        draws[True].append(restricted)
        draws[False].append(posterior.sample(40, r.features["spikes"], seed=k, restrict=False))
    assert len(draws[True]) >= 8
    runs = resimulate(spec, prior, np.concatenate(draws[True] + draws[False]), 7, "spikes",
                      workers=2)
    invalid = np.array([r.status != "ok" for r in runs]).reshape(2, -1).mean(1)
    assert invalid[0] <= 0.6 * invalid[1] and invalid[1] - invalid[0] >= 0.02, invalid
