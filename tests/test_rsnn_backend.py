"""backend = "torch" in simulator specs: a torch bank is a normal bank (seeds, statuses,
feature sets), independent of the batch size, and mixing backends in one bank is refused."""

import dataclasses

import numpy as np
import pytest

from automind.bank import Bank
from automind.bank.writer import extend
from automind.errors import UserError
from automind.prior import Prior
from automind.simulators import Simulator, SimulatorSpec
from automind.specs import find_spec, read_toml


def torch_spec(**torch_settings):
    return SimulatorSpec.load("mk1").with_overrides(
        N=60, duration=0.3, backend="torch", torch={"batch": 4} | torch_settings)


def test_spec_backend_settings_validated():
    data, _ = read_toml(find_spec("simulators", "mk1"))
    spec = SimulatorSpec.from_dict(data | {"backend": "torch", "torch": {"dtype": "float32"}})
    assert spec.backend == "torch" and spec.torch_settings()["dtype"] == "float32"
    assert SimulatorSpec.from_plain(spec.to_dict()) == spec
    brian2 = SimulatorSpec.load("mk1")
    assert "backend" not in brian2.to_dict()  # banks written before backends existed still match
    for bad, message in (({"backend": "jax"}, "backend must be"),
                         ({"backend": "torch", "torch": {"gpu": 1}}, "unknown \\[torch\\]"),
                         ({"backend": "torch", "torch": {"batch": 0}}, "batch"),
                         ({"torch": {"batch": 2}}, "needs backend"),
                         ({"backend": "torch", "network": data["network"] | {"dt": "0.3 ms"}},
                          "divides 1 ms")):
        with pytest.raises(UserError, match=message):
            SimulatorSpec.from_dict(data | bad)
    with pytest.raises(UserError, match="Brian2 backend"):
        Simulator(torch_spec())


def test_torch_bank_is_a_normal_bank_and_batch_independent(tmp_path):
    prior = Prior.load("mk1")
    extend(tmp_path / "a", torch_spec(batch=4), prior, n=6, seed=3, features=["spikes"],
           progress=False)
    extend(tmp_path / "b", torch_spec(batch=5), prior, n=6, seed=3, features=["spikes"],
           progress=False)
    a, b = Bank(tmp_path / "a").arrays("spikes"), Bank(tmp_path / "b").arrays("spikes")
    np.testing.assert_array_equal(a["index"], np.arange(6))
    np.testing.assert_array_equal(a["theta"], prior.sample_indexed(3, range(6)).astype(a["theta"].dtype))
    assert set(a["status"]) <= {"ok", "silent", "runaway"} and "ok" in set(a["status"])
    np.testing.assert_array_equal(a["status"], b["status"])
    np.testing.assert_array_equal(a["x"], b["x"])  # NaN in the same places too
    assert Bank(tmp_path / "a").meta["simulator"]["backend"] == "torch"


def test_a_torch_spec_compiles_no_brian2_model(tmp_path, monkeypatch):
    """Banks, validation and the consistent-set search ask for the compiled model; a torch spec
    gets the stand-in without compiling (the explicit-graph Brian2 variant still compiles)."""
    from automind.simulators import engine

    monkeypatch.setattr(engine, "_compile", lambda *a, **k: pytest.fail("compiled"))
    stand_in = engine.CompiledModel.for_spec(torch_spec())
    assert isinstance(stand_in, engine.NotCompiled) and stand_in.directory == ""


def test_mixing_backends_in_one_bank_refused(tmp_path):
    prior = Prior.load("mk1")
    extend(tmp_path / "bank", torch_spec(), prior, n=2, seed=0, progress=False)
    brian2 = dataclasses.replace(torch_spec(), backend="brian2", torch={})
    with pytest.raises(UserError, match="backend"):
        extend(tmp_path / "bank", brian2, prior, n=4, seed=0, progress=False)


def test_cli_simulate_with_the_torch_backend(tmp_path, capsys):
    from automind.cli import main

    out = tmp_path / "bank"
    assert main(["simulate", "--backend", "torch", "--batch", "3", "-n", "3", "--N", "40",
                 "--duration", "0.2", "--out", str(out), "--workers", "1", "--json"]) == 0
    meta = Bank(out).meta["simulator"]
    assert meta["backend"] == "torch" and meta["torch"] == {"batch": 3}
    assert Bank(out).info()["total"] == 3
    # another batch size gives the same results, so it extends the same bank
    assert main(["simulate", "--backend", "torch", "--batch", "2", "-n", "4", "--N", "40",
                 "--duration", "0.2", "--out", str(out), "--workers", "1", "--json"]) == 0
    assert Bank(out).info()["total"] == 4
    assert main(["simulate", "--batch", "3", "-n", "3", "--out", str(out)]) == 2
    assert "--backend torch" in capsys.readouterr().err
