"""Sign-preserving optimisers: exponentiated Adam and exponentiated SGD (spec rsnn.md §4).

An exponentiated-gradient step multiplies a weight by exp(−step·sign(w)·direction), so a
weight never changes sign (Dale's law holds by construction), zeros stay zero and weights
that should change sign are driven towards 0 instead. ``ExpAdam`` uses Adam's moments
(β 0.9/0.999, ε 1e-11, lr 5e-3: the V1 GLIF model's settings); a parameter group with
``update="adam"`` takes the plain Adam step instead, so signed and sign-free parameters can
share one optimiser.
"""

from __future__ import annotations

import math

import torch

UPDATES = ("eg", "adam")


def _check_update(group: dict) -> None:
    if group["update"] not in UPDATES:
        raise ValueError(f"update must be one of {UPDATES}, got {group['update']!r}")


def _apply_floor(w: torch.Tensor, min_abs: float) -> None:
    """|w| >= min_abs for every non-zero weight (zeros stay zero)."""
    if min_abs > 0:
        w.copy_(torch.sign(w) * torch.clamp(w.abs(), min=min_abs))


class ExpAdam(torch.optim.Optimizer):
    """w ← w·exp(−α_t·sign(w)·m/(√v+ε)), α_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ); then w ← w(1−lr·λ)
    (``weight_decay`` λ) and |w| ≥ ``min_abs`` for non-zero w."""

    def __init__(self, params, lr: float = 5e-3, betas=(0.9, 0.999), eps: float = 1e-11,
                 weight_decay: float = 0.0, min_abs: float = 0.0, update: str = "eg"):
        if lr <= 0 or eps <= 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("ExpAdam needs lr > 0, eps > 0 and betas in [0, 1)")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        min_abs=min_abs, update=update)
        super().__init__(params, defaults)
        for group in self.param_groups:
            _check_update(group)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            _check_update(group)
            beta1, beta2 = group["betas"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                state = self.state[w]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(w)
                    state["v"] = torch.zeros_like(w)
                state["step"] += 1
                t = state["step"]
                m, v = state["m"], state["v"]
                m.mul_(beta1).add_(w.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(w.grad, w.grad, value=1 - beta2)
                alpha = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                direction = m / (v.sqrt() + group["eps"])
                if group["update"] == "eg":
                    w.mul_(torch.exp(-alpha * torch.sign(w) * direction))
                else:
                    w.sub_(alpha * direction)
                if group["weight_decay"]:
                    w.mul_(1 - group["lr"] * group["weight_decay"])
                if group["update"] == "eg":
                    _apply_floor(w, group["min_abs"])
        return loss


class ExpSGD(torch.optim.Optimizer):
    """w ← w·exp(−lr·sign(w)·g) (``update="sgd"`` groups: w ← w − lr·g)."""

    def __init__(self, params, lr: float = 1e-2, weight_decay: float = 0.0, min_abs: float = 0.0,
                 update: str = "eg"):
        if lr <= 0:
            raise ValueError("ExpSGD needs lr > 0")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, min_abs=min_abs,
                                      update=update))
        for group in self.param_groups:
            if group["update"] not in ("eg", "sgd"):
                raise ValueError(f"update must be 'eg' or 'sgd', got {group['update']!r}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                if group["update"] == "eg":
                    w.mul_(torch.exp(-group["lr"] * torch.sign(w) * w.grad))
                else:
                    w.sub_(group["lr"] * w.grad)
                if group["weight_decay"]:
                    w.mul_(1 - group["lr"] * group["weight_decay"])
                if group["update"] == "eg":
                    _apply_floor(w, group["min_abs"])
        return loss
