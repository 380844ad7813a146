"""Shared fixtures: compiled simulators are cached on disk (AUTOMIND_CACHE or ~/.cache/automind),
so a structure compiles once per machine, not once per test."""

from pathlib import Path

import numpy as np
import pytest

from automind.simulators import Simulator, SimulatorSpec

#: An MK1 parameter set (SI units) with no connections and no drive; tests change what they need.
QUIET_MK1 = {
    "exc_prop": 0.8, "p_e2e": 0.0, "p_e2i": 0.0, "p_i2e": 0.0, "p_i2i": 0.0, "R_pe2e": 1.0,
    "R_Qe2e": 1.0, "p_igniters": 1.0, "n_clusters": 0.0, "E.C": 200e-12, "E.g_L": 10e-9,
    "E.v_rest": -65e-3, "E.v_thresh": -50e-3, "E.v_reset": -58e-3, "E.t_refrac": 2e-3,
    "E.delta_T": 2e-3, "E.a": 2e-9, "E.b": 50e-12, "E.tau_w": 100e-3, "E.E_gi": -80e-3,
    "E.Q_ge": 1e-9, "E.Q_gi": 1e-9, "E.tau_ge": 5e-3, "E.tau_gi": 5e-3, "E.poisson_rate": 0.0,
    "I.Q_ge": 1e-9, "I.Q_gi": 1e-9, "I.poisson_rate": 0.0,
}


#: files that take a minute or more, heaviest first: collected before the rest, so that the
#: parallel workers of `make test` (xdist, --dist loadfile) start them early instead of
#: ending the run on one of them while the other workers idle
HEAVY_FIRST = (
    "test_fit.py", "test_study_culture_development.py", "test_inference_brunel.py",
    "test_study_mk1_targets.py", "test_study_mk1_targets_300.py", "test_inference.py",
    "test_study_probe_areas.py",
    "test_invariance_cli.py", "test_study_neuropixels_areas.py", "test_demo_mk1.py",
    "test_study_organoid_development.py", "test_columns_tasks.py", "test_study_mk1_recovery.py",
    "test_demo.py", "test_fit_gradient_weights.py", "test_fit_gradient.py", "test_calibration.py",
    "test_study_rsnn_vs_npe.py", "test_study_brunel_phase.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: k for k, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


@pytest.fixture(scope="session")
def mk1_small():
    """MK1 at N = 300, the published dt, recording g_e of the first 20 neurons."""
    spec = SimulatorSpec.load("mk1").with_overrides(N=300, duration=1.0, record_state=("g_e",),
                                                    state_units=20)
    return Simulator(spec)


@pytest.fixture(scope="session")
def brunel():
    return Simulator(SimulatorSpec.load("brunel").with_overrides(duration=0.6))


def quiet_mk1(**changes) -> dict:
    return QUIET_MK1 | changes


def synchrony_chi(result, t_from: float, bin_size: float = 1e-3) -> float:
    """Golomb's synchrony χ on binned E spike counts after ``t_from``: sqrt(var of the population
    mean / mean of single-unit variances); 1 = fully synchronous, ~1/sqrt(N) = asynchronous."""
    times, ids = result.spikes["E"]
    keep = times >= t_from
    n_bins = int(round((result.t_end - t_from) / bin_size))
    counts = np.zeros((result.n_units["E"], n_bins))
    bins = np.minimum(((times[keep] - t_from) / bin_size).astype(int), n_bins - 1)
    np.add.at(counts, (ids[keep], bins), 1)
    return float(np.sqrt(counts.mean(0).var() / counts.var(1).mean()))


def mean_isi_cv(result, t_from: float, min_spikes: int = 5) -> float:
    times, ids = result.spikes["E"]
    keep = times >= t_from
    times, ids = times[keep], ids[keep]
    order = np.lexsort((times, ids))
    times, ids = times[order], ids[order]
    cvs = []
    for unit in np.unique(ids):
        isi = np.diff(times[ids == unit])
        if len(isi) >= min_spikes:
            cvs.append(isi.std() / isi.mean())
    return float(np.mean(cvs))


def built_cheap_table():
    """The cheap model's built table from the cache, or skip the test (CI builds none)."""
    from automind.cheap.table import default_table
    from automind.errors import UserError

    try:
        return default_table()
    except UserError as error:
        pytest.skip(f"no built cheap table: {error}")


def small_brunel_spec(**changes) -> SimulatorSpec:
    """The reduced Brunel network of the inference tests: N = 250, C_E = 100, 0.5 s runs
    (~0.03 s each), 50 ms transient dropped."""
    from automind.simulators.brunel import reduced_spec

    return reduced_spec(250, 100, 0.5, 0.05, **changes)


def write_small_brunel(path: Path, duration: str = "0.5 s", t_analysis_start: str = "0.05 s") -> Path:
    """``small_brunel_spec`` as a spec file at ``path`` (the CLI takes a name or a path)."""
    text = (Path(__file__).resolve().parents[1] / "simulators" / "brunel.toml").read_text()
    for old, new in (("N = 2500", "N = 250"), ("C_E = 1000", "C_E = 100"),
                     ('duration = "1.2 s"', f'duration = "{duration}"'),
                     ('t_analysis_start = "0.2 s"', f't_analysis_start = "{t_analysis_start}"')):
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    return path


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (small problems: threads only add contention)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
