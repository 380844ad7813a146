"""Hostile files: reading a user's input never runs code from it, never allocates what the
file merely declares, never reads outside a bank, never runs a tampered compiled binary.

Each pickle gadget here is first shown to work (``np.load(allow_pickle=True)`` or plain
``pickle`` creates the marker file), so the tests would fail if automind unpickled it.
"""

import builtins
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from automind.cli import main
from automind.errors import UserError

from fuzz_formats import make_bank, make_mea_hdf5, make_neo_mat, make_nwb, make_posterior


class Gadget:
    """Unpickling this calls ``function(argument)``: here, something that creates ``marker``."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


def gadgets(marker: Path):
    return {"os.system": Gadget(os.system, f"touch {marker}"),
            "builtins.exec": Gadget(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
            "subprocess.Popen": Gadget(subprocess.Popen, ["touch", str(marker)])}


def object_array(*items):
    out = np.empty(len(items), dtype=object)
    for k, item in enumerate(items):
        out[k] = item
    return out


def one_line_error(capsys, argv) -> str:
    """Runs the command; it must fail with exit 2 and one error line (progress lines such as
    "compiling ..." may precede it), never a traceback."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    assert lines[-1].startswith("automind: error: ") and "Traceback" not in err, err
    assert sum(line.startswith("automind: error") for line in lines) == 1, err
    return lines[-1]


def unpickling_runs_it(path: Path, marker: Path, key: str) -> bool:
    """Control: numpy's own loader with allow_pickle=True does run the gadget."""
    subprocess.run([sys.executable, "-c", f"import numpy as np; np.load({str(path)!r}, "
                                          f"allow_pickle=True)[{key!r}]"],
                   capture_output=True, timeout=60, cwd=path.parent)
    ran = marker.exists()
    marker.unlink(missing_ok=True)
    return ran


# ---- recordings ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "subprocess.Popen"])
@pytest.mark.parametrize("where", ["whole", "inside"])
def test_pickled_code_in_an_automind_layout_file_never_runs(tmp_path, capsys, name, where):
    marker = tmp_path / "MARKER"
    gadget = gadgets(marker)[name]
    spikes = gadget if where == "whole" else object_array(np.arange(3), gadget)
    path = tmp_path / "evil.npz"
    np.savez(path, spikes=object_array(spikes) if where == "whole" else spikes, fs=1000.0,
             t_end=1.0)
    assert unpickling_runs_it(path, marker, "spikes")
    err = one_line_error(capsys, ["features", path])
    assert not marker.exists()
    assert "refuses" in err and ("posix.system" if name == "os.system" else name) in err


@pytest.mark.parametrize("layout, key", [
    (dict(unit_ids=np.zeros(1)), "spike_times"),   # spike_times + unit_ids
    (dict(samples=np.zeros(1), fs=1000.0), "electrodes"),  # MEA electrode lists
    (dict(spikes=object_array(np.arange(2))), "fs"),  # AutoMIND layout: only spikes may be ragged
])
def test_pickled_object_in_a_plain_member_is_refused(tmp_path, capsys, layout, key):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.npz"
    np.savez(path, **layout, **{key: object_array(gadgets(marker)["os.system"])})
    assert unpickling_runs_it(path, marker, key)
    err = one_line_error(capsys, ["features", path])
    assert not marker.exists() and f"'{key}' is a pickled object array" in err


@pytest.mark.parametrize("spikes, message", [
    (object_array("a", "bc"), "a pickled str where an array was expected"),
    (object_array([1, 2], [3]), "a pickled list where an array was expected"),
    (object_array({"t": 1}), "a pickled dict where an array was expected"),
    (object_array(object_array(np.arange(2))), "nested in object arrays"),
    (object_array(np.zeros(2, dtype=[("t", "f8")])), "dtype 'V8'"),
    (object_array(np.array(["2020-01-01"], dtype="M8[D]")), "dtype 'M8'"),
    (object_array(np.arange(3), None), "a pickled NoneType"),
])
def test_object_arrays_of_the_wrong_kind(tmp_path, capsys, spikes, message):
    path = tmp_path / "odd.npz"
    np.savez(path, spikes=spikes, fs=1000.0, t_end=1.0)
    assert message in one_line_error(capsys, ["features", path])


def test_the_published_layout_still_reads_exactly(tmp_path):
    """Ragged int64 / float / big-endian / Fortran members decode to the same numbers."""
    from automind.recordings.npz import SafeNpz

    trains = object_array(np.array([5, 9, 200], np.int64), np.array([], np.int64),
                          np.array([3.0, 4.5], ">f8"), np.arange(6, dtype=np.uint16))
    grid = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    np.savez(tmp_path / "ok.npz", spikes=trains, grid=grid)
    with SafeNpz(tmp_path / "ok.npz", ragged=("spikes",)) as data:
        for ours, theirs in zip(data["spikes"], trains):
            np.testing.assert_array_equal(ours, theirs)
            assert ours.dtype == theirs.dtype
        np.testing.assert_array_equal(data["grid"], grid)


def _npz_with_header(path: Path, key: str, shape: tuple, payload: bytes) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{key}.npy", header.getvalue() + payload)  # the header has the magic
        archive.writestr("unit_ids.npy", _npy(np.zeros(1)))


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class FakeArray:
    """Pickles as numpy's array reconstruction, declaring ``shape`` over ``data``."""

    def __init__(self, shape, data):
        self.shape, self.data = shape, data

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                (1, self.shape, np.dtype("f8"), False, self.data))


def test_enormous_declared_sizes_are_refused_before_allocating(tmp_path, capsys, monkeypatch):
    before = peak_rss_mb()
    _npz_with_header(tmp_path / "huge.npz", "spike_times", (10**12,), b"\0" * 16)
    assert "declares shape (1000000000000,)" in one_line_error(capsys, ["features", tmp_path / "huge.npz"])
    # a pickled array claiming 8 TB over 8 bytes
    np.savez(tmp_path / "huge_pickle.npz", spikes=object_array(FakeArray((10**12,), b"\0" * 8)),
             fs=1000.0)
    assert "does not hold its data" in one_line_error(capsys, ["features", tmp_path / "huge_pickle.npz"])
    # one 800 kB train referred to 1000 times: 800 MB from a 0.8 MB file
    big = np.zeros(100_000)
    np.savez(tmp_path / "refs.npz", spikes=object_array(*[big] * 1000), fs=1000.0)
    assert "more bytes than the file holds" in one_line_error(capsys, ["features", tmp_path / "refs.npz"])
    # a zip bomb: 16 MB of zeros compressed to a few kB, above a 1 MB limit
    monkeypatch.setenv("AUTOMIND_MAX_ARRAY_BYTES", "1000000")
    np.savez_compressed(tmp_path / "bomb.npz", spike_times=np.zeros(2_000_000), unit_ids=np.zeros(1))
    assert (tmp_path / "bomb.npz").stat().st_size < 100_000
    assert "more than the 1000000-byte limit" in one_line_error(capsys, ["features", tmp_path / "bomb.npz"])
    assert peak_rss_mb() - before < 200


def test_nwb_with_an_enormous_declared_dataset(tmp_path, capsys):
    import h5py

    path = make_nwb(tmp_path, np.random.default_rng(0))
    with h5py.File(path, "a") as f:
        attrs = dict(f["units/spike_times"].attrs)
        del f["units/spike_times"]
        huge = f.create_dataset("units/spike_times", shape=(10**12,), dtype="f8", chunks=(4096,))
        huge.attrs.update(attrs)
    before = peak_rss_mb()
    assert "spike_times declares 8000000000000 bytes" in one_line_error(capsys, ["features", path])
    assert peak_rss_mb() - before < 200


def test_mea_hdf5_with_an_enormous_declared_dataset(tmp_path, capsys):
    import h5py

    from automind.features import compute_features
    from automind.recordings import read_recording

    path = make_mea_hdf5(tmp_path, np.random.default_rng(0))
    compute_features(read_recording(path), "spikes")  # the imports, before measuring memory
    with h5py.File(path, "a") as f:
        del f["spikes"]
        f.create_dataset("spikes", shape=(10**12,), dtype="f8", chunks=(4096,))
    before = peak_rss_mb()
    assert "dataset 'spikes' declares 8000000000000 bytes" in one_line_error(capsys, ["features", path])
    assert peak_rss_mb() - before < 200


def test_neo_file_over_the_size_limit(tmp_path, capsys, monkeypatch):
    pytest.importorskip("neo")
    path = make_neo_mat(tmp_path, np.random.default_rng(0))
    monkeypatch.setenv("AUTOMIND_MAX_ARRAY_BYTES", str(path.stat().st_size - 1))
    assert "over the" in one_line_error(capsys, ["features", path])


@pytest.mark.parametrize("suffix", ["npz", "csv", "nwb"])
def test_empty_and_garbage_files_one_line(tmp_path, capsys, suffix):
    empty = tmp_path / f"empty.{suffix}"
    empty.write_bytes(b"")
    one_line_error(capsys, ["features", empty])
    garbage = tmp_path / f"garbage.{suffix}"
    garbage.write_bytes(b"\x00\xff\xfe" * 100 + b"unit,time\n")
    one_line_error(capsys, ["features", garbage])


def test_csv_with_nul_bytes_or_not_utf8(tmp_path, capsys):
    (tmp_path / "nul.csv").write_bytes(b"unit,time\n1,0.5\x00\n")
    assert "must hold 2 numbers" in one_line_error(capsys, ["features", tmp_path / "nul.csv"])
    (tmp_path / "latin.csv").write_bytes(b"unit,time\n1,0.5\xe9\n")
    assert "not a UTF-8 text file" in one_line_error(capsys, ["features", tmp_path / "latin.csv"])


def test_deeply_nested_toml_spec(tmp_path, capsys):
    path = tmp_path / "prior.toml"
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    err = one_line_error(capsys, ["simulate", "--prior", path, "--simulator", "brunel", "-n", "1",
                                  "--out", tmp_path / "bank"])
    assert "malformed spec" in err


# ---- banks -------------------------------------------------------------------------------

@pytest.fixture
def bank(tmp_path):
    return make_bank(tmp_path, np.random.default_rng(0))


def _records(bank):
    return sorted((bank / "manifest").glob("*.json"))


def test_symlink_out_of_the_bank_is_refused(bank, tmp_path, capsys):
    from automind.bank import Bank, BankError

    shard = sorted((bank / "shards").glob("*.parquet"))[0]
    outside = tmp_path / "elsewhere.parquet"
    shutil.move(shard, outside)
    shard.symlink_to(outside)  # same bytes, checksum matches: only the location is wrong
    with pytest.raises(BankError, match="points outside the bank"):
        Bank(bank).table()
    assert "points outside the bank" in one_line_error(capsys, ["bank", "info", bank])
    inner = bank / "spare.parquet"  # a symlink that stays inside the bank is fine
    shard.unlink()
    shutil.move(outside, inner)
    shard.symlink_to(inner)
    assert len(Bank(bank).table()["index"]) == 12


def test_manifest_record_cannot_steer_reads_outside(bank):
    from automind.bank import Bank

    record = _records(bank)[0]
    data = json.loads(record.read_text())
    data["name"] = "../../../etc/passwd"
    record.write_text(json.dumps(data))
    opened = Bank(bank)
    assert len(opened.table()["index"]) == 8
    assert any("is not cNNNNNNNN-XXXXXXXX" in p for p in opened.problems)


def _replace_spikes(bank, content: bytes):
    record = _records(bank)[0]
    data = json.loads(record.read_text())
    (bank / "spikes" / f"{data['name']}.npz").write_bytes(content)
    import hashlib

    data["spikes_sha256"], data["spikes_bytes"] = hashlib.sha256(content).hexdigest(), len(content)
    record.write_text(json.dumps(data))  # a hostile bank: its checksums agree with its files


def test_pickled_code_in_a_bank_spike_file(bank, tmp_path):
    from automind.bank import Bank, BankError

    marker = tmp_path / "MARKER"
    buffer = io.BytesIO()
    np.savez(buffer, **{"0/E/steps": object_array(gadgets(marker)["os.system"])})
    _replace_spikes(bank, buffer.getvalue())
    opened = Bank(bank)
    with pytest.raises(BankError, match="pickled object array"):
        opened.shard_spikes(opened.records[0])
    assert not marker.exists()


def test_enormous_declared_size_in_a_bank_spike_file(bank, tmp_path):
    from automind.bank import Bank

    _npz_with_header(tmp_path / "huge.npz", "0/E/steps", (10**12,), b"\0" * 16)
    _replace_spikes(bank, (tmp_path / "huge.npz").read_bytes())
    opened = Bank(bank)
    with pytest.raises(UserError, match="declares shape"):
        opened.shard_spikes(opened.records[0])


def test_deeply_nested_bank_json(bank, capsys):
    (bank / "bank.json").write_text("[" * 5000 + "]" * 5000)
    assert "not valid JSON" in one_line_error(capsys, ["bank", "info", bank])


# ---- posterior artifacts ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def posterior_dir(tmp_path_factory):
    return make_posterior(tmp_path_factory.mktemp("post"), np.random.default_rng(0))


def _rehash(path: Path) -> None:
    import hashlib

    meta = json.loads((path / "posterior.json").read_text())
    meta["weights_sha256"] = hashlib.sha256((path / "weights.pt").read_bytes()).hexdigest()
    (path / "posterior.json").write_text(json.dumps(meta))


def test_pickled_code_in_posterior_weights(posterior_dir, tmp_path, capsys):
    import torch

    marker = tmp_path / "MARKER"
    post = tmp_path / "post"
    shutil.copytree(posterior_dir, post)
    torch.save({"estimator.0": gadgets(marker)["os.system"]}, post / "weights.pt")
    _rehash(post)
    np.savez(tmp_path / "r.npz", spike_times=[0.1, 0.2], unit_ids=[0, 1], duration=1.0)
    err = one_line_error(capsys, ["infer", post, "--recording", tmp_path / "r.npz",
                                  "--out", tmp_path / "samples"])
    assert not marker.exists() and "inconsistent" in err
    torch.load(post / "weights.pt", weights_only=False)  # control: a full unpickling runs it
    assert marker.exists()


def test_posterior_config_declaring_enormous_networks(posterior_dir, tmp_path):
    from automind.inference import load_posterior

    post = tmp_path / "post"
    shutil.copytree(posterior_dir, post)
    meta = json.loads((post / "posterior.json").read_text())
    meta["training"]["hidden_features"] = 10**9   # posterior format 2
    (post / "posterior.json").write_text(json.dumps(meta))
    before = peak_rss_mb()
    with pytest.raises(UserError, match="do not match the .* stored weights"):
        load_posterior(post)
    assert peak_rss_mb() - before < 200


# ---- compiled-model cache --------------------------------------------------------------------

@pytest.fixture
def private_cache(brunel, tmp_path, monkeypatch):
    """A copy of the brunel fixture's compiled entry in a private cache."""
    entry = brunel.compiled.directory
    copy = tmp_path / "cache" / "compiled" / entry.name
    shutil.copytree(entry, copy, symlinks=True)
    monkeypatch.setenv("AUTOMIND_CACHE", str(tmp_path / "cache"))
    return copy


def test_tampered_compiled_binary_never_runs(brunel, private_cache, tmp_path, capsys):
    from automind.simulators import Simulator
    from automind.simulators.engine import CompiledModel

    assert CompiledModel.for_spec(brunel.spec).directory == private_cache  # the copy verifies
    marker = tmp_path / "MARKER"
    (private_cache / "main").write_text(f"#!/bin/sh\ntouch {marker}\n")
    with pytest.raises(UserError, match="altered after it was built"):
        Simulator(brunel.spec)
    err = one_line_error(capsys, ["simulate", "--simulator", "brunel", "--duration", "0.6",
                                  "-n", "1", "--workers", "1", "--out", tmp_path / "bank"])
    assert "altered after it was built" in err
    assert not marker.exists()


@pytest.mark.parametrize("change, message", [
    (lambda d: (d / "static_arrays" / "extra").write_bytes(b"\0" * 8), "other files"),
    (lambda d: (d / "automind_checksums.json").unlink(), "no readable checksum record"),
    (lambda d: os.chmod(d / "main", 0o777), "world-writable"),
    (lambda d: (d / "automind_run_args.json").write_text("{}"), "altered"),
])
def test_other_cache_tampering(brunel, private_cache, change, message):
    from automind.simulators.engine import CompiledModel

    (private_cache / "static_arrays").mkdir(exist_ok=True)
    change(private_cache)
    with pytest.raises(UserError, match=message):
        CompiledModel.for_spec(brunel.spec)
