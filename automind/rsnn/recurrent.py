"""Dense recurrent input z_t·W of a differentiable run, with W's gradient deferred.

Autograd's own backward of ``bmm(z_t, W)`` forms the outer product z_tᵀ·G_t (G_t: the
gradient of the step's input), a (B, N, N) tensor, at every step and adds it to W's gradient:
memory-bound work that took ~87 % of a differentiable run's time at B 10, N 500 (docs/rsnn.md).
Here a step's backward returns the spikes' gradient only and keeps (z_t, G_t); W's gradient,
Σ_t z_tᵀ·G_t, is formed as one matrix product per ``FLUSH`` steps and handed to W by a node
that every step depends on (``_Tap``), which autograd therefore runs after all of them.
"""

from __future__ import annotations

import torch

FLUSH = 256  # steps per (B, N, k)·(B, k, N) product of W's gradient
SPARSE = 0.02  # below this share of nonzero z, the forward sums W's rows instead of a bmm


class _Pending:
    """Each step's spikes and input gradient until they are summed into W's gradient."""

    def __init__(self):
        self.z, self.g, self.total = [], [], None

    def add(self, z: torch.Tensor, g: torch.Tensor) -> None:
        self.z.append(z)
        self.g.append(g)
        if len(self.z) >= FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.z:
            part = torch.bmm(torch.cat(self.z, 1).transpose(1, 2), torch.cat(self.g, 1))
            self.total = part if self.total is None else self.total.add_(part)
            self.z, self.g = [], []

    def take(self) -> torch.Tensor | None:
        self.flush()
        total, self.total = self.total, None
        return total


class _Tap(torch.autograd.Function):
    """W itself forward; backward: the deferred gradient (plus any from other uses of W)."""

    @staticmethod
    def forward(ctx, W, pending):
        ctx.pending = pending
        ctx.set_materialize_grads(False)  # the steps return no gradient for W
        return W.view_as(W)

    @staticmethod
    def backward(ctx, grad):
        total = ctx.pending.take()
        if grad is not None:
            total = grad if total is None else total + grad
        return total, None


class _Step(torch.autograd.Function):
    """z (B, k, N) ↦ z·W (B, k, N); backward keeps (z, G) for W and returns G·Wᵀ for z."""

    @staticmethod
    def forward(ctx, z, W, pending):
        ctx.save_for_backward(z, W)
        ctx.pending = pending
        return sparse_bmm(z, W)

    @staticmethod
    def backward(ctx, grad):
        z, W = ctx.saved_tensors
        ctx.pending.add(z, grad)
        grad_z = torch.bmm(grad, W.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        return grad_z, None, None


def sparse_bmm(z: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``torch.bmm(z, W)`` for a mostly-zero z (spikes): the rows of W at z's nonzeros,
    weighted and summed (a bmm reads all of W, a memory-bound ~0.5 ms at B 10, N 500). On a
    GPU the bmm (``nonzero`` would wait for the device at every step)."""
    if z.device.type != "cpu":
        return torch.bmm(z, W)
    b, k, i = z.nonzero(as_tuple=True)
    if len(b) > SPARSE * z.numel():
        return torch.bmm(z, W)
    out = torch.zeros(z.shape[:2] + W.shape[2:], dtype=W.dtype, device=W.device)
    rows = W[b, i] * z[b, k, i, None]
    return out.index_put_((b, k), rows, accumulate=True)


class RecurrentInput:
    """``input(z)`` = z·W for z (B, k, N) and the (B, N, N) weights W[b, pre, post] of one run;
    where W needs a gradient, it gets it from one product per ``FLUSH`` steps (``defer``) or
    from autograd's outer product per step."""

    def __init__(self, W: torch.Tensor, defer: bool = True):
        self.deferred = defer and W.requires_grad and torch.is_grad_enabled()
        self.pending = _Pending()
        self.W = _Tap.apply(W, self.pending) if self.deferred else W

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if self.deferred:
            return _Step.apply(z, self.W, self.pending)
        return torch.bmm(z, self.W)
