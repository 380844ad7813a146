"""The deferred weight gradient of the dense recurrent input (automind/rsnn/recurrent.py)."""

import pytest
import torch

from automind.errors import UserError
from automind.prior import Prior
from automind.rsnn import recurrent
from automind.rsnn.features import bin_ms
from automind.rsnn.mk1 import TorchMK1
from automind.simulators import SimulatorSpec


def _toy_gradients(defer: bool, steps: int) -> list[torch.Tensor]:
    """A recurrent toy x_{t+1} = 0.5 x_t + tanh(x_t)·W, W also used directly in the loss."""
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(3, 7, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    x0 = torch.randn(3, 2, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    W = 0.3 * A
    step = recurrent.RecurrentInput(W, defer=defer)
    x, loss = x0, (W ** 2).sum()
    for _ in range(steps):
        x = 0.5 * x + step(torch.tanh(x))
        loss = loss + (x ** 2).sum()
    return list(torch.autograd.grad(loss, [A, x0]))


def test_deferred_weight_gradient_is_autograds(monkeypatch):
    monkeypatch.setattr(recurrent, "FLUSH", 4)  # 11 steps: two full chunks and a remainder
    for got, want in zip(_toy_gradients(True, 11), _toy_gradients(False, 11)):
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-14)
        assert want.abs().max() > 1e-3


def test_sparse_bmm_is_bmm():
    gen = torch.Generator().manual_seed(5)
    W = torch.randn(4, 30, 30, dtype=torch.float64, generator=gen)
    for density in (0.01, 0.5):  # the row sums, then the bmm fallback
        z = (torch.rand(4, 2, 30, generator=gen, dtype=torch.float64) < density).double()
        assert torch.allclose(recurrent.sparse_bmm(z, W), torch.bmm(z, W), rtol=1e-13)


def test_torch_mk1_gradient_is_the_same_with_the_deferred_weight_gradient():
    """A coupled MK1 network: the same spikes and θ gradients (float64) on both paths."""
    spec = SimulatorSpec.load("mk1").with_overrides(N=60, duration=0.1)
    prior = Prior.load("mk1")
    params = [prior.to_simulator(t) for t in prior.sample(3, seed=13)]
    out = {}
    for defer in (True, False):
        z, P = TorchMK1(spec, defer_weight_grad=defer).run_differentiable(params, [1, 2, 3], 0.1)
        bin_ms(z, round(1e-3 / spec.dt)).mean().backward()
        out[defer] = z.detach(), {k: v.grad for k, v in P.items() if v.grad is not None}
    assert torch.equal(out[True][0], out[False][0]) and out[True][0].sum() > 100
    for name, want in out[False][1].items():
        assert torch.allclose(out[True][1][name], want, rtol=1e-9, atol=1e-30), name
    # the graph's parameters do get a gradient through the deferred path
    assert all(float(out[True][1][n].abs().max()) > 0 for n in ("p_e2e", "R_Qe2e", "E.Q_ge"))


def test_recurrent_grad_scales_the_gradient_through_presynaptic_spikes():
    """1: the full surrogate gradient (the default); 0: detach_recurrent; between: neither.
    The forward run is the same for all."""
    spec = SimulatorSpec.load("mk1").with_overrides(N=60, duration=0.1)
    params = [Prior.load("mk1").to_simulator(t) for t in Prior.load("mk1").sample(3, seed=13)]
    out = {}
    for label, options in (("default", {}), ("1", {"recurrent_grad": 1.0}),
                           ("0", {"recurrent_grad": 0.0}), ("detached", {"detach_recurrent": True}),
                           ("0.5", {"recurrent_grad": 0.5})):
        z, P = TorchMK1(spec, **options).run_differentiable(params, [1, 2, 3], 0.1)
        bin_ms(z, round(1e-3 / spec.dt)).mean().backward()
        out[label] = z.detach(), torch.cat([P[n].grad for n in ("p_e2e", "E.Q_ge", "E.b")], 1)
    assert all(torch.equal(out[k][0], out["default"][0]) for k in out)
    assert torch.equal(out["1"][1], out["default"][1])
    assert torch.equal(out["0"][1], out["detached"][1])
    middle = out["0.5"][1]
    assert torch.isfinite(middle).all()
    assert not torch.allclose(middle, out["1"][1]) and not torch.allclose(middle, out["0"][1])
    with pytest.raises(UserError, match="recurrent_grad must be in"):
        TorchMK1(spec, recurrent_grad=1.5)
