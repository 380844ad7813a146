"""Damaged-input fuzzing in the fast suite: every input format, truncations and byte flips of
real small files, fixed seed, each read under a time limit in a watched worker process
(tests/fuzz_formats.py; the long run is benchmarks/fuzz.py)."""

import pytest

from fuzz_formats import FAILURES, FORMATS, Runner, failures, fuzz

CASES = 12  # per format: ~120 damaged inputs in ~30 s


@pytest.fixture(scope="module")
def runner():
    runner = Runner(time_limit=20.0)
    yield runner
    runner.close()


def test_every_format_survives_damage(runner, tmp_path):
    report = fuzz(list(FORMATS), CASES, seed=2026, workdir=tmp_path, runner=runner)
    assert not failures(report), failures(report)
    for fmt, result in report.items():
        assert sum(result["outcomes"].values()) == CASES
        # the damage is real: most cases are refused or read differently, not ignored
        assert result["outcomes"].get("read", 0) < CASES, fmt


def test_the_harness_catches_crashes_hangs_and_writes(tmp_path):
    """Readers that crash, hang or write are reported as such (the fuzz test can fail)."""
    runner = Runner(time_limit=1.5)
    try:
        report = fuzz(["naive_npz", "sleepy", "scribbler"], 3, seed=1, workdir=tmp_path,
                      runner=runner)
    finally:
        runner.close()
    kinds = {fmt: {k.split(":")[0] for k in r["outcomes"]} for fmt, r in report.items()}
    assert "crash" in kinds["naive_npz"]
    assert kinds["sleepy"] == {"hang"}
    assert kinds["scribbler"] == {"wrote"}
    assert set(FAILURES) >= {"crash", "hang", "wrote"}
