"""`automind fit --method gradient --fit weights`: the per-synapse weights of a start at
E.Q_ge = 1.5 nS fitted to a Brian2 recording of the start's own graph with its E→E weights
doubled; the fitted E→E weights double, and the fitted graph re-simulated in Brian2 is
accepted (the start graph is not); layout, resume and refusals."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from automind.cli import main
from automind.cli.fit_gradient import read_start_theta
from automind.errors import UserError
from automind.fit.gradient import BEST_SEEDS, NOISE_REPEATS, fit_gradient
from automind.features.sets import get_feature_set
from automind.fit.gradient import score
from automind.fit.gradient_weights import load_graphs, resimulate_fitted
from automind.prior import Prior
from automind.simulators import SimulatorSpec
from conftest import QUIET_MK1

SPEC = SimulatorSpec.load("mk1").with_overrides(N=20, dt=5e-4, duration=0.3, t_analysis_start=0.05)
NETWORK = QUIET_MK1 | {"p_e2e": 0.5, "p_i2e": 0.3, "E.poisson_rate": 2.0}
SPIKES = get_feature_set("spikes")
FIT = dict(features="spikes", start_theta=[[1.5]], fit_features=("rate_mean",), steps=30,
           lr=0.05, seed=3, progress=False, fit="weights")


def q_prior() -> Prior:
    """E.Q_ge free in [0.5, 5] nS (on E neurons: the E→E weights here); the rest constants."""
    constants = [{"name": k, "value": v} for k, v in NETWORK.items() if k != "E.Q_ge"]
    return Prior.from_dict({"name": "q", "parameter": [
        {"name": "E.Q_ge", "low": 0.5, "high": 5.0, "unit": "nS"}], "constant": constants})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """0.25 s of the fit's start graph (realised as the fit does) with its E→E weights
    doubled, simulated in Brian2 on that explicit graph, as an NWB file."""
    from automind.features.spikedata import SpikeData
    from automind.fit.gradient_weights import graph_seeds
    from automind.recordings.write import write_nwb
    from automind.rsnn.weights import realise
    from automind.simulators import Simulator

    start = q_prior().to_simulator([1.5])
    graph = realise(SPEC, [start], graph_seeds(FIT["seed"], 1))[0]
    result = Simulator(SPEC, explicit_graph=True).run(
        start, seed=4242, graph=graph | {"q_exc": 2 * graph["q_exc"]})
    assert result.status == "ok"
    path = tmp_path_factory.mktemp("weights-target") / "target.nwb"
    return write_nwb(SpikeData.from_simulation(result).window(0.05), path)


@pytest.fixture(scope="module")
def fitted(recording, tmp_path_factory):
    out = tmp_path_factory.mktemp("weights") / "run"
    return out, fit_gradient(recording, out, simulator=SPEC, prior=q_prior(), truth=[3.0], **FIT)


def test_weight_fit_doubles_the_e_to_e_weights_and_is_accepted_in_brian2(fitted):
    out, summary = fitted
    assert summary["fit"] == "weights" and summary["resimulated_with"].startswith("Brian2")
    row = summary["fits"][0]
    assert row["status"] == "ok" and row["theta"]["E.Q_ge"] == pytest.approx(1.5)  # θ stays
    assert row["final_loss"] < 3  # d² of the rate ~ 1: the noise floor
    assert 1.8 < row["weights"]["mean_ratio_exc"] < 2.2, row["weights"]  # the truth: 2
    # re-simulated in Brian2 on its graph: accepted as validate accepts (d over all 14 spike
    # features ≤ 2, only the rate fitted); the start graph, re-simulated alike, is far off
    assert row["brian2_status"] == "ok" and row["accepted"] and row["brian2_distance"] < 2, row
    assert summary["yield"] == 1.0 and summary["n_consistent"] == 1
    resim = np.load(out / "final" / "resim.npz")
    # the fitted graph on BEST_SEEDS Brian2 seeds (the check's, then new ones): accepted on each
    seeds = resim["distance_seeds"]
    assert seeds.shape == (1, BEST_SEEDS) and seeds[0, 0] == row["brian2_distance"], seeds
    assert (seeds < 2).all() and len(set(seeds[0])) == BEST_SEEDS, seeds
    assert summary["best_start"] == 0 and summary["simulations"] == BEST_SEEDS + NOISE_REPEATS
    assert str(resim["engine"]) == "brian2" and resim["accepted"].tolist() == [True]
    noise = json.loads((out / "final" / "noise.json").read_text())
    record = json.loads((out / "fit.json").read_text())
    rate_target = np.log10(record["target"]["rate_mean"])
    assert abs(resim["features"][0, 0] - rate_target) < 2 * noise["sigma"][0]
    start = resimulate_fitted(SimpleNamespace(out=out, prior=q_prior(), spec=SPEC, fs=SPIKES,
                                              settings=SimpleNamespace(seed=FIT["seed"])), [0],
                              "start")
    sigma = np.array([np.inf if v is None else v for v in noise["sigma"]])
    t_target = SPIKES.transform(np.array([record["target"]["x"]], dtype=float))[0]
    columns = np.isfinite(t_target)
    d_start = score(SPIKES.transform(np.array([start[0].features["spikes"]]))[:, columns], ["ok"],
                    t_target[columns], sigma[columns], 2.0)["distance"][0]
    assert d_start > 5 * row["brian2_distance"], (d_start, row["brian2_distance"])
    assert row["weights"]["sign_flips"] == 0
    start, end = load_graphs(out / "gradient" / "weights.npz", "start"), load_graphs(
        out / "gradient" / "weights.npz")
    assert np.allclose(start[0]["q_exc"], 1.5e-9) and (end[0]["q_exc"] > 0).all()
    for key in ("syn_exc", "syn_inh"):  # the same synapses: zeros stayed zero
        assert all(np.array_equal(a, b) for a, b in zip(start[0][key], end[0][key]))
    assert resim["status"][0] == "ok"
    assert (out / "gradient" / "fits.csv").is_file() and (out / "final" / "samples.npy").is_file()
    assert record["settings"]["fit"] == "weights"


def test_weight_fit_resumes_and_reads_start_tables(fitted, recording):
    out, summary = fitted
    stamp = (out / "gradient" / "weights.npz").stat().st_mtime_ns
    again = fit_gradient(recording, out, simulator=SPEC, prior=q_prior(), truth=[3.0], **FIT)
    assert again["fits"] == summary["fits"]
    assert (out / "gradient" / "weights.npz").stat().st_mtime_ns == stamp
    # a check written by the torch re-simulation of earlier versions (no "engine") is redone
    with np.load(out / "final" / "resim.npz") as data:
        old = {k: data[k] for k in data.files if k != "engine"}
    np.savez(out / "final" / "resim.npz", **old)
    again = fit_gradient(recording, out, simulator=SPEC, prior=q_prior(), truth=[3.0], **FIT)
    assert again["fits"] == summary["fits"]  # the same seeds: the same Brian2 runs
    assert str(np.load(out / "final" / "resim.npz")["engine"]) == "brian2"
    with pytest.raises(UserError, match="other settings"):  # a θ fit in the same folder
        fit_gradient(recording, out, simulator=SPEC, prior=q_prior(), truth=[3.0],
                     **(FIT | {"fit": "theta"}))
    table = read_start_theta(out / "gradient" / "fits.csv")
    assert table["names"] == ["E.Q_ge"] and table["rows"].tolist() == [[1.5]]


def test_weight_fit_refusals(recording, tmp_path, capsys):
    prior = q_prior()
    with pytest.raises(UserError, match="--compare needs --fit theta"):
        fit_gradient(recording, tmp_path / "a", simulator=SPEC, prior=prior,
                     compare_with=tmp_path, **FIT)
    with pytest.raises(UserError, match="--fit must be one of"):
        fit_gradient(recording, tmp_path / "b", simulator=SPEC, prior=prior, **(FIT | {"fit": "w"}))
    with pytest.raises(UserError, match="lacks"):
        fit_gradient(recording, tmp_path / "c", simulator=SPEC, prior=prior,
                     **(FIT | {"start_theta": {"names": ["E.b"], "rows": np.ones((1, 1))}}))
    assert not any((tmp_path / name).exists() for name in "abc")
    assert main(["fit", str(recording), "--method", "gradient", "--fit", "weights",
                 "--compare", str(tmp_path), "--out", str(tmp_path / "d")]) == 2
    assert "--compare needs --fit theta" in capsys.readouterr().err
    assert main(["fit", str(recording), "--method", "gradient", "--start-theta",
                 str(tmp_path / "none.npy"), "--out", str(tmp_path / "e")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_command_line_runs_a_weight_fit_from_a_start_table(recording, tmp_path, capsys):
    """`--fit weights --start-theta FILE` through the parser (the spec and prior objects put in
    place of their names, as the small network is not a named spec)."""
    from automind.cli import build_parser
    from automind.cli.fit_gradient import run_gradient

    np.save(tmp_path / "starts.npy", np.array([[1.5]]))
    args = build_parser().parse_args(
        ["fit", str(recording), "--method", "gradient", "--fit", "weights", "--features", "spikes",
         "--start-theta", str(tmp_path / "starts.npy"), "--fit-features", "rate_mean",
         "--steps", "3", "--out", str(tmp_path / "run")])
    args.simulator, args.prior = SPEC, q_prior()
    summary = run_gradient(args)
    assert summary["fit"] == "weights" and summary["n_starts"] == 1
    assert summary["fits"][0]["weights"]["sign_flips"] == 0
    assert "re-simulated in Brian2 (fitted graphs)" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "fit.json").read_text())["start_theta"] == [[1.5]]
