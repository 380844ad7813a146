"""The `automind` command: simulate end to end, and one clear message for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from automind.cli import main
from automind.errors import UserError
from automind.simulators import SimulatorSpec


def test_simulate_creates_a_bank_and_prints_json(tmp_path, capsys):
    out = tmp_path / "bank"
    code = main(["simulate", "--simulator", "brunel", "-n", "3", "--seed", "4", "--duration", "0.3",
                 "--workers", "2", "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["total"] == 3 and summary["added"] == 3
    assert sum(summary["by_status"].values()) == 3
    assert main(["bank", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["total"] == 3 and info["by_status"] == summary["by_status"]
    assert info["seed"] == 4 and info["prior"] == "brunel" and info["versions"]["brian2"]
    assert info["problems"] == []


def test_refuses_a_folder_that_is_not_a_bank(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["simulate", "--simulator", "brunel", "-n", "1", "--out", str(out)]) == 2
    assert "not empty and not a bank" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me"


BAD_SPECS = {
    "malformed": ("[network\nN = ", "malformed spec"),
    "unknown_model": ('model = "hodgkin"\n', "'model' must be one of"),
    "dt_zero": ('model = "brunel"\n[network]\nN = 2500\ndt = "0 ms"\n', "dt must be > 0"),
    "small_N": ('model = "brunel"\n[network]\nN = 1\n', "N must be an integer >= 2"),
    "bad_unit": ('model = "brunel"\n[network]\nN = 2500\ndt = "0.1 parsecs"\n', "unknown unit"),
    "unknown_key": ('model = "brunel"\ncolour = "red"\n', "unknown key"),
}


@pytest.mark.parametrize("name", sorted(BAD_SPECS))
def test_bad_simulator_specs(tmp_path, name):
    text, message = BAD_SPECS[name]
    path = tmp_path / f"{name}.toml"
    brunel = SimulatorSpec.load("brunel")
    if name not in ("malformed", "unknown_model", "unknown_key"):  # complete the spec
        text += "\n[fixed]\n" + "\n".join(f'{k} = {v}' for k, v in {
            "tau_m": '"20 ms"', "theta": '"20 mV"', "v_reset": '"10 mV"', "t_refrac": '"2 ms"',
            "J": '"0.1 mV"', "delay": '"1.5 ms"', "exc_fraction": 0.8, "C_E": 1000}.items())
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        SimulatorSpec.load(path)
    assert brunel.N == 2500


def test_unknown_fixed_parameter(tmp_path):
    text = open(SimulatorSpec.load("brunel").source).read() + 'bogus = "1 ms"\n'
    path = tmp_path / "extra.toml"
    path.write_text(text)
    with pytest.raises(UserError, match="unknown \\['bogus'\\]"):
        SimulatorSpec.load(path)


@pytest.mark.parametrize("argv, message", [
    (["--simulator", "nope"], "unknown simulator 'nope'"),
    (["--prior", "nope"], "unknown prior 'nope'"),
    (["--simulator", "brunel", "--prior", "mk1"], "needed by the brunel model"),
    (["--simulator", "brunel", "--N", "1"], "N must be an integer >= 2"),
    (["--simulator", "brunel", "--N", "1000"], "needs N_E >= C_E"),
])
def test_cli_bad_input_one_message(tmp_path, capsys, argv, message):
    code = main(["simulate", "-n", "1", "--out", str(tmp_path / "o")] + argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_argument_errors_exit_nonzero(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "automind.cli", "simulate", "-n", "1", "--dt", "0",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "must be > 0" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "automind.cli", "simulate", "--simulator", "nope",
                           "-n", "1", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "automind: error: unknown simulator 'nope'; available: brunel, column, " \
                                  "mk1 (or give a path to a .toml file)"


def test_theta_outside_support_via_api():
    from automind import simulate

    with pytest.raises(UserError, match="outside the prior support"):
        simulate("brunel", theta=[[9.0, 1.0]])
    with pytest.raises(UserError, match="must have 2 values"):
        simulate("brunel", theta=[[1.0, 1.0, 1.0]])


def test_simulate_api_returns_results_in_order():
    from automind import simulate

    results = simulate("brunel", theta=[[5.0, 2.0], [5.0, 0.0]], seed=2, duration=0.3)
    assert [r.index for r in results] == [0, 1]
    assert [r.status for r in results] == ["ok", "silent"]
    np.testing.assert_array_equal(results[0].theta, [5.0, 2.0])


def test_progress_lines_go_to_stderr_only_when_asked(capsys):
    from automind.progress import sayer

    sayer(False, "fit: ")("hidden")
    sayer(True, "fit: ")("step 1/3")
    out, err = capsys.readouterr()
    assert out == "" and err == "fit: step 1/3\n"
