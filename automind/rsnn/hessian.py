"""The loss Hessian of a gradient fit and its sloppiest direction (spec rsnn.md §5b).

H is taken in prior-standardised coordinates u (those of the consistent set's PCA), from the
2d points u ± h·e_i run in one batch with the same seed (common random numbers), over
``repeats`` seeds. Two estimates:

- ``gauss_newton_hessian`` (the default of studies/rsnn_vs_npe): H ≈ (2/m)·JᵀJ, J the
  Jacobian of the m standardised residuals by central differences of forward runs — the
  loss's Hessian at a fit that matches its features (the residual-curvature term vanishes
  there), positive semi-definite, and free of surrogate gradients. JᵀJ is the mean of
  J_rᵀJ_s over pairs of different seeds, so the seeds' noise in J does not inflate it.
- ``loss_hessian``: central differences of the surrogate gradient. In a recurrent network
  these explode across the steps (eigenvalues of both signs up to ~10⁹ measured,
  studies/rsnn_vs_npe/README.md): kept to compare.

The sloppiest direction is the eigenvector of the smallest |eigenvalue|: the direction the loss
changes least.
"""

from __future__ import annotations

import numpy as np
import torch

from ..simulators.execution import simulation_seed

#: eigenvalues below this share of the largest |λ| count as flat (measured at N = 200, 4 s
#: runs: the stiff ones at ≥ 7.6 % of the largest, the unresolved ones at ≤ 0.4 %)
FLAT = 0.02


def difference_points(prior, theta, step: float):
    """θ at u ± step·e_i (rows 2i, 2i + 1; clipped to the prior) and dθ/du there."""
    u0 = prior.standardise(np.asarray(theta, float)[None])[0]
    d = len(u0)
    points = np.repeat(u0[None], 2 * d, 0)
    for i in range(d):
        points[2 * i, i] += step
        points[2 * i + 1, i] -= step
    thetas = np.clip(prior.destandardise(points), prior.low, prior.high)
    eps = 1e-4  # dθ/du per parameter, numerically (the prior's transforms are per parameter)
    jac = (prior.destandardise(points + eps) - prior.destandardise(points - eps)) / (2 * eps)
    return thetas, jac


def spectrum(H: np.ndarray) -> dict:
    """H symmetrised, its eigenvalues by ascending |λ|, eigenvectors (columns, same order) and
    the sloppiest direction."""
    H = (H + H.T) / 2
    values, vectors = np.linalg.eigh(H)
    order = np.argsort(np.abs(values))
    return {"hessian": H, "eigenvalues": values[order], "eigenvectors": vectors[:, order],
            "sloppiest": vectors[:, order[0]]}


def gauss_newton_hessian(residuals, prior, theta, step: float = 0.1, repeats: int = 4,
                         seed: int = 0) -> dict:
    """``residuals(thetas, seeds)`` → (B, m) standardised residuals (``rsnn.fit.Loss.residuals``);
    θ (prior units). Returns H = (2/m)·JᵀJ (d, d), its eigenvalues (ascending |λ|),
    eigenvectors (columns, same order), the sloppiest direction, J (m, d, the seeds' mean) and
    its standard error over the seeds (|J| / se below ~2: that derivative is not resolved)."""
    if repeats < 2:
        raise ValueError("the Gauss-Newton Hessian needs repeats >= 2 (pairs of different seeds)")
    thetas, _ = difference_points(prior, theta, step)
    u = prior.standardise(thetas)
    d = len(u[0])
    du = np.diag(u[0::2]) - np.diag(u[1::2])  # 2·step unless clipped at a bound
    J = []
    for r in range(repeats):
        res = np.asarray(residuals(thetas, [simulation_seed(seed, r)] * (2 * d)), float)
        J.append(((res[0::2] - res[1::2]) / du[:, None]).T)  # (m, d)
    J = np.array(J)
    return spectrum(2 / J.shape[1] * cross_seed_gram(J)) | {
        "jacobian": J.mean(0), "jacobian_se": J.std(0, ddof=1) / np.sqrt(repeats)}


def cross_seed_gram(J: np.ndarray) -> np.ndarray:
    """JᵀJ without the seeds' noise from Jacobians (S, m, d) on S ≥ 2 seeds: the mean of
    J_rᵀJ_s over pairs of different seeds: their noise is independent, so it does not add to
    it, as it adds σ²/(2h²) per feature to each seed's own J_sᵀJ_s (σ the residuals' noise
    not shared by the 2d runs of a seed, h the differences' half-width)."""
    total = J.sum(0)
    return (total.T @ total - np.einsum("smi,smj->ij", J, J)) / (len(J) * (len(J) - 1))


def loss_hessian(loss, prior, theta, step: float = 0.1, repeats: int = 2, seed: int = 0) -> dict:
    """``loss``: an ``rsnn.fit.Loss``; θ (prior units). Returns H (d, d), its eigenvalues
    (ascending |λ|), eigenvectors (columns, same order) and the sloppiest direction."""
    thetas, jac = difference_points(prior, theta, step)
    d = len(thetas[0])
    H = np.zeros((d, d))
    for r in range(repeats):
        th = torch.tensor(thetas, dtype=torch.float64, requires_grad=True)
        value = loss(th, [simulation_seed(seed, r)] * (2 * d))
        value.sum().backward()
        g_u = th.grad.numpy() * jac
        H += (g_u[0::2] - g_u[1::2]).T / (2 * step) / repeats  # column i: ∂g/∂u_i
    return spectrum(H)


def flat_subspace_share(eigenvalues, eigenvectors, direction, flat: float = FLAT) -> dict:
    """How much of ``direction`` lies where the loss is flat: the eigenvectors whose |λ| is
    below ``flat`` × the largest span the flat subspace, and the share is the squared norm of
    the unit direction's projection on it (1: inside it; 0: in the stiff subspace; a random
    direction: the flat dimensions / d). Where few features constrain many parameters the
    flat subspace has several dimensions and its single sloppiest direction is noise, so this
    is the comparison that is well posed (studies/rsnn_vs_npe/README.md)."""
    values, vectors = np.abs(np.asarray(eigenvalues, float)), np.asarray(eigenvectors, float)
    unit = np.asarray(direction, float) / np.linalg.norm(direction)
    is_flat = values < flat * values.max()
    return {"share": float(np.sum((vectors[:, is_flat].T @ unit) ** 2)),
            "flat_dimensions": int(is_flat.sum()), "stiff_dimensions": int((~is_flat).sum())}


def abs_cos(a, b) -> float:
    """|cos| of the angle between two directions."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))
