"""Exponentiated Adam / SGD against the spec's known answers (rsnn.md §4): a least-squares
problem with an orthonormal design, Dale-signed log-normal weights (80 positive, 20 negative
columns), lr 0.01, 2000 steps."""

import pytest
import torch

from automind.rsnn.optim import ExpAdam, ExpSGD

N, STEPS = 100, 2000


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    X, _ = torch.linalg.qr(torch.randn(N, N, dtype=torch.float64, generator=g))
    signs = torch.ones(N, dtype=torch.float64)
    signs[80:] = -1  # Dale: a column (presynaptic unit) has one sign

    def lognormal():  # weights ~ 0.1, spread 0.5 in log
        return torch.exp(torch.randn(N, N, dtype=torch.float64, generator=g) * 0.5 - 2.3) * signs

    W0, T = lognormal(), lognormal()
    wrong = torch.rand(N, N, generator=g) < 0.1
    return X, W0, T, wrong


def fit(X, W0, T, make_optimizer):
    """Run the fit; returns the final W and the mask of entries whose sign ever differed from W0."""
    W = W0.clone().requires_grad_(True)
    opt = make_optimizer([W])
    flipped = torch.zeros_like(W0, dtype=torch.bool)
    for _ in range(STEPS):
        opt.zero_grad()
        (0.5 * (X @ (W - T)).square().sum()).backward()
        opt.step()
        flipped |= torch.sign(W.detach()) != torch.sign(W0)
    return W.detach(), flipped


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_exp_adam_reaches_dale_consistent_target_without_flips(problem):
    X, W0, T, _ = problem
    W, flipped = fit(X, W0, T, lambda p: ExpAdam(p, lr=0.01))
    assert not flipped.any()
    assert ((W - T).norm() / T.norm()).item() < 1e-3


def test_exp_adam_drives_wrong_signed_targets_to_zero_while_adam_flips_them(problem):
    X, W0, T, wrong = problem
    T = torch.where(wrong, -T, T)
    W, flipped = fit(X, W0, T, lambda p: ExpAdam(p, lr=0.01))
    assert not flipped.any()
    right = ~wrong
    assert ((W - T)[right].norm() / T[right].norm()).item() < 1e-3
    assert W[wrong].abs().max().item() < 1e-4
    _, adam_flipped = fit(X, W0, T, lambda p: torch.optim.Adam(p, lr=0.01, eps=1e-11))
    assert adam_flipped[wrong].float().mean().item() >= 0.9


def test_zeros_stay_zero_floor_and_mixed_groups():
    w = torch.tensor([0.5, -0.2, 0.0, 1e-3], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    opt = ExpAdam([{"params": [w], "min_abs": 1e-2}, {"params": [b], "update": "adam"}], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        ((w + 1.0).square().sum() + (b + 1.0).square().sum()).backward()  # pulls w and b to -1
        opt.step()
    assert w[2].item() == 0.0
    assert w[0].item() == pytest.approx(1e-2) and w[3].item() == pytest.approx(1e-2)  # floored
    assert w[1].item() == pytest.approx(-1.0, abs=1e-2)
    assert b.item() == pytest.approx(-1.0, abs=5e-2)  # the plain-Adam group crosses zero


def test_exp_sgd_step_is_multiplicative():
    w = torch.tensor([2.0, -3.0], dtype=torch.float64, requires_grad=True)
    opt = ExpSGD([w], lr=0.1)
    w.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    opt.step()
    expected = torch.tensor([2.0 * torch.exp(torch.tensor(-0.1)).item(),
                             -3.0 * torch.exp(torch.tensor(0.1)).item()], dtype=torch.float64)
    torch.testing.assert_close(w.detach(), expected)


def test_first_exp_adam_step_is_lr_in_log():
    # t = 1: m = (1-β1) g, v = (1-β2) g², α = lr √(1-β2)/(1-β1) -> step exactly lr·sign(g) in log|w|
    w = torch.tensor([0.7, -0.4], dtype=torch.float64, requires_grad=True)
    opt = ExpAdam([w], lr=0.05, eps=1e-30)
    w.grad = torch.tensor([3.0, 2.0], dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(torch.log(w.detach().abs()),
                               torch.log(torch.tensor([0.7, 0.4], dtype=torch.float64))
                               + torch.tensor([-0.05, 0.05], dtype=torch.float64))


def test_unknown_update_refused():
    with pytest.raises(ValueError, match="update"):
        ExpAdam([torch.zeros(2, requires_grad=True)], update="sgd")
