"""fit_theta: gradient descent through TorchMK1 recovers a known drive rate; bad input refused."""

import numpy as np
import pytest

from automind.errors import UserError
from automind.features.sets import simulation_features
from automind.prior import Prior
from automind.rsnn.fit import best_window, fit_theta
from automind.rsnn.mk1 import TorchMK1
from automind.simulators import SimulatorSpec
from conftest import QUIET_MK1


def drive_prior() -> Prior:
    """E.poisson_rate free in [0.5, 5] Hz; everything else an uncoupled QUIET_MK1 constant."""
    constants = [{"name": k, "value": v} for k, v in QUIET_MK1.items() if k != "E.poisson_rate"]
    return Prior.from_dict({"name": "drive", "parameter": [
        {"name": "E.poisson_rate", "low": 0.5, "high": 5.0, "unit": "Hz"}], "constant": constants})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fit_recovers_the_drive_rate():
    prior = drive_prior()
    spec = SimulatorSpec.load("mk1").with_overrides(N=20, dt=5e-4, duration=0.25, t_analysis_start=0.05)
    truth = prior.to_simulator([3.0])
    runs = TorchMK1(spec).run_batch([truth] * 4, [101, 102, 103, 104])
    rates = [np.log10(simulation_features(r, ["spikes"], 0.05)["spikes"][0]) for r in runs]
    target, sigma = float(np.mean(rates)), 0.05
    result = fit_theta(spec, prior, {"rate_mean": target}, {"rate_mean": sigma}, [[1.8], [4.8]],
                       steps=30, lr=0.2, seed=3)
    assert result.status == ["ok", "ok"]
    assert np.all(np.abs(result.theta[:, 0] - 3.0) < 0.6), result.theta
    assert np.nanmean(result.loss[-5:]) < 0.2 * np.nanmean(result.loss[:2])
    # θ: the mean (in the fit's logit coordinates) of the iterates over the chosen window: start
    # 1 the last quarter; start 0 passed the truth at steps 6-8 (d² 0.02), overshot to 3.45 Hz
    # under Adam's momentum and stayed (d² ~3 > 2 × its best stretch's), so its best stretch
    assert list(result.window) == [5, 30 - 30 // 4]
    import torch

    from automind.inference.transforms import BoxToUnconstrained

    box, tail = BoxToUnconstrained.for_prior(prior), 30 // 4
    assert result.path.shape == (30, 2, 1) and np.allclose(result.path[0], [[1.8], [4.8]])
    for k in range(2):
        w = result.window[k]
        assert w == best_window(result.loss[:, k], tail)
        z = box.to_z(torch.as_tensor(result.path[w:w + tail, k])).mean(0, keepdim=True)
        np.testing.assert_allclose(result.theta[k], box.to_theta(z).numpy()[0], rtol=1e-7)


def test_best_window_is_the_last_stretch_unless_the_fit_climbed():
    """Descending, or converged and noisy (within 2× the lowest stretch, or d² below 2): the
    last window. A curve that climbs after step 3 (a surrogate gradient leading uphill) to
    over twice its lowest stretch: that stretch; NaN
    steps are skipped, ties go to the later window, a curve with no finite value (or shorter
    than a window) gives the last window."""
    assert best_window(np.arange(10.0, 0, -1), 3) == 7
    assert best_window(np.array([9.0, 2.0, 2.0, 2.0, 3.9, 3.9, 3.9]), 3) == 4  # within 2x
    assert best_window(np.array([9.0, 0.1, 0.1, 0.1, 1.9, 1.9, 1.9]), 3) == 4  # noise: d² < 2
    climbing = np.array([9.0, 5.0, 2.0, 1.0, 1.5, 4.0, 20.0, 30.0, 40.0, 50.0])
    assert best_window(climbing, 3) == 2
    assert best_window(np.array([5.0, np.nan, 1.0, 1.0, np.nan, 9.0, 9.0]), 2) == 3
    assert best_window(np.array([5.0, 1.0, 1.0, 5.0, 1.0, 1.0, 9.0, 9.0]), 2) == 4
    assert best_window(np.full(6, np.nan), 2) == 4
    assert best_window(np.ones(2), 4) == 0


def test_an_interrupted_fit_resumes_from_its_checkpoint_exactly(tmp_path):
    """Checkpoints every 4 steps; killed during step 9 (after the checkpoint of step 7) and run
    again, the fit equals the uninterrupted one: θ, loss curve and Adam's state carry over."""
    prior = drive_prior()
    spec = SimulatorSpec.load("mk1").with_overrides(N=20, dt=5e-4, duration=0.15, t_analysis_start=0.05)
    args = (spec, prior, {"rate_mean": 0.4}, {"rate_mean": 0.05}, [[1.8], [4.8]])
    options = dict(steps=12, lr=0.2, seed=3)
    whole = fit_theta(*args, **options)

    def killed(step, losses):
        if step == 9:
            raise KeyboardInterrupt

    file = tmp_path / "checkpoint.npz"
    with pytest.raises(KeyboardInterrupt):
        fit_theta(*args, **options, checkpoint=file, checkpoint_every=4, progress=killed)
    assert int(np.load(file)["step"]) == 7
    ran = []
    resumed = fit_theta(*args, **options, checkpoint=file, checkpoint_every=4,
                        progress=lambda step, losses: ran.append(step))
    assert ran == [8, 9, 10, 11]  # from the checkpoint on, not from the start
    np.testing.assert_array_equal(resumed.theta, whole.theta)
    np.testing.assert_array_equal(resumed.loss, whole.loss)
    with pytest.raises(UserError, match="checkpoint of another fit"):
        fit_theta(*args, **(options | {"steps": 20}), checkpoint=file)


def test_fit_refuses_bad_input():
    prior = drive_prior()
    spec = SimulatorSpec.load("mk1").with_overrides(N=20, dt=5e-4, duration=0.2)
    with pytest.raises(UserError, match="no differentiable feature"):
        fit_theta(spec, prior, {"burst_num": 1.0}, {"burst_num": 1.0}, [[1.0]])
    with pytest.raises(UserError, match="outside the prior"):
        fit_theta(spec, prior, {"rate_mean": 0.5}, {"rate_mean": 0.1}, [[9.0]])
    with pytest.raises(UserError, match="σ"):
        fit_theta(spec, prior, {"rate_mean": 0.5}, {}, [[1.0]])
    mk1 = Prior.load("mk1")
    with pytest.raises(UserError, match="cannot fit"):
        fit_theta(spec, mk1, {"rate_mean": 0.5}, {"rate_mean": 0.1}, mk1.sample(1, seed=0),
                  free=["n_clusters"])


def test_the_memory_limit_holds_gradient_runs_not_forward_residuals():
    """The limit estimates autograd's graph: a loss evaluation with gradients over it is refused
    with the estimate, the forward residuals (no graph; the Gauss-Newton Hessian's input) run."""
    import torch

    from automind.rsnn.fit import Loss

    prior = drive_prior()
    spec = SimulatorSpec.load("mk1").with_overrides(N=20, dt=5e-4, duration=0.15, t_analysis_start=0.05)
    loss = Loss(spec, prior, {"rate_mean": 0.4}, {"rate_mean": 0.05}, ["E.poisson_rate"],
                memory_limit=1e5)
    with pytest.raises(UserError, match="GiB, over the limit"):
        loss(torch.tensor([[3.0]], dtype=torch.float64, requires_grad=True), [1])
    residuals = loss.residuals([[3.0], [1.0]], [1, 2])
    assert residuals.shape == (2, 1) and np.isfinite(residuals).all()
