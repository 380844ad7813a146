"""`automind invariance` on a reduced Brunel bank: a resumable consistent-set search and its
geometry, with the Fisher-information check."""

import json

import numpy as np
import pytest

from automind.bank import extend
from automind.cli import main
from automind.prior import Prior
from conftest import small_brunel_spec


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from automind.inference.train import train_on_bank

    spec = small_brunel_spec()
    root = tmp_path_factory.mktemp("invariance")
    extend(root / "bank", spec, Prior.load("brunel"), n=600, seed=1, workers=2, chunk_size=50,
           features=["spikes"], progress=False)
    train_on_bank(root / "bank", "spikes", progress=False).save(root / "post")
    return root


def test_consistent_set_search_resumes_and_reports_geometry(trained, tmp_path, capsys):
    from automind.bank import Bank
    from automind.inference import load_posterior

    ok = Bank(trained / "bank").arrays(features="spikes", status="ok")
    usable = load_posterior(trained / "post").conditionable(ok["x"]) & (ok["theta"][:, 0] > 4)
    target = f"{trained / 'bank'}:{int(ok['index'][usable][0])}"
    args = ["invariance", str(trained / "post"), "--target", target, "-n", "60", "--local", "10",
            "--fisher", "1", "--workers", "2", "--out", str(tmp_path / "run"), "--json"]
    # a cheap table that is not there: refused before anything is simulated or written
    assert main(args + ["--cheap", str(tmp_path / "no_table")]) == 2
    assert "no cheap table at" in capsys.readouterr().err and not (tmp_path / "run").exists()
    args += ["--cheap", "analytic"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["n_simulated"] == 60 and first["n_consistent"] >= 10
    assert 1 <= first["participation_ratio"] <= 2
    assert first["fisher"]["simulations_per_configuration"] == (2 * 2 + 1) * 4
    assert 0 <= first["local"]["angle_to_global_median_deg"] <= 90
    # the known answer: the spikes features pin Brunel's rate, so the posterior is stiff along
    # the cheap model's iso-rate normal (a random direction: |cos| 2/π, curvature ratio 1; the
    # stiffest possible: 1 and at most 2 in two dimensions), which points up the drive
    cheap = first["cheap"]
    assert cheap["n_predicted"] >= 8 and cheap["random_direction_cosine"] == pytest.approx(2 / np.pi)
    assert cheap["normal_method"]["linear_response"] >= 8  # asynchronous: an equilibrium
    assert cheap["stiff_cosine_median"] >= 0.85 and cheap["curvature_over_mean_median"] >= 1.4
    assert cheap["mean_normal"]["nu_ext"] > 0.5 and cheap["mean_normal"]["g"] < 0
    # and the re-simulated set is thin along it (random direction: variance ratio 1)
    assert cheap["set_thinnest_cosine_median"] >= 0.9 and cheap["set_variance_over_mean_median"] < 0.3
    for name in ("geometry_directions.png", "geometry_correlations.png", "geometry_local.png",
                 "geometry_path.png", "geometry_cheap.png"):
        assert (tmp_path / "run" / name).stat().st_size > 5000
    path = json.loads((tmp_path / "run" / "path.json").read_text())
    assert first["path"]["simulations"] == 27 and len(path["path"]["distance"]) == 9
    # along the set the re-simulated output stays closer to the target than across it
    assert np.nanmedian(path["path"]["distance"]) < np.nanmedian(path["orthogonal"]["distance"])

    # an interrupted run: a lost chunk is re-simulated, identically (same seeds)
    (tmp_path / "run" / "chunks" / "c00001.npz").unlink()
    before = (tmp_path / "run" / "consistent_set.csv").read_text()
    assert main(args) == 0
    capsys.readouterr()
    assert (tmp_path / "run" / "consistent_set.csv").read_text() == before

    # chunks are balanced over the workers (8 of 8 here, not 50 + 10), and the layout does
    # not change the set: the same search in one chunk of 60 finds it again
    from automind.invariance.consistent import find_consistent_set

    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["chunk_size"] == 8 and len(list((tmp_path / "run" / "chunks").glob("*"))) == 8
    find_consistent_set(load_posterior(trained / "post"),
                        np.array([np.nan if v is None else v for v in record["x"]]),
                        tmp_path / "one", 60, truth=record["truth"], seed=record["seed"],
                        threshold=record["threshold"], chunk_size=60, workers=1, progress=False)
    assert (tmp_path / "one" / "consistent_set.csv").read_text() == before

    # a path needs at least 3 points
    with pytest.raises(SystemExit) as exit_:
        main(args + ["--path-points", "2"])
    assert exit_.value.code == 2
    assert "must be 0 (skip) or >= 3" in capsys.readouterr().err

    # other settings in the same folder are refused, nothing is overwritten
    assert main(args[:4] + ["-n", "80"] + args[6:]) == 2
    assert "other settings (n)" in capsys.readouterr().err
    assert (tmp_path / "run" / "consistent_set.csv").read_text() == before
    rows = np.atleast_2d(np.genfromtxt(tmp_path / "run" / "consistent_set.csv", delimiter=",",
                                       skip_header=1))
    assert len(rows) == first["n_consistent"]

    # the run's posterior samples compared with themselves: identical, with local geometry
    run = str(tmp_path / "run")
    assert main(["compare", run, run, "--labels", "a,b", "--use", "posterior", "--local", "5",
                 "--out", str(tmp_path / "self"), "--json"]) == 0
    pair = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["pairs"]["a vs b"]
    assert min(pair["overlap"].values()) == pytest.approx(1.0) and pair["separating_parameters"] == []
    assert max(pair["local"]["sloppy_subspace_angles_deg"]) < 1e-3


def test_compare_posterior_for_two_bank_targets(trained, tmp_path, capsys):
    from automind.bank import Bank
    from automind.inference import load_posterior

    ok = Bank(trained / "bank").arrays(features="spikes", status="ok")
    usable = load_posterior(trained / "post").conditionable(ok["x"])
    theta, index = ok["theta"][usable], ok["index"][usable]
    low, high = int(index[np.argmin(theta[:, 0])]), int(index[np.argmax(theta[:, 0])])
    bank = trained / "bank"
    args = ["compare", "--posterior", str(trained / "post"), "--target", f"{bank}:{low}",
            "--target", f"{bank}:{high}", "--labels", "low_g,high_g", "-n", "500",
            "--local", "20", "--out", str(tmp_path / "cmp")]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    pair = report["pairs"]["low_g vs high_g"]
    assert pair["shift_prior_sd"]["g"] > 0.5          # the targets differ most in g
    assert 0 <= pair["local"]["local_dimensionality_p_value"] <= 1
    assert len(report["local_dimensionality"]["low_g"]) == 20
    for name in ("compare_marginals.png", "compare_local.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 5000
        assert (tmp_path / "cmp" / "figures" / name).is_file()   # copied next to the report
    page = (tmp_path / "cmp" / "index.html").read_text()
    assert "low_g vs high_g" in page and "compare_local.png" in page
    assert main(["compare", "--target", f"{bank}:{low}", "--out", str(tmp_path / "x")]) == 2
    assert "--target needs --posterior" in capsys.readouterr().err
