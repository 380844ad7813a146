"""The mk1_targets study: targets chosen by the written rule, fitted with `automind fit` and
with one prior bank of the same size, side by side."""

import json
from pathlib import Path

import numpy as np

from automind.cli import main
from automind.studies.fit_targets import select_targets

STUDY = Path(__file__).resolve().parents[1] / "studies" / "mk1_targets"
RULE = {"rate_low": 1.0, "rate_high": 30.0, "async_corr": 0.05, "sync_corr": 0.1,
        "min_bursts": 3, "asynchronous": 2, "synchronous": 1, "duration_analysed": 4.0}


def test_selection_rule_takes_the_first_qualifying_networks_in_index_order():
    names = ["rate_mean", "corr_mean", "burst_rate"]
    x = np.array([[5.0, 0.01, np.nan],   # 0 asynchronous
                  [50.0, 0.01, np.nan],  # 1 rate out of range
                  [5.0, 0.2, 0.5],       # 2 synchronous (2 bursts, but correlated)
                  [5.0, 0.01, 1.0],      # 3 4 bursts: synchronous, not asynchronous
                  [0.5, 0.01, np.nan],   # 4 rate too low
                  [8.0, 0.02, 0.0],      # 5 asynchronous
                  [9.0, 0.03, np.nan]])  # 6 asynchronous, but two are enough
    data = {"x": x, "index": np.arange(7), "status": np.array(["ok"] * 6 + ["ok"])}
    assert select_targets(data, names, RULE) == [(0, "asynchronous"), (5, "asynchronous"),
                                                 (2, "synchronous")]
    data["status"][0] = "runaway"
    assert select_targets(data, names, RULE)[0] == (5, "asynchronous")
    # an onset transient (its second half silent) is not a target, however it scores
    sustained = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.8])
    assert select_targets(data, names, RULE, sustained) == [(6, "asynchronous"), (2, "synchronous")]


def test_e_halves_tells_sustained_activity_from_an_onset_transient(tmp_path):
    """Two stored 'simulations': E firing steadily, and E firing only in the first 0.2 s."""
    from automind.studies.fit_targets import e_halves

    class Stored:
        def __init__(self, runs):
            self.runs = runs

        def spikes(self, index):
            return self.runs[index]

    rng = np.random.default_rng(0)
    steady = np.sort(rng.uniform(0, 4.5, 4000))
    onset = np.sort(rng.uniform(0.5, 0.7, 4000))
    runs = [{"spikes": {"E": (t, rng.integers(0, 100, len(t))), "I": (np.zeros(0), np.zeros(0, int))},
             "n_units": {"E": 100, "I": 25}, "t_end": 4.5} for t in (steady, onset)]
    ratio = e_halves(Stored(runs), {"index": np.array([0, 1]), "status": np.array(["ok", "ok"])}, 0.5)
    assert ratio[0] > 0.9 and ratio[1] == 0.0


def test_quick_study_fits_a_target_beside_the_prior_bank(tmp_path, capsys):
    assert main(["study", "run", str(STUDY), "--quick", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [row] = summary["targets"]
    assert row["kind"] == "asynchronous" and len(row["truth"]) == 28
    budget = summary["settings"]["budget"]
    assert row["fit"]["simulations"] <= budget and row["baseline"]["simulations"] == budget
    for method in ("fit", "baseline"):
        assert 0 <= row[method]["yield"] <= 1 and np.isfinite(row[method]["nats"])
    # ~20 near probes are too few to cut the prior safely: the region keeps the truth
    assert row["fit"]["probe_region_nats"] >= 0
    assert np.isfinite(row["fit"]["truth_log_ratio_nats"])
    # exploration runs from a consistent set of at least two configurations
    assert (row["explored"] is None) == (row["fit"]["n_consistent"] < 2)
    assert (tmp_path / "fit_vs_bank.png").stat().st_size > 5000
