"""The misspecification check: per-feature ranges name what is out, sbi's MMD test sees
unusual combinations, on references with known distributions."""

import numpy as np
import pytest

from automind.inference.misspecification import check_misspecification

NAMES = ["rate", "cv", "corr", "burst_rate", "psd"]
LOG10 = [True, False, False, False, True]


@pytest.fixture(scope="module")
def reference():
    """2000 simulations: log10 rate ~ N(0.5, 0.2), cv ~ N(1, 0.1), corr = cv - 1 + noise
    (tightly tied to cv), burst_rate ~ N(0.3, 0.05), log10 psd ~ N(-2, 0.3)."""
    rng = np.random.default_rng(0)
    n = 2000
    cv = rng.normal(1.0, 0.1, n)
    return np.column_stack([10 ** rng.normal(0.5, 0.2, n), cv, cv - 1 + rng.normal(0, 0.01, n),
                            rng.normal(0.3, 0.05, n), 10 ** rng.normal(-2, 0.3, n)])


def test_a_typical_target_passes(reference):
    report = check_misspecification([10 ** 0.5, 1.0, 0.0, 0.3, 0.01], reference, NAMES, LOG10)
    assert report.out_of_range == [] and report.p_value > 0.05 and not report.misspecified
    assert report.message() == "" and report.n_reference == 2000


def test_out_of_range_features_are_named_in_order(reference):
    # burst_rate 10 sd above, rate (log10) 4 sd below; the others typical
    target = [10 ** (0.5 - 0.8), 1.0, 0.0, 0.8, 0.01]
    report = check_misspecification(target, reference, NAMES, LOG10)
    assert [o["name"] for o in report.out_of_range] == ["burst_rate", "rate"]
    assert report.out_of_range[0]["z"] == pytest.approx(10, rel=0.1)
    assert report.out_of_range[1]["value"] == pytest.approx(-0.3)    # reported in log10
    assert report.p_value < 0.01 and report.misspecified
    assert report.message().startswith("the target may be outside what the model produces: "
                                       "2 of 5 features outside the central 99 %")
    only = check_misspecification(target, reference, NAMES, LOG10, columns=[1, 2, 4])
    assert only.out_of_range == [] and only.n_features == 3        # the posterior's columns


def test_an_unusual_combination_fails_jointly(reference):
    # cv 2 sd high but corr 2 sd low: each inside its range, together never simulated
    report = check_misspecification([10 ** 0.5, 1.2, -0.2, 0.3, 0.01], reference, NAMES, LOG10)
    assert report.out_of_range == []
    assert report.p_value < 0.01 and report.misspecified and "jointly atypical" in report.message()


def test_missing_target_values_are_out_of_range(reference):
    report = check_misspecification([10 ** 0.5, 1.0, np.nan, 0.3, 0.01], reference, NAMES, LOG10)
    assert [o["name"] for o in report.out_of_range] == ["corr"]
    assert report.out_of_range[0]["value"] is None and report.p_value is None
    assert "corr (NaN vs" in report.message()


def test_same_seed_same_p_value(reference):
    target = [10 ** 0.9, 1.1, 0.1, 0.35, 0.02]
    first, again = (check_misspecification(target, reference, NAMES, LOG10, seed=3)
                    for _ in range(2))
    assert first.p_value == again.p_value


def test_joint_p_values_are_calibrated_for_targets_from_the_model():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(400, 4)) @ np.array([[1, 0.8, 0, 0], [0, 0.6, 0, 0],
                                                      [0, 0, 1, 0], [0, 0, 0, 2.0]])
    targets = rng.normal(size=(300, 4)) @ np.array([[1, 0.8, 0, 0], [0, 0.6, 0, 0],
                                                    [0, 0, 1, 0], [0, 0, 0, 2.0]])
    p = np.array([check_misspecification(t, reference, list("abcd"), quantile=0.0).p_value
                  for t in targets])
    assert 0.05 <= np.mean(p <= 0.1) <= 0.15                     # uniform under the null
    assert 0.4 <= np.mean(p <= 0.5) <= 0.6


def test_checked_against_the_bank_a_posterior_was_trained_on(tmp_path):
    import json
    from types import SimpleNamespace

    import pyarrow as pa

    from automind.bank.store import commit_shard
    from automind.io import write_json
    from automind.inference.misspecification import write_report
    from automind.prior import Prior

    prior = Prior.from_dict({"name": "lg", "parameter": [{"name": "a", "low": -5, "high": 5}]})
    bank = tmp_path / "bank"
    for sub in ("shards", "manifest", "features"):
        (bank / sub).mkdir(parents=True)
    names = ["xa", "xb", "gap"]
    write_json(bank / "bank.json", {
        "format": "automind-bank", "version": 1, "seed": 0, "created": "", "chunk_size": 200,
        "keep_spikes": False, "prior": prior.to_dict(), "simulator": {"name": "synthetic"},
        "versions": {}, "feature_sets": {"obs": {"version": "1", "names": names,
                                                 "transforms": ["log10", "none", "none"]}}})
    rng = np.random.default_rng(0)
    x = np.column_stack([10 ** rng.normal(0, 0.1, 400), rng.normal(0, 1, 400), np.full(400, np.nan)])
    status = np.where(np.arange(400) % 4 == 3, "failed", "ok")
    x[status == "failed"] = np.nan
    for chunk in range(2):
        rows = np.arange(chunk * 200, chunk * 200 + 200)
        table = pa.table({"index": pa.array(rows), "seed": pa.array(rows),
                          "status": pa.array(status[rows]),
                          "theta": pa.FixedSizeListArray.from_arrays(pa.array(rows * 0.01), 1)})
        commit_shard(bank, chunk, table, features={"obs": ("1", x[rows])})
    posterior = SimpleNamespace(provenance={"bank": str(bank)}, config={"feature_columns": [0, 1]},
                                features={"set": "obs", "names": names,
                                          "transforms": ["log10", "none", "none"]})
    report = write_report(posterior, [100.0, 0.5, np.nan], tmp_path)   # xa = 10^2: 20 sd out
    assert report.n_reference == 300 and report.n_features == 2        # ok rows, used columns
    assert [o["name"] for o in report.out_of_range] == ["xa"]
    assert report.out_of_range[0]["value"] == pytest.approx(2.0)
    saved = json.loads((tmp_path / "misspecification.json").read_text())
    assert saved["misspecified"] and saved["out_of_range"][0]["name"] == "xa"
    posterior.provenance = {"bank": str(tmp_path / "gone")}
    assert write_report(posterior, [1.0, 0.5, np.nan], tmp_path / "other") is None


def _toy_bank(path, theta, x, names):
    import pyarrow as pa

    from automind.bank.store import commit_shard
    from automind.io import write_json
    from automind.prior import Prior

    prior = Prior.from_dict({"name": "toy", "parameter": [
        {"name": "a", "low": -5, "high": 5}, {"name": "b", "low": -5, "high": 5}]})
    for sub in ("shards", "manifest", "features"):
        (path / sub).mkdir(parents=True)
    write_json(path / "bank.json", {
        "format": "automind-bank", "version": 1, "seed": 0, "created": "", "chunk_size": len(x),
        "keep_spikes": False, "prior": prior.to_dict(), "simulator": {"name": "synthetic"},
        "versions": {}, "feature_sets": {"bursts": {"version": "3", "names": names,
                                                    "transforms": ["none"] * len(names)}}})
    rows = np.arange(len(x))
    table = pa.table({"index": pa.array(rows), "seed": pa.array(rows),
                      "status": pa.array(["ok"] * len(x)),
                      "theta": pa.FixedSizeListArray.from_arrays(pa.array(theta.ravel()), 2)})
    commit_shard(path, 0, table, features={"bursts": ("3", x)})


def test_infer_warns_with_the_out_of_range_features(tmp_path, capsys):
    import json

    from automind.cli import main
    from automind.features import get_feature_set
    from automind.inference.train import train_on_bank

    names = list(get_feature_set("bursts").names)
    rng = np.random.default_rng(0)
    theta = rng.uniform(-5, 5, (600, 2))
    x = np.column_stack([theta + 0.3 * rng.normal(size=theta.shape), rng.normal(size=(600, 6))])
    _toy_bank(tmp_path / "train", theta, x, names)
    train_on_bank(tmp_path / "train", "bursts", progress=False, max_epochs=2,
                  restriction=False).save(tmp_path / "post")
    targets = np.array([[1.0, 2.0, 0, 0, 0, 0, 0, 0],            # typical
                        [1.0, 40.0, 0, 0, 0, 0, 0, 0]])          # burst_interval_mean far out
    _toy_bank(tmp_path / "targets", np.zeros((2, 2)), targets, names)
    for index, warned in ((0, False), (1, True)):
        out = tmp_path / f"samples{index}"
        assert main(["infer", str(tmp_path / "post"), "--bank", str(tmp_path / "targets"),
                     "--index", str(index), "-n", "20", "--out", str(out), "--json"]) == 0
        captured = capsys.readouterr()
        summary = json.loads(captured.out.strip().splitlines()[-1])
        assert summary["misspecification"]["misspecified"] == warned
        assert ("warning: the target may be outside" in captured.err) == warned
        assert (out / "misspecification.json").is_file()
    assert "burst_interval_mean (40 vs" in captured.err
