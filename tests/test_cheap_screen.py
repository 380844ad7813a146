"""`automind simulate --screen cheap`: skipped θ are bank rows with status 'screened', the
screen is recorded in bank.json and an extension must use the same one."""

import json

import numpy as np
import pytest

from automind.bank import Bank
from automind.cheap.screen import BankScreen, CheapModel
from automind.cli import main
from automind.errors import UserError
from automind.prior import Prior
from automind.simulators import SimulatorSpec

ARGS = ["simulate", "--simulator", "mk1", "--N", "500", "--duration", "1.0", "--seed", "7",
        "--chunk-size", "4"]
SCREEN = "cheap:table=analytic"


def test_screened_draws_are_rows_and_the_screen_is_recorded(tmp_path, capsys):
    out = tmp_path / "bank"
    assert main(ARGS + ["-n", "8", "--screen", SCREEN, "--out", str(out), "--json"]) == 0
    rows = Bank(out).table()
    order = np.argsort(rows["index"])
    status = np.asarray(rows["status"])[order]
    assert list(rows["index"][order]) == list(range(8))
    # exactly the draws the cheap model rejects were skipped (statuses under the thresholds)
    spec = SimulatorSpec.load("mk1").with_overrides(N=500, duration=1.0)
    theta = Prior.load("mk1").sample_indexed(7, range(8))
    keep, _ = CheapModel.for_spec(spec, table="analytic").screen(theta)
    assert np.array_equal(status == "screened", ~keep) and (~keep).any() and keep.any()
    assert set(status[keep]) <= {"ok", "silent", "runaway"}
    np.testing.assert_allclose(rows["theta"][order], theta)
    meta = json.loads((out / "bank.json").read_text())
    assert meta["screen"] == {"kind": "cheap", "table": "analytic-siegert",
                              "window": {"low": 1e-4, "high": 0.99}}
    capsys.readouterr()
    # an extension without the screen (or with another) would mix populations: refused
    assert main(ARGS + ["-n", "12", "--out", str(out)]) == 2
    assert "screen" in capsys.readouterr().err
    assert main(ARGS + ["-n", "12", "--screen", SCREEN + ",high=0.5", "--out", str(out)]) == 2
    assert len(Bank(out).table()["index"]) == 8


def test_bad_screen_options_are_one_line_errors():
    spec, prior = SimulatorSpec.load("mk1"), Prior.load("mk1")
    for text, message in (("oracle", "unknown screen"), ("cheap:low=x", "not key=number"),
                          ("cheap:recall=0.9", "unknown option"),
                          ("cheap:low=0.5,high=0.1,table=analytic", "low < high")):
        with pytest.raises(UserError, match=message):
            BankScreen.parse(text, spec, prior)
