"""Reading banks: filters, feature sets, the streaming torch Dataset, and CSV import."""

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch.utils.data import DataLoader

from automind.bank import Bank, BankError
from automind.bank.dataset import BankDataset
from automind.bank.importer import import_table, map_parameter
from automind.bank.store import commit_shard
from automind.io import write_json
from automind.prior import Prior


def make_bank(path, rows=1000, per_shard=100, dim_x=5):
    """A bank whose features are a known function of θ: x = [θ0, θ1, θ0 + θ1, index, 1]."""
    prior = Prior.load("brunel")
    for sub in ("shards", "manifest", "features"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    write_json(path / "bank.json", {
        "format": "automind-bank", "version": 1, "seed": 0, "created": "now", "chunk_size": per_shard,
        "keep_spikes": False, "prior": prior.to_dict(), "simulator": {"name": "test"},
        "versions": {}, "feature_sets": {"toy": {"version": "1", "names": ["a", "b", "sum", "i", "one"]}}})
    theta = prior.sample_indexed(0, range(rows))
    statuses = np.array(["ok", "silent", "ok", "runaway"])[np.arange(rows) % 4]
    for chunk, start in enumerate(range(0, rows, per_shard)):
        idx = np.arange(start, min(rows, start + per_shard))
        t = theta[idx]
        x = np.column_stack([t[:, 0], t[:, 1], t.sum(1), idx, np.ones(len(idx))])
        table = pa.table({"index": pa.array(idx), "seed": pa.array(idx), "status": pa.array(statuses[idx]),
                          "theta": pa.FixedSizeListArray.from_arrays(pa.array(t.ravel()), 2)})
        commit_shard(path, chunk, table, features={"toy": ("1", x)})
    return theta, statuses


def test_arrays_with_filters(tmp_path):
    theta, statuses = make_bank(tmp_path)
    bank = Bank(tmp_path)
    data = bank.arrays(features="toy", status="ok", index_range=(100, 300))
    expected = np.array([i for i in range(100, 300) if statuses[i] == "ok"])
    np.testing.assert_array_equal(data["index"], expected)
    np.testing.assert_allclose(data["theta"], theta[expected])
    np.testing.assert_allclose(data["x"][:, 2], theta[expected].sum(1), rtol=1e-6)
    assert set(data["status"]) == {"ok"}
    everything = bank.arrays(status=["silent", "runaway"])
    assert len(everything["index"]) == 500 and everything["x"] is None
    with pytest.raises(BankError, match="no feature set 'psd'"):
        bank.arrays(features="psd")


def test_streaming_dataset_visits_every_row_once_per_epoch_shuffled(tmp_path):
    theta, statuses = make_bank(tmp_path)
    ds = BankDataset(tmp_path, features="toy", status=None, batch_size=64, buffer_shards=2, seed=1)
    seen = []
    for t, x in DataLoader(ds, batch_size=None):
        assert t.dtype == torch.float32 and x.shape[1] == 5
        np.testing.assert_allclose(x[:, 2].numpy(), t.sum(1).numpy(), rtol=1e-5)  # rows stay paired
        seen.extend(x[:, 3].int().tolist())
    assert sorted(seen) == list(range(1000))
    assert seen != sorted(seen)  # shuffled across shards
    ds.set_epoch(1)
    second = [int(v) for _, x in DataLoader(ds, batch_size=None) for v in x[:, 3]]
    assert sorted(second) == list(range(1000)) and second != seen


def test_streaming_with_workers_splits_shards(tmp_path):
    make_bank(tmp_path)
    ds = BankDataset(tmp_path, features="toy", status="ok", batch_size=50)
    seen = [int(v) for _, x in DataLoader(ds, batch_size=None, num_workers=2) for v in x[:, 3]]
    assert sorted(seen) == [i for i in range(1000) if i % 4 in (0, 2)]


def test_parameter_name_mapping():
    assert map_parameter("params_net.p_e2e") == "p_e2e"
    assert map_parameter("params_Epop.C") == "E.C"
    assert map_parameter("params_Ipop.Q_ge") == "I.Q_ge"
    assert map_parameter("burst_num") is None


def test_import_published_summary_table(tmp_path):
    prior = Prior.load("mk1")
    theta = prior.sample(50, seed=2)
    group = {"": "params_net.", "E.": "params_Epop.", "I.": "params_Ipop."}
    columns = {}
    for k, name in enumerate(prior.names):
        prefix = name[:2] if name[:2] in ("E.", "I.") else ""
        columns[group[prefix] + name[len(prefix):]] = theta[:, k]
    columns["params_settings.sim_time"] = np.full(50, 200.0)
    columns["isi_mean"] = theta[:, 0] * 2
    columns["burst_num"] = np.where(np.arange(50) % 5 == 0, np.nan, 3.0)
    theta_bad = theta.copy()
    columns_bad = dict(columns)
    columns_bad["params_net.p_e2e"] = np.where(np.arange(50) == 7, 0.5, theta_bad[:, 1])  # outside
    csv = tmp_path / "summary.csv"
    pa.csv.write_csv(pa.table(columns_bad), csv)
    report = import_table(csv, tmp_path / "bank", prior, rows_per_shard=20, progress=False)
    assert report["imported"] == 49 and report["outside_prior"] == 1
    assert report["ignored_columns"] == ["params_settings.sim_time"]
    data = Bank(tmp_path / "bank").arrays(features="imported")
    keep = np.arange(50) != 7
    np.testing.assert_allclose(data["theta"], theta[keep])
    names = Bank(tmp_path / "bank").feature_sets["imported"]["names"]
    assert names == ["isi_mean", "burst_num"]
    np.testing.assert_allclose(data["x"][:, 0], theta[keep, 0] * 2, rtol=1e-6)
    assert np.isnan(data["x"][:, 1]).sum() == 10  # missing stays missing


def test_import_needs_every_parameter(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("params_net.p_e2e,x\n0.05,1\n")
    from automind.errors import UserError

    with pytest.raises(UserError, match="no column for prior parameter"):
        import_table(csv, tmp_path / "bank", Prior.load("mk1"), progress=False)
