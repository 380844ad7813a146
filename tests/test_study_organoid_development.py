"""The organoid_development study at quick sizes: ages written as MEA spike lists and read
back, a local MK1 prior around the baseline, documented changes per pair of ages."""

import json
from pathlib import Path

import numpy as np
import pytest

from automind.cli import main
from automind.errors import UserError
from automind.prior import Prior
from automind.recordings import read_recording
from automind.studies import load_study
from automind.studies.dataset_comparison import documented_thetas, study_prior

STUDY = Path(__file__).resolve().parents[1] / "studies" / "organoid_development"


def test_local_prior_frees_six_parameters_around_the_baseline_and_fixes_the_rest():
    config = load_study(STUDY)
    mk1, local = Prior.load("mk1"), study_prior(config, Prior.load("mk1"))
    assert local.names == ["p_e2e", "E.b", "E.Q_ge", "E.Q_gi", "E.poisson_rate", "I.Q_ge"]
    b = local.names.index("E.b")
    assert (local.low[b], local.high[b]) == pytest.approx((163.701 - 30, 163.701 + 30))
    assert local.high[0] == mk1.high[mk1.names.index("p_e2e")] == 0.1   # clipped at MK1's bound
    fixed = {c.name: c.value for c in local.constants}
    assert sorted(fixed) == sorted(set(mk1.names) - set(local.names))
    assert fixed["E.tau_w"] == 233.471 and fixed["n_clusters"] == 13        # floored, as simulated
    values = local.to_simulator(documented_thetas(config, local)["week40"])
    assert values["E.tau_w"] == pytest.approx(0.233471) and values["E.b"] == pytest.approx(163.701e-12)
    thetas = documented_thetas(config, local)
    assert thetas["week20"][b] - thetas["week40"][b] == pytest.approx(-20.000444)
    config["datasets"]["week9"]["E.b"] = 100.0
    with pytest.raises(UserError, match=r"week9 lies outside the prior: E.b = 100 not in \[133.701, 193.701\]"):
        documented_thetas(config, local)
    config["datasets"]["week9"] = {"E.tau_w": 300.0}
    with pytest.raises(UserError, match=r"week9 changes \['E.tau_w'\], which the local prior holds fixed"):
        documented_thetas(config, local)


def test_quick_study_reads_the_mea_lists_and_reports_the_documented_changes(tmp_path, capsys):
    assert main(["study", "run", str(STUDY), "--quick", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    pairs = summary["pairs"]
    assert pairs["week9 vs week20"]["changed"] == ["E.Q_ge"]
    assert pairs["week20 vs week40"]["changed"] == ["E.b"]
    assert sorted(pairs["week9 vs week40"]["changed"]) == ["E.Q_ge", "E.b"]
    local_sd = 1.2 / np.sqrt(12)   # E.Q_ge's local prior: +-0.6 nS
    assert pairs["week9 vs week20"]["documented_shift_prior_sd"]["E.Q_ge"] == pytest.approx(0.4 / local_sd, rel=1e-3)
    for age in ("week9", "week20", "week40"):
        data = read_recording(tmp_path / "work" / f"{age}.csv", fs=10000)
        assert data.n_spikes > 0 and data.units.max() < 200   # electrodes: E neurons of N = 200
    week40 = summary["datasets"]["week40"]
    assert set(week40["posterior_mean"]) == set(week40["documented"])
    assert all(-1 <= c["pearson"] <= 1 for c in week40["strongest_correlations"])
    assert (tmp_path / "documented_vs_found.png").stat().st_size > 5000
