"""Banks: crash-safe resume, identical banks across engines, damage detection, concurrent writers."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import write_small_brunel

from automind.bank import Bank, BankError, extend
from automind.bank import store
from automind.prior import Prior
from automind.simulators import SimulatorSpec

DURATION = 0.15


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    """Brunel at N = 250 (a few ms per run): banks are about storage, not the network."""
    return write_small_brunel(tmp_path_factory.mktemp("spec") / "small_brunel.toml")


@pytest.fixture(scope="module")
def CMD(spec_file):
    return [sys.executable, "-m", "automind.cli", "simulate", "--simulator", str(spec_file),
            "--seed", "11", "--duration", str(DURATION), "--chunk-size", "3"]


@pytest.fixture(scope="module")
def setup(spec_file):
    return SimulatorSpec.load(spec_file).with_overrides(duration=DURATION), Prior.load("brunel")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, setup):
    """A bank of 12 simulations made in one go, to compare every other route against."""
    path = tmp_path_factory.mktemp("ref") / "bank"
    extend(path, *setup, n=12, seed=11, workers=1, chunk_size=3, progress=False)
    return Bank(path).table()


def alive(pids) -> list:
    """The processes among ``pids`` still running (zombies count as gone)."""
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}")
            and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]]


def assert_same_tables(a, b):
    assert np.array_equal(a["index"], b["index"])
    for key in ("seed", "status", "theta", "rate_E", "rate_I", "t_end"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_reference_bank_is_complete_and_reproducible(reference):
    assert list(reference["index"]) == list(range(12))
    assert len(set(reference["seed"])) == 12
    prior = Prior.load("brunel")
    np.testing.assert_array_equal(reference["theta"], prior.sample_indexed(11, range(12)))


def test_extend_adds_only_missing_simulations(tmp_path, setup, reference):
    path = tmp_path / "bank"
    first = extend(path, *setup, n=5, seed=11, chunk_size=3, progress=False)
    again = extend(path, *setup, n=5, seed=11, progress=False)
    more = extend(path, *setup, n=12, seed=11, workers=2, progress=False)
    assert (first["added"], again["added"], more["added"]) == (5, 0, 7)
    assert_same_tables(Bank(path).table(), reference)


def committed_shards(path) -> int:
    try:
        return len(Bank(path).records)
    except (BankError, OSError, ValueError):
        return 0  # not created yet


def test_kill_9_at_random_moments_then_resume(tmp_path, reference, CMD):
    """Kill the driver and its workers mid-bank four times, then resume to the reference bank.

    The kills wait for the bank to grow by a random number of shards and then a random moment, so
    every attempt interrupts real work however fast the machine is (a bank too long to finish).
    """
    path = tmp_path / "bank"
    rng = random.Random(5)
    for _ in range(4):
        before = committed_shards(path)
        grow = rng.randint(1, 3)
        proc = subprocess.Popen(CMD + ["-n", "3000", "--out", str(path), "--workers", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 120
        while committed_shards(path) < before + grow and time.monotonic() < deadline:
            assert proc.poll() is None, "the bank of 3000 should still be running"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.1))
        assert proc.poll() is None, "the bank of 3000 should still be running"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-write or not
        proc.wait()
        bank = Bank(path)  # always readable: only committed shards are visible
        for record in bank.records:
            bank.read_shard(record)
        assert len(bank.records) >= before + grow
    done = subprocess.run(CMD + ["-n", "12", "--out", str(path), "--json"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert_same_tables(Bank(path).table(index_range=(0, 12)), reference)
    extra = Bank(path).table(index_range=(12, 3000))  # what the killed runs committed beyond 12
    np.testing.assert_array_equal(extra["theta"],
                                  Prior.load("brunel").sample_indexed(11, extra["index"]))


def test_dask_local_cluster_gives_the_same_bank(tmp_path, setup, reference):
    path = tmp_path / "bank"
    extend(path, *setup, n=12, seed=11, dask="local:2", chunk_size=3, progress=False)
    assert_same_tables(Bank(path).table(), reference)


def test_sigterm_stops_the_driver_and_its_workers_and_the_bank_resumes(tmp_path, reference, CMD,
                                                                      setup):
    path = tmp_path / "bank"
    proc = subprocess.Popen(CMD + ["-n", "3000", "--out", str(path), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (path.exists() and any((path / "shards").glob("*"))):
        time.sleep(0.2)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert workers, "the driver should have worker processes"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    time.sleep(1)
    assert alive(workers) == [], "worker processes outlived the driver"
    extend(path, *setup, n=12, seed=11, progress=False)
    assert_same_tables(Bank(path).table(index_range=(0, 12)), reference)


def test_killed_dask_worker_does_not_lose_simulations(tmp_path, setup, reference):
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    pids = list(client.run(os.getpid).values())
    killed = []

    def kill_one_worker(chunk, results):
        if not killed:
            os.kill(pids[0], signal.SIGKILL)  # its running chunk is rescheduled by Dask
            killed.append(chunk)

    try:
        extend(tmp_path / "bank", *setup, n=12, seed=11, dask=cluster.scheduler_address,
               chunk_size=3, progress=False, on_commit=kill_one_worker)
    finally:
        client.close()
        cluster.close()
    assert killed
    assert_same_tables(Bank(tmp_path / "bank").table(), reference)


def test_successive_banks_reuse_warm_workers_and_a_failure_stops_them(tmp_path, setup):
    from automind.simulators import execution

    extend(tmp_path / "a", *setup, n=6, seed=1, chunk_size=3, workers=2, progress=False)
    pool = execution._POOLS[2]
    workers = set(pool._processes)
    extend(tmp_path / "b", *setup, n=6, seed=2, chunk_size=3, workers=2, progress=False)
    assert execution._POOLS[2] is pool and set(pool._processes) == workers

    def fail(chunk, results):
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        extend(tmp_path / "c", *setup, n=6, seed=3, chunk_size=3, workers=2, progress=False,
               on_commit=fail)
    assert 2 not in execution._POOLS
    time.sleep(0.5)
    assert alive(workers) == []


def test_two_writers_at_once_do_not_collide(tmp_path, reference, CMD):
    path = tmp_path / "bank"
    procs = [subprocess.Popen(CMD + ["-n", "12", "--out", str(path), "--workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    bank = Bank(path)
    assert bank.problems == []
    assert_same_tables(bank.table(), reference)
    assert sum(len(r.indices) for r in bank.records) == 12  # nothing simulated twice


# ---- damage: detected, reported, never silently used ---------------------------------------------

@pytest.fixture
def small_bank(tmp_path, setup):
    path = tmp_path / "bank"
    extend(path, *setup, n=9, seed=11, chunk_size=3, workers=1, progress=False)
    return path


def test_truncated_shard_is_reported_and_resimulated(small_bank, setup, reference):
    bank = Bank(small_bank)
    victim = bank.records[1]
    shard = small_bank / "shards" / f"{victim.name}.parquet"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(BankError, match="corrupt"):
        Bank(small_bank).table()
    report = extend(small_bank, *setup, n=9, seed=11, progress=False)
    assert report["added"] == 3 and any("truncated" in note for note in report["notes"])
    assert_same_tables(Bank(small_bank).table(), {k: v[:9] for k, v in reference.items()})


def test_garbage_of_the_right_size_fails_the_checksum(small_bank):
    record = Bank(small_bank).records[0]
    shard = small_bank / "shards" / f"{record.name}.parquet"
    shard.write_bytes(os.urandom(record.shard_bytes))
    with pytest.raises(BankError, match="checksum"):
        Bank(small_bank).table()


def test_missing_manifest_record_and_foreign_files_are_reported(small_bank, setup):
    bank = Bank(small_bank)
    (small_bank / "manifest" / f"{bank.records[0].name}.json").unlink()
    (small_bank / "notes.txt").write_text("hello")
    (small_bank / "shards" / "random.parquet").write_bytes(b"junk")
    bank = Bank(small_bank)
    problems = " | ".join(bank.problems)
    assert "no manifest record" in problems and "foreign file" in problems and "random" in problems
    assert list(bank.table()["index"]) == list(range(3, 9))  # the orphan is not used
    report = extend(small_bank, *setup, n=9, seed=11, progress=False)
    assert report["added"] == 3
    assert list(Bank(small_bank).table()["index"]) == list(range(9))


def test_refuses_to_mix_setups(small_bank, setup):
    spec, prior = setup
    with pytest.raises(BankError, match="different simulator setup"):
        extend(small_bank, spec.with_overrides(duration=0.2), prior, n=9, seed=11, progress=False)
    other_prior = Prior.from_dict({"name": "brunel", "parameter": [
        {"name": "g", "low": 0, "high": 6}, {"name": "nu_ext", "low": 0, "high": 4}]})
    with pytest.raises(BankError, match="different prior"):
        extend(small_bank, spec, other_prior, n=9, seed=11, progress=False)
    with pytest.raises(BankError, match="--seed 11"):
        extend(small_bank, spec, prior, n=9, seed=12, progress=False)


def test_unwritable_path(tmp_path, setup):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(BankError, match="cannot create bank folder"):
        extend(blocker / "bank", *setup, n=1, seed=1, progress=False)


def test_full_disk_keeps_what_was_written(small_bank, setup, monkeypatch):
    real = store.atomic_write_bytes
    calls = []

    def fill_up(path, data):
        calls.append(path)
        if len(calls) > 2:  # the first shard (table + record) commits, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr("automind.bank.store.atomic_write_bytes", fill_up)  # shard files
    monkeypatch.setattr("automind.io.atomic_write_bytes", fill_up)  # JSON records
    with pytest.raises(BankError, match="disk is full.*intact"):
        extend(small_bank, *setup, n=18, seed=11, workers=1, progress=False)
    monkeypatch.undo()
    bank = Bank(small_bank)
    assert len(bank.table()["index"]) == 12 and bank.problems == []


def test_bank_info_cli_reports_problems(small_bank, capsys):
    from automind.cli import main

    (small_bank / "stray.bin").write_bytes(b"x")
    assert main(["bank", "info", str(small_bank), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["total"] == 9 and sum(info["by_status"].values()) == 9
    assert any("stray.bin" in p for p in info["problems"])
    assert main(["bank", "info", str(small_bank / "nope")]) == 2
