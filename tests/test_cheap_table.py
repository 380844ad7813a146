"""The table: multilinear lookup against Siegert off the grid, the Siegert tail and the
deterministic extension beyond the m axis, storage checks (checksums, key, missing table)."""

import json

import numpy as np
import pytest

from automind.cheap import analytic
from automind.cheap.grid import Grid
from automind.cheap.moments import Inputs
from automind.cheap.table import Table, save_table
from automind.errors import UserError

LIF_SLICE = Grid(m=Grid.full().m, r=Grid.full().r, delta=(0.0,), ell=(0.0,), rho=Grid.full().rho,
                 kappa=(0.0, 0.03, 0.1, 0.3, 1.0))


@pytest.fixture(scope="module")
def siegert_table(tmp_path_factory):
    """A table whose nodes hold the exact (coloured) Siegert rates: isolates the lookup."""
    nodes = LIF_SLICE.nodes()
    rate = analytic.siegert(nodes["m"], nodes["r"], nodes["rho"], nodes["kappa"])
    n = len(rate)
    folder = save_table(tmp_path_factory.mktemp("table") / "exact", LIF_SLICE, rate, np.ones(n),
                        np.full(n, 1e-3), np.full(n, 1e6), {"test": "exact siegert"})
    return Table(folder)


def _inputs(m, r, rho, kappa=0.0):
    m, r, rho, kappa = np.broadcast_arrays(*(np.asarray(v, float) for v in (m, r, rho, kappa)))
    zero = np.zeros(m.shape)
    return Inputs(m, r, zero, zero, rho, kappa, np.zeros(m.shape, bool))


def test_off_grid_lookup_within_3_percent_of_siegert(siegert_table):
    rng = np.random.default_rng(0)
    m, r, rho = rng.uniform(-5.5, 5.5, 4000), np.exp(rng.uniform(np.log(0.6), np.log(90), 4000)), \
        np.exp(rng.uniform(np.log(0.04), np.log(25), 4000))
    exact = analytic.siegert(m, r, rho)
    keep = exact > 1e-3 / 1.0  # spec: ν τ > 1e-3
    log_rate, _, extrapolated = siegert_table.lookup(_inputs(m, r, rho))
    err = np.abs(10 ** log_rate[keep] / exact[keep] - 1)
    assert not extrapolated[keep].any()
    # measured: median 0.3 %, 95th 2.8 %, max 4 % (m step 0.5, r ratio 2.1 between nodes)
    assert np.quantile(err, 0.95) <= 0.03 and err.max() <= 0.05, np.quantile(err, [0.5, 0.95, 1])


def test_coloured_off_grid_within_5_percent(siegert_table):
    rng = np.random.default_rng(1)
    m, kappa = rng.uniform(-3, 4, 2000), rng.uniform(0.03, 0.3, 2000)
    exact = analytic.siegert(m, 4.0, 0.5, kappa)
    log_rate, _, _ = siegert_table.lookup(_inputs(m, 4.0, 0.5, kappa))
    assert np.quantile(np.abs(10 ** log_rate / exact - 1), 0.95) <= 0.05


def test_beyond_the_m_axis_is_extrapolated_and_flagged(siegert_table):
    m = np.array([-9.0, -15.0, 8.0, 20.0])
    log_rate, cv, extrapolated = siegert_table.lookup(_inputs(m, 5.0, 0.2))
    assert extrapolated.all()
    # below: the Siegert tail ratio is exact for a Siegert table; above: the deterministic ISI
    assert 10 ** log_rate[:2] == pytest.approx(analytic.siegert(m[:2], 5.0, 0.2), rel=1e-6)
    ratio = 10 ** log_rate[2:] / analytic.deterministic_rate(m[2:], 5.0, 0.0, 0.0, 0.2)
    assert ratio == pytest.approx(ratio[0], rel=1e-9) and abs(ratio[0] - 1) < 0.05
    assert np.all(cv[:2] == 1.0)


def test_noise_free_inputs_use_the_isi_formula(siegert_table):
    inputs = _inputs([1.5, -0.5], 1.0, 0.1)
    inputs.deterministic[:] = True
    log_rate, cv, extrapolated = siegert_table.lookup(inputs)
    assert 10 ** log_rate[0] == pytest.approx(1 / (0.1 + np.log(2.5 / 1.5)))
    assert log_rate[1] == -np.inf and extrapolated.all() and np.all(cv == 0)


def test_corrupt_or_mismatched_table_is_refused(siegert_table, tmp_path):
    import shutil

    copy = tmp_path / siegert_table.folder.name
    shutil.copytree(siegert_table.folder, copy)
    data = bytearray((copy / "cv.npy").read_bytes())
    data[-1] ^= 1
    (copy / "cv.npy").write_bytes(bytes(data))
    with pytest.raises(UserError, match=rf"key {siegert_table.meta['key_sha256']}.*cv.npy.*sha256"):
        Table(copy)
    meta = json.loads((siegert_table.folder / "table.json").read_text())
    meta["key"]["seed"] = 99
    shutil.copytree(siegert_table.folder, tmp_path / "edited")
    (tmp_path / "edited" / "table.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="key does not match"):
        Table(tmp_path / "edited")
    with pytest.raises(UserError, match="automind cheap build"):
        Table.find(root=tmp_path / "nothing")


def test_quasi_static_limit_is_the_averaged_noise_free_rate():
    from scipy.integrate import quad
    from scipy.stats import norm

    for m in (-6.0, -3.0, 0.0, 3.0):
        def integrand(mu):
            return norm.pdf(mu - m) / (0.95 + np.log1p(12.0 / mu))
        exact = quad(integrand, 0, 40, points=[1e-6, 1e-3, max(m, 0.01)], limit=500)[0]
        assert analytic.log10_quasi_static(m, 12.0, 0.95) == pytest.approx(np.log10(exact), abs=0.01)
    assert np.isfinite(analytic.log10_quasi_static(-60.0, 3.0, 0.1))  # ~ -785, not -inf


def test_tail_is_siegert_for_white_noise_and_decays_like_a_gaussian_for_slow_noise():
    m = np.array([-20.0, -10.0, -3.0, 0.0])
    assert analytic.log10_tail(m, 4.0, 0.5, 0.0) == pytest.approx(analytic.log10_siegert(m, 4.0, 0.5))
    gaussian = (20.0 ** 2 - 10.0 ** 2) / (2 * np.log(10))  # decades from m = -10 to -20
    slow = analytic.log10_tail(m, 4.0, 0.5, 100.0)
    fb = analytic.log10_siegert(m, 4.0, 0.5, 100.0)
    assert slow[1] - slow[0] >= 0.95 * gaussian and fb[1] - fb[0] <= 0.05 * gaussian


def test_a_stored_table_is_read_with_the_current_tail(tmp_path):
    """Tables built before TAIL_VERSION 2 stored another tail: loading redraws it from the
    anchor (the lowest well-measured node of each line) and the key names the version."""
    import hashlib

    from automind.cheap.table import FLAG_TAIL, TAIL_VERSION

    grid = Grid(m=(-4.0, -3.0, -2.0, -1.0, 0.0), r=(3.0,), delta=(0.0,), ell=(0.0,), rho=(0.1,),
                kappa=(10.0,))
    rate = 10 ** analytic.log10_quasi_static(np.array(grid.m), 3.0, 0.1)
    count = np.array([0, 3, 500, 2000, 6000.0])
    folder = save_table(tmp_path / "t", grid, rate, np.ones(5), np.full(5, 0.01), count, {})
    stored = np.load(folder / "log10_rate.npy")
    assert np.all(np.load(folder / "flags.npy").ravel()[:2] & FLAG_TAIL)
    old = stored.copy()
    old.ravel()[:2] = -0.5  # a flat old-style tail, as Fourcaud–Brunel drew it at large κ
    np.save(folder / "log10_rate.npy", old)
    meta = json.loads((folder / "table.json").read_text())
    meta["arrays"]["log10_rate"]["sha256"] = hashlib.sha256(
        (folder / "log10_rate.npy").read_bytes()).hexdigest()
    (folder / "table.json").write_text(json.dumps(meta))
    table = Table(folder)
    assert table.key.endswith(f".tail{TAIL_VERSION}")
    np.testing.assert_allclose(table.log10_rate.ravel(), stored.ravel(), atol=1e-6)
    tail = analytic.log10_tail(np.array(grid.m), 3.0, 0.1, 10.0)
    np.testing.assert_allclose(table.log10_rate.ravel()[:2],
                               stored.ravel()[2] + tail[:2] - tail[2], atol=1e-5)


def test_low_count_nodes_are_filled_with_the_tail_and_m_is_monotone():
    from automind.cheap.table import FLAG_MONOTONE, FLAG_TAIL, finish

    grid = Grid(m=(-4.0, -3.0, -2.0, -1.0, 0.0), r=(3.0,), delta=(0.0,), ell=(0.0,), rho=(0.1,),
                kappa=(0.0,))
    exact = analytic.siegert(np.array(grid.m), 3.0, 0.1)
    count = np.array([0, 3, 500, 2000, 6000.0])
    noisy = exact * np.array([1, 1, 1, 2.5, 1.0])  # node 3 above node 4: a dip, made monotone
    arrays, summary = finish(grid, noisy, np.ones(5), np.full(5, 0.01), count)
    rate = 10 ** arrays["log10_rate"].ravel()
    assert rate[:2] == pytest.approx(exact[:2], rel=1e-5)  # tail anchored at m = -2 (exact there)
    assert np.all(arrays["flags"].ravel()[:2] & FLAG_TAIL) and summary["tail_filled"] == 2
    assert np.all(np.diff(arrays["log10_rate"].ravel()) >= 0) and summary["monotone_fixed"] == 1
    assert arrays["flags"].ravel()[4] & FLAG_MONOTONE
