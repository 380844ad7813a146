"""Tasks trained through the column ODEs: the Wong-Wang target, CI-sized training runs, bad input."""

import json

import numpy as np
import pytest
import torch

from automind.columns import tasks
from automind.columns.circuit import CircuitSpec
from automind.columns.network import Circuit
from automind.columns.train import TrainConfig, load_weights, train_task
from automind.errors import UserError


def wta_index(rates, labels, step):
    idx = np.arange(len(labels))
    win, lose = rates[step, idx, labels], rates[step, idx, 1 - labels]
    return (win - lose) / (win + lose), win > lose


def test_wong_wang_target_picks_the_stronger_input():
    batch = tasks.wta_batch(32, np.random.default_rng(0))
    assert batch.targets.shape == (1500, 32, 2) and batch.inputs.shape == (1500, 32, 2)
    assert np.all(batch.inputs[:500] == 0) and np.all(batch.inputs[1000:] == 0)
    index, correct = wta_index(batch.targets, batch.labels, 999)
    assert correct.all()
    assert index.mean() == pytest.approx(0.96, abs=0.02)   # R§3.4: the target's index 0.96
    assert 0 < batch.labels.mean() < 1                       # inputs randomly swapped


def test_xor_batches_and_targets():
    b = tasks.xor_batch(np.arange(4), 10, 20)
    assert b.inputs.shape == (30, 4, 2) and np.all(b.inputs[:10] == 0)
    np.testing.assert_array_equal(b.inputs[-1], [[0, 0], [0, 20], [20, 0], [20, 20]])
    np.testing.assert_array_equal(b.targets[0, :, 0], [0.25, 1.0, 1.0, 0.25])
    patterns, amplitudes = tasks.xor_training_patterns(10, np.random.default_rng(0))
    assert sorted(patterns[:4]) == sorted(patterns[4:8]) == [0, 1, 2, 3] and len(patterns) == 10
    assert np.all((amplitudes >= 0.975) & (amplitudes <= 1.025))
    jittered = tasks.xor_batch([3], 1, 2, amplitudes=[1.02])
    np.testing.assert_allclose(jittered.inputs[-1, 0], [20.4, 20.4])


def test_wta_ci_run_lowers_the_loss_and_raises_the_wta_index(tmp_path):
    """The CI version of the WTA task (ODE-Column pair): 12 steps of 8 trials lower the
    held-out Huber loss and raise the WTA index by >= 0.1 (full run: docs/columns.md);
    only the 4 masked entries change, and they keep Dale's sign."""
    out = tmp_path / "wta"
    result = train_task("wta", out, steps=12, trials=8, eval_trials=16, eval_every=12)
    before, after = result["before"], result["after"]
    assert after["loss"][0] < 0.8 * before["loss"][0]
    assert after["wta_index"][0] >= before["wta_index"][0] + 0.1
    assert after["correct_winner"] == [16]
    assert result["circuit"]["trained_connections"][1] == "A.L23E->B.L23I"
    saved = json.loads((out / "train.json").read_text())
    assert saved["config"]["steps"] == 12 and len(saved["curve"]) == 12
    assert saved["config"]["column"] == "ode_column"
    assert (out / "curve.png").stat().st_size > 5000 and (out / "rates.png").stat().st_size > 5000
    circuit = Circuit(tasks.wta_spec())
    W_before, _ = circuit.weights()
    assert load_weights(out / "weights.pt", circuit) == 12
    W_after, _ = circuit.weights()
    changed = (W_after != W_before)[0].nonzero().tolist()
    assert sorted(map(tuple, changed)) == sorted([(0, 0), (8, 8), (9, 0), (1, 8)])
    assert (W_after[0, [9, 1], [0, 8]] > 0).all()     # lateral E -> I grew from 0, stays >= 0


def test_dale_projection_and_rectified_inputs():
    circuit = Circuit(tasks.xor_spec(), n_sets=2)
    with torch.no_grad():
        circuit.conn_values.fill_(-5.0)
        circuit.input_values.fill_(-1.0)
    circuit.keep_signs()
    assert (circuit.conn_values == 0).all() and (circuit.input_values == -1).all()
    # a negative input weight only ever removes input: the current is rectified
    inputs = torch.zeros(5, 2, 1, 2)
    inputs[:, :, :, 0] = 20.0
    rates = circuit(inputs, settle=0.01)
    rest = circuit(torch.zeros(5, 2, 1, 2), settle=0.01)
    torch.testing.assert_close(rates, rest)
    inhibitory = CircuitSpec.from_dict({"columns": ["A"], "connections": [
        {"source": "A.L23I", "target": "A.L23E", "train": True}]})
    c = Circuit(inhibitory)
    assert c.conn_values.item() < 0
    with torch.no_grad():
        c.conn_values.fill_(3.0)
    c.keep_signs()
    assert c.conn_values.item() == 0.0


def test_xor_trains_several_seeds_as_independent_parameter_sets(tmp_path):
    result = train_task("xor", tmp_path / "xor", steps=3, seeds=2, xor_blank=0.01, xor_stim=0.05,
                        eval_every=3, settle=0.05)
    weights = np.array(result["weights"]["connections"])
    assert weights.shape == (2, 4) and not np.allclose(weights[0], weights[1])
    assert len(result["after"]["correct_patterns"]) == 2
    assert np.array(result["after"]["final_rates"]).shape == (2, 4)


def test_bad_task_settings_and_folders(tmp_path):
    with pytest.raises(UserError, match="unknown task 'parity'"):
        train_task("parity", tmp_path / "x")
    with pytest.raises(UserError, match="steps must be an integer >= 1"):
        TrainConfig.for_task("wta", steps=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("keep")
    with pytest.raises(UserError, match="not empty"):
        train_task("wta", tmp_path / "full")
    assert (tmp_path / "full" / "f").read_text() == "keep"


def test_nan_stops_training_with_the_step_and_the_last_good_weights(tmp_path, monkeypatch):
    calls = []
    original = tasks.wta_batch

    def poisoned(trials, rng, *args, **kwargs):  # held-out, step 1 fine; step 2 NaN targets
        calls.append(trials)
        batch = original(trials, rng, *args, **kwargs)
        if len(calls) == 3:
            batch.targets[...] = np.nan
        return batch

    monkeypatch.setattr(tasks, "wta_batch", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(UserError, match=r"diverged at step 2 .*checkpoint.pt"):
        train_task("wta", out, steps=5, trials=2, eval_trials=2, checkpoint_every=5)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert int(saved["step"]) == 1 and torch.isfinite(saved["conn_values"]).all()
    assert not (out / "train.json").exists()


def test_cli_column_train(tmp_path, capsys):
    from automind.cli import main

    assert main(["column", "train", "--task", "wta", "--out", str(tmp_path / "w"), "--steps", "1",
                 "--trials", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps_done"] == 1 and summary["task"] == "wta"
    assert (tmp_path / "w" / "weights.pt").is_file()
    assert main(["column", "train", "--task", "majority", "--out", str(tmp_path / "m")]) == 2
    assert "unknown task 'majority'" in capsys.readouterr().err
