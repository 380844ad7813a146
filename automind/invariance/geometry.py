"""Global and local geometry of a consistent set, in prior-standardised coordinates
(zero mean, unit prior sd per parameter, log space for log-scale ones), so directions and
angles compare across parameters. Methods: ``../shared/spec/invariance.md``.

- global: PCA spectrum, participation ratio (Σλ)²/Σλ², Pearson / Spearman correlations;
- conditional correlations (Gonçalves et al. 2020): two parameters varied on a grid, the
  rest fixed at a consistent configuration, averaged over configurations;
- local: eigen-directions of the posterior's Hessian H = -∇² log q(u | x) (autograd
  through the flow) and of the features' Fisher information JᵀΣ⁻¹J (finite differences
  with common random numbers); stiff = large eigenvalue, sloppy = small;
- comparisons: principal angles between subspaces, overlap coefficients of marginals.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from ..prior import STANDARDISED_EDGE


def require(n: int, needed: int, statistic: str) -> None:
    """Refuse a statistic on too few configurations instead of drawing a NaN figure."""
    if n < needed:
        raise UserError(f"{statistic} needs at least {needed} configurations; the consistent "
                        f"set has {n} (sample more, or loosen the acceptance threshold)")


def participation_ratio(eigenvalues) -> float:
    lam = np.clip(np.asarray(eigenvalues, dtype=float), 0, None)
    return float(lam.sum() ** 2 / (lam ** 2).sum())


def global_geometry(u: np.ndarray) -> dict:
    """PCA and correlations of configurations u (n, d) in standardised coordinates."""
    from scipy import stats

    u = np.atleast_2d(np.asarray(u, dtype=float))
    n, d = u.shape
    require(n, max(10, 2 * d), "global geometry (PCA, correlations)")
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(u, rowvar=False))
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = np.clip(eigenvalues[order], 0, None), eigenvectors[:, order]
    spearman = stats.spearmanr(u).statistic if d > 1 else np.ones((1, 1))
    return {"n": n, "eigenvalues": eigenvalues, "components": eigenvectors,
            "explained_variance_ratio": eigenvalues / eigenvalues.sum(),
            "participation_ratio": participation_ratio(eigenvalues),
            "pearson": np.corrcoef(u, rowvar=False),
            "spearman": np.atleast_2d(spearman)}


def _prepared(posterior, x) -> torch.Tensor:
    return posterior.prepare_x(x)[:1]


def conditional_correlations(posterior, x, conditions: np.ndarray, resolution: int = 25,
                             half_width: float = 3.0, batch: int = 100_000) -> np.ndarray:
    """Mean conditional correlation matrix (d, d): for each condition u0 (standardised) and
    pair (i, j), the Pearson correlation of the 2-d density q(u_i, u_j | u0_rest, x) on a
    resolution² grid within ±half_width prior sd of the prior centre (clipped to the box).
    All pairs of a condition are evaluated in batches of up to ``batch`` densities."""
    conditions = np.atleast_2d(np.asarray(conditions, dtype=float))
    require(len(conditions), 1, "conditional correlations")
    x_t = _prepared(posterior, x)
    d = conditions.shape[1]
    limit = min(half_width, STANDARDISED_EDGE * (1 - 1e-4))
    grid = np.linspace(-limit, limit, resolution)
    gi, gj = (g.ravel() for g in np.meshgrid(grid, grid, indexing="ij"))
    pairs = np.array([(i, j) for i in range(d) for j in range(i + 1, d)]).reshape(-1, 2)
    rows = np.arange(len(pairs))[:, None]
    total = np.zeros((d, d))
    for u0 in conditions:
        points = np.repeat(np.repeat(u0[None, None], len(pairs), 0), len(gi), 1)  # (pairs, g, d)
        points[rows, :, pairs[:, :1]] = gi
        points[rows, :, pairs[:, 1:]] = gj
        flat = torch.as_tensor(points.reshape(-1, d))
        with torch.no_grad():
            logp = torch.cat([posterior.standardised_log_prob(flat[k:k + batch], x_t)
                              for k in range(0, len(flat), batch)]).numpy()
        logp = logp.reshape(len(pairs), len(gi))
        w = np.exp(logp - logp.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        mi, mj = w @ gi, w @ gj
        di, dj = gi - mi[:, None], gj - mj[:, None]
        cov = (w * di * dj).sum(1)
        var = np.sqrt((w * di ** 2).sum(1) * (w * dj ** 2).sum(1))
        total[pairs[:, 0], pairs[:, 1]] += np.where(var > 0, cov / np.where(var > 0, var, 1), 0.0)
    total /= len(conditions)
    return total + total.T + np.eye(d)


def hessian_directions(posterior, x, u: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """At each configuration u (n, d) (standardised): eigenvalues (n, d), descending, and
    eigenvectors (n, d, d) (columns) of H = -∇² log q(u | x). Large: stiff; small: sloppy.
    Batched: the log densities of different rows are independent, so d double-backward
    passes through the summed log density give every row's Hessian at once."""
    x_t = _prepared(posterior, x)
    u = np.atleast_2d(np.asarray(u, dtype=float))
    d = u.shape[1]
    hessians = []
    for start in range(0, len(u), batch):
        points = torch.as_tensor(u[start:start + batch]).requires_grad_(True)
        (grad,) = torch.autograd.grad(-posterior.standardised_log_prob(points, x_t).sum(), points,
                                      create_graph=True)
        columns = [torch.autograd.grad(grad[:, k].sum(), points, retain_graph=k < d - 1)[0]
                   for k in range(d)]
        hessians.append(torch.stack(columns, 2).detach().numpy())
    h = np.concatenate(hessians)
    lam, vec = np.linalg.eigh(0.5 * (h + h.transpose(0, 2, 1)))
    return lam[:, ::-1], vec[:, :, ::-1]


def fisher_information(features, prior, theta, step: float = 0.01, repeats: int = 4,
                       seed: int = 0) -> dict:
    """Fisher information of the features at θ (prior units) in standardised coordinates,
    I = Jᵀ Σ⁻¹ J. J: central differences of the mean features at u ± step·e_k under common
    random numbers (the same ``repeats`` seeds on both sides), which make small steps usable;
    small steps keep strongly nonlinear directions (MK1's linear-scale E.tau_w) from
    dominating through curvature. Σ: the diagonal feature noise variance pooled over the
    repeats at all 2d + 1 points (the full covariance from so few repeats is unstable).
    Features missing in any simulation or taking few distinct values (counts, flags) are
    left out (docs/invariance.md). ``features(thetas (m, d), seeds (m,)) -> (m, k)``.
    Costs (2d + 1)·repeats simulations."""
    u0 = prior.standardise(np.asarray(theta, dtype=float)[None])[0]
    d = len(u0)
    seeds = np.random.SeedSequence(seed).generate_state(repeats)
    shifts = np.vstack([np.zeros(d), np.eye(d) * step, -np.eye(d) * step])
    points = prior.destandardise(u0 + shifts)
    points = np.clip(points, prior.low, prior.high)
    thetas = np.repeat(points, repeats, axis=0)
    out = np.asarray(features(thetas, np.tile(seeds, len(points))), dtype=float)
    out = out.reshape(len(points), repeats, -1)
    finite = np.isfinite(out).all((0, 1))  # e.g. burst features of runs without bursts
    # a Gaussian noise model needs continuous features: counts, fractions and flags (burst
    # counts, the fraction of active units) take few distinct values, and one rare jump
    # over a near-zero variance gives an absurd information
    flat = out.reshape(-1, out.shape[-1])
    continuous = np.array([len(np.unique(column)) >= 0.5 * len(column) for column in flat.T])
    used = finite & continuous
    if not used.any():
        raise UserError("no feature is finite and continuous in the simulations of the Fisher step "
                        f"at θ = {np.round(theta, 4).tolist()}")
    out = out[..., used]
    plus, minus = out[1:d + 1], out[d + 1:]
    # the real step: points clipped at the prior box moved less than ±step
    moved = np.diag(prior.standardise(points[1:d + 1]) - prior.standardise(points[d + 1:]))
    jacobian = ((plus - minus).mean(1) / moved[:, None]).T  # (k, d)
    variance = ((out - out.mean(1, keepdims=True)) ** 2).sum((0, 1)) / (len(points) * (repeats - 1))
    variance = variance + 1e-9 * variance.mean()
    info = jacobian.T @ (jacobian / variance[:, None])
    lam, vec = np.linalg.eigh(0.5 * (info + info.T))
    return {"information": info, "jacobian": jacobian, "eigenvalues": lam[::-1],
            "eigenvectors": vec[:, ::-1], "simulations": int(len(thetas)),
            "features_used": int(used.sum()), "used": used, "noise_variance": variance}


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between the column spaces of a and b."""
    from scipy.linalg import subspace_angles

    return np.sort(np.degrees(subspace_angles(np.atleast_2d(a), np.atleast_2d(b))))


def overlap_coefficients(a: np.ndarray, b: np.ndarray, bins: int = 30) -> np.ndarray:
    """Per parameter, the shared area of two marginal histograms (1 = identical, 0 = disjoint)."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    out = []
    for k in range(a.shape[1]):
        edges = np.histogram_bin_edges(np.concatenate([a[:, k], b[:, k]]), bins)
        pa, _ = np.histogram(a[:, k], edges)
        pb, _ = np.histogram(b[:, k], edges)
        out.append(np.minimum(pa / pa.sum(), pb / pb.sum()).sum())
    return np.array(out)


def high_probability_path(posterior, x, u_start, u_end, n_basis: int = 3, n_points: int = 50,
                          iterations: int = 60) -> dict:
    """A smooth path between two configurations (standardised) that stays where the
    posterior is high (Gonçalves et al. 2020): u(s) = a + (b - a)·γ(s), γ_d(s) = s +
    Σ_k α_kd sin(πks), minimising the line integral of -log q(u(s) | x) (BFGS on α).
    Points outside the prior box cost a large penalty. Returns the path, its loss and the
    straight line's."""
    from scipy.optimize import minimize

    x_t = _prepared(posterior, x)
    a, b = (torch.as_tensor(np.asarray(v, float)) for v in (u_start, u_end))
    s = torch.linspace(0, 1, n_points, dtype=torch.float64)
    basis = torch.sin(torch.pi * torch.arange(1, n_basis + 1, dtype=torch.float64)[:, None] * s)
    edge = STANDARDISED_EDGE

    def curve(alpha):
        gamma = s[:, None] + basis.T @ alpha.reshape(n_basis, -1)
        return a + (b - a) * gamma

    def loss(alpha):
        points = curve(alpha)
        speed = torch.linalg.norm(torch.diff(points, dim=0), dim=1)
        nlp = -posterior.standardised_log_prob(points, x_t)
        outside = torch.relu(points.abs() - edge).sum(1)
        cost = 0.5 * (nlp[1:] + nlp[:-1]) + 1e4 * 0.5 * (outside[1:] + outside[:-1])
        return (cost * speed).sum()

    def value_and_grad(flat):
        alpha = torch.as_tensor(flat, dtype=torch.float64).requires_grad_(True)
        value = loss(alpha)
        (grad,) = torch.autograd.grad(value, alpha)
        return float(value.detach()), grad.numpy()

    zero = np.zeros(n_basis * len(u_start))
    straight = value_and_grad(zero)[0]
    result = minimize(value_and_grad, zero, jac=True, method="BFGS",
                      options={"maxiter": iterations})
    with torch.no_grad():
        path = curve(torch.as_tensor(result.x)).numpy()
    return {"path": path, "loss": float(result.fun), "straight_loss": straight,
            "straight": curve(torch.as_tensor(zero)).numpy()}


def orthogonal_steps(posterior, x, u_point, tangent, n_steps: int = 10,
                     step: float = 0.05) -> np.ndarray:
    """From u_point, steps of length ``step`` uphill on -log q within the hyperplane
    orthogonal to ``tangent`` (P = I - n nᵀ): the fastest-changing direction, for contrast
    with a path along the invariance. Returns the n_steps + 1 points."""
    x_t = _prepared(posterior, x)
    n = np.asarray(tangent, float) / np.linalg.norm(tangent)
    projector = torch.as_tensor(np.eye(len(n)) - np.outer(n, n))
    point = torch.as_tensor(np.asarray(u_point, float))
    points = [point.numpy().copy()]
    for _ in range(n_steps):
        p = point.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(-posterior.standardised_log_prob(p[None], x_t)[0], p)
        direction = projector @ grad
        norm = torch.linalg.norm(direction)
        if norm == 0:
            break
        point = (point + step * direction / norm).detach()
        points.append(point.numpy().copy())
    return np.array(points)
