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


def test_rate_window_report_with_perfect_predictions():
    from types import SimpleNamespace

    from automind.cheap.check import rate_window_report

    rng = np.random.default_rng(0)
    rate = 10 ** rng.uniform(-1, 2, 3000)
    status = np.where(rng.uniform(size=3000) < 0.4, "ok", "silent")
    pred = SimpleNamespace(rate_E=rate, status=status.astype(object))
    report = rate_window_report(pred, status, rate, targets=(3.0,))["3.0"]
    near = (status == "ok") & (np.abs(np.log10(rate / 3.0)) <= 0.3)
    # a perfect model keeps the near runs and almost nothing else: the gain is 1 / P(near)
    assert report["near_recall"] >= 0.9 and report["half_width_decades"] <= 0.3
    assert report["kept"] == pytest.approx(near[1000:].mean(), abs=0.02)
    assert report["gain"] == pytest.approx(1 / near[1000:].mean() * report["near_recall"], rel=0.1)
    # a model that calls a tenth of the near runs runaway cannot keep 95 % of them: no window,
    # everything kept, no gain (it was a NaN width that kept nothing)
    wrong = np.where(near & (rng.uniform(size=3000) < 0.1), "runaway", status).astype(object)
    blind = rate_window_report(SimpleNamespace(rate_E=rate, status=wrong), status, rate,
                               targets=(3.0,))["3.0"]
    assert blind["half_width_decades"] is None
    assert blind["kept"] == 1.0 and blind["near_recall"] == 1.0 and blind["gain"] == 1.0


def test_rate_window_screen_with_features_and_fit_settings(tmp_path):
    """The fit's probe-round screen: kept draws are predicted ok near the target rate; the
    screened rows carry NaN features (never near); the option is off by default and then
    absent from fit.json."""
    from automind.bank import extend
    from automind.cheap.screen import RateWindowScreen
    from automind.fit.plan import FitSettings

    spec = SimulatorSpec.load("mk1").with_overrides(N=500, duration=1.0)
    prior = Prior.load("mk1")
    screen = RateWindowScreen.for_spec(spec, prior, 5.0, 1.0, table="analytic")
    theta = prior.sample_indexed(7, range(8))
    keep = screen.keep(theta)
    pred = screen.model.predict(theta, status_only=True)
    # the rate a recording's rate_mean measures: every neuron's, E (driven share p_igniters of
    # the round(N·exc_prop) E neurons, then the rest) and I by their numbers
    p = dict(zip(prior.names, theta.T))
    n_e = np.floor(500 * p["exc_prop"] + 0.5)
    driven = np.floor(p["p_igniters"] * n_e + 0.5) / n_e
    shares = np.stack([driven * n_e / 500, (1 - driven) * n_e / 500, 1 - n_e / 500], -1)
    assert np.allclose(pred.flags["rate_units"], np.sum(pred.rates * shares, -1))

    def within(rate):
        distance = np.abs(np.log10(np.maximum(rate, 1e-30)) - np.log10(5))
        return (pred.status == "ok") & (distance <= 1)

    assert np.array_equal(keep, within(pred.flags["rate_units"])) and (~keep).any()
    assert not np.array_equal(keep, within(pred.rate_E))  # these draws tell the two apart
    e_screen = RateWindowScreen(screen.model, 5.0, 1.0, units="E")  # the population feature set
    assert np.array_equal(e_screen.keep(theta), within(pred.rate_E))
    extend(tmp_path / "b", spec, prior, 8, 7, features=["mk1_compact"], progress=False,
           chunk_size=4, screen=screen)
    data = Bank(tmp_path / "b").arrays(features="mk1_compact")
    order = np.argsort(data["index"]) if "index" in data else np.arange(8)
    screened = np.asarray(data["status"])[order] == "screened"
    assert np.array_equal(screened, ~keep)
    assert np.isnan(data["x"][order][screened]).all()
    assert not np.isnan(data["x"][order][~screened]).all()
    assert "cheap_screen" not in FitSettings(budget=1000).to_dict()
    assert FitSettings(budget=1000, cheap_screen=1.0).to_dict()["cheap_screen"] == 1.0
    with pytest.raises(UserError, match="cheap_screen"):
        FitSettings(budget=1000, cheap_screen=0.0)
    with pytest.raises(UserError, match="give cheap_screen too"):
        FitSettings(budget=1000, cheap_table="analytic")


def test_features_of_a_screened_bank_leave_screened_rows_unset(tmp_path, capsys):
    """`automind features` on a screened bank computes the simulated rows only; a screened row
    as a target (BANK:INDEX) is refused in one line: it was never simulated."""
    out = tmp_path / "bank"
    assert main(ARGS + ["-n", "8", "--screen", SCREEN, "--keep-spikes", "--out", str(out)]) == 0
    assert main(["features", str(out), "--set", "spikes", "--workers", "1"]) == 0
    data = Bank(out).arrays(features="spikes")
    screened = data["status"] == "screened"
    assert screened.any() and (~screened).any()
    assert np.isnan(data["x"][screened]).all()
    assert np.isfinite(data["x"][~screened, 0]).all()  # rate_mean of every simulated row
    capsys.readouterr()
    first = int(data["index"][screened][0])
    assert main(["features", f"{out}:{first}", "--set", "spikes"]) == 2
    err = capsys.readouterr().err
    assert "screened out" in err and err.count("\n") == 1
