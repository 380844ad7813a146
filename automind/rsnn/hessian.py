"""The loss Hessian of a gradient fit and its sloppiest direction (spec rsnn.md §5b).

H is taken in prior-standardised coordinates u (those of the consistent set's PCA) by central
differences of the surrogate gradient: the 2d points u ± h·e_i run in one batch with the same
seed (common random numbers), averaged over ``repeats`` seeds, then symmetrised. The sloppiest
direction is the eigenvector of the smallest |eigenvalue|: the direction the loss changes least.
"""

from __future__ import annotations

import numpy as np
import torch

from ..simulators.execution import simulation_seed


def loss_hessian(loss, prior, theta, step: float = 0.1, repeats: int = 2, seed: int = 0) -> dict:
    """``loss``: an ``rsnn.fit.Loss``; θ (prior units). Returns H (d, d), its eigenvalues
    (ascending |λ|), eigenvectors (columns, same order) and the sloppiest direction."""
    u0 = prior.standardise(np.asarray(theta, float)[None])[0]
    d = len(u0)
    points = np.repeat(u0[None], 2 * d, 0)
    for i in range(d):
        points[2 * i, i] += step
        points[2 * i + 1, i] -= step
    thetas = np.clip(prior.destandardise(points), prior.low, prior.high)
    eps = 1e-4  # dθ/du per parameter, numerically (the prior's transforms are per parameter)
    jac = (prior.destandardise(points + eps) - prior.destandardise(points - eps)) / (2 * eps)
    H = np.zeros((d, d))
    for r in range(repeats):
        th = torch.tensor(thetas, dtype=torch.float64, requires_grad=True)
        value = loss(th, [simulation_seed(seed, r)] * (2 * d))
        value.sum().backward()
        g_u = th.grad.numpy() * jac
        H += (g_u[0::2] - g_u[1::2]).T / (2 * step) / repeats  # column i: ∂g/∂u_i
    H = (H + H.T) / 2
    values, vectors = np.linalg.eigh(H)
    order = np.argsort(np.abs(values))
    return {"hessian": H, "eigenvalues": values[order], "eigenvectors": vectors[:, order],
            "sloppiest": vectors[:, order[0]]}


def abs_cos(a, b) -> float:
    """|cos| of the angle between two directions."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))
