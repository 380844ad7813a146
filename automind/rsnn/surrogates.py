"""Spike functions with surrogate gradients: Heaviside forward, a smooth pseudo-derivative
backward (spec rsnn.md §2).

``spike(x, scale, kind)`` with x = v − v_cut and ``scale`` s = 5ΔT + 1 mV (per neuron):
  triangular (default; Bellec et al. 2018): dz/dx = γ/s · max(0, 1 − |x|/s), γ = 0.3
  gaussian (V1 GLIF model):                 dz/dx = γ/s · exp(−(x/s)² / (2σ²)), σ = 0.3
  fast_sigmoid (snnTorch):                  dz/dx = 1/s · 1 / (1 + β|x/s|)², β = 25
``connection(p, u)``: the graph's m = H(p − u) with ∂m/∂p = tri((p − u)/ε)/ε, ε = 0.01, so
connection probabilities receive gradients.
"""

from __future__ import annotations

import torch

GAMMA = 0.3
GAUSSIAN_SIGMA = 0.3
FAST_SIGMOID_BETA = 25.0
CONNECTION_EPS = 0.01


def _triangular(u):
    return GAMMA * torch.clamp(1 - u.abs(), min=0)


def _gaussian(u):
    return GAMMA * torch.exp(-0.5 * (u / GAUSSIAN_SIGMA) ** 2)


def _fast_sigmoid(u):
    return 1.0 / (1 + FAST_SIGMOID_BETA * u.abs()) ** 2


PSEUDO_DERIVATIVES = {"triangular": _triangular, "gaussian": _gaussian,
                      "fast_sigmoid": _fast_sigmoid}


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, kind):
        ctx.save_for_backward(x, scale)
        ctx.kind = kind
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, scale = ctx.saved_tensors
        return grad * PSEUDO_DERIVATIVES[ctx.kind](x / scale) / scale, None, None


def spike(x: torch.Tensor, scale: torch.Tensor, kind: str = "triangular") -> torch.Tensor:
    """H(x) forward (x > 0, as Brian2's ``v > v_cut``), surrogate derivative backward."""
    if kind not in PSEUDO_DERIVATIVES:
        raise ValueError(f"surrogate must be one of {sorted(PSEUDO_DERIVATIVES)}, got {kind!r}")
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device).expand_as(x)
    return _Spike.apply(x, scale, kind)


class _Connection(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p, u):
        ctx.save_for_backward(p, u)
        return (u < p).to(p.dtype)  # Brian2's connect(p=...): rand() < p

    @staticmethod
    def backward(ctx, grad):
        p, u = ctx.saved_tensors
        r = (p - u) / CONNECTION_EPS
        return grad * torch.clamp(1 - r.abs(), min=0) / CONNECTION_EPS, None


def connection(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """m = H(p − u) (1 where u < p) with a triangular surrogate for ∂m/∂p."""
    return _Connection.apply(p, u)
