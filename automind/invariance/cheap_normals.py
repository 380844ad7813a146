"""The cheap model's iso-rate normals against a posterior's stiff directions and the
consistent set's thin ones.

The cheap forward model (``automind.cheap``) predicts the E rate ν_E(θ) in microseconds, so
its gradient is the normal of the iso-rate surface through each configuration: the direction
in which the rate, and with it every rate-like feature, changes fastest. The gradient is the
linear response at the predicted equilibrium, dν/dθ = (I − ∂Φ/∂ν)⁻¹ ∂Φ/∂θ, where there is
one (asynchronous), else central differences of the whole prediction. Where the recording
pins the rate, the posterior should be stiff along that normal and the consistent set thin.
Compared in the same prior-standardised coordinates as ``hessian_directions`` (u = (s −
mean) / sd, s the prior's scale space): per configuration, |cos| between the normal and the
Hessian's stiffest direction, and the Hessian's curvature along the normal over its mean
curvature (a random direction gives 1 on average; the stiffest direction λ_max / mean λ);
and the set's variance along the normal over its mean variance, and |cos| with the set's
thinnest principal direction. The two can disagree: a flow trained on a few thousand
simulations may not have learned a constraint that refinement's re-simulations did.
"""

from __future__ import annotations

import numpy as np

#: half-step of the central differences, in prior sd
STEP = 1e-3


def iso_rate_normals(model, u: np.ndarray, step: float = STEP) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (n, d) of the predicted iso-log10-rate surfaces at standardised u (n, d),
    and how each was found: ``linear_response`` at an asynchronous equilibrium
    (``CheapModel.rate_response``), else ``differences`` of the whole prediction (a bursting
    network's cycle-mean rate); NaN rows where neither applies (a side not predicted ``ok``,
    or the rate does not move). ``model``: a :class:`automind.cheap.screen.CheapModel`."""
    prior = model.prior
    u = np.atleast_2d(np.asarray(u, float))
    theta = prior.destandardise(u)
    gradient = model.rate_response(theta)["rate_E"]
    method = np.where(np.isfinite(gradient).all(1), "linear_response", "differences")
    rest = method == "differences"
    if rest.any():
        gradient[rest] = model.rate_gradient(theta[rest])
    normals = _unit(gradient * prior.dtheta_du(u, step))
    return normals, np.where(np.isfinite(normals).all(1), method, "").astype(str)


def _unit(gradient: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(gradient, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, gradient / norm, np.nan)


def rate_subspaces(model, u: np.ndarray, step: float = STEP) -> tuple[np.ndarray, np.ndarray]:
    """Every population's iso-rate normal (n, P, d) at standardised u, from the linear
    response at the asynchronous equilibrium, and an orthonormal basis (n, d, P) of the
    subspace they span: the directions in which some predicted rate moves (its complement
    keeps all of them). NaN rows where the response is not predicted (not ``ok`` and
    asynchronous) or the normals are degenerate (rank < P)."""
    u = np.atleast_2d(np.asarray(u, float))
    response = model.rate_response(model.prior.destandardise(u))["rates"]  # (n, P, d)
    gradient = response * model.prior.dtheta_du(u, step)[:, None, :]
    n, P, d = gradient.shape
    bases = np.full((n, d, P), np.nan)
    for i in np.flatnonzero(np.isfinite(gradient).all((1, 2))):
        q, r = np.linalg.qr(gradient[i].T)
        if np.abs(np.diag(r)).min() > 1e-9 * np.abs(np.diag(r)).max():
            bases[i] = q
    return _unit(gradient), bases


def subspace_share(bases: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Per configuration: the mean of a symmetric matrix M over the subspace, tr(QᵀMQ)/P, over
    its mean over all directions, tr(M)/d (a random subspace: 1 on average). ``bases`` (n, d, P)
    orthonormal; ``matrices`` (d, d) shared or (n, d, d): the set's covariance (≪ 1: the set is
    thin in the subspace) or a posterior's Hessian (≫ 1: stiff)."""
    n, d, P = bases.shape
    M = np.broadcast_to(matrices, (n, d, d))
    inside = np.einsum("ndp,nde,nep->n", bases, M, bases) / P
    return inside / (np.trace(M, axis1=1, axis2=2) / d)


def normal_alignment(normals: np.ndarray, eigenvalues: np.ndarray, vectors: np.ndarray) -> dict:
    """Per configuration: |cos| between the normal and the stiffest eigenvector (column 0 of
    ``vectors``, eigenvalues descending as ``hessian_directions`` returns them), and the
    curvature along the normal nᵀHn over the mean curvature tr(H)/d. Rows with a NaN normal
    stay NaN; the summary counts the usable ones."""
    projection = np.einsum("nd,nde->ne", normals, vectors)  # the normal in the eigenbasis
    cosine = np.abs(projection[:, 0])
    ratio = (projection ** 2 * eigenvalues).sum(1) / eigenvalues.mean(1)  # nᵀHn / (tr H / d)
    d = normals.shape[1]
    usable = np.isfinite(cosine)
    return {"n": int(len(normals)), "n_predicted": int(usable.sum()),
            "stiff_cosine": cosine.tolist(), "curvature_over_mean": ratio.tolist(),
            "stiff_cosine_median": _median(cosine),
            "curvature_over_mean_median": _median(ratio),
            # what a direction drawn uniformly on the sphere would give: E|cos| ≈ √(2/(πd))
            # for large d, and 1 for the curvature ratio
            "random_direction_cosine": float(_random_abs_cosine(d)),
            "random_direction_curvature_over_mean": 1.0}


def set_alignment(normals: np.ndarray, u_set: np.ndarray) -> dict:
    """The consistent set's own geometry along the normals: its variance along each normal
    over its mean variance tr(C)/d (a random direction: 1; a set thin along the normal: ≪ 1),
    and |cos| between each normal and the set's thinnest principal direction."""
    C = np.cov(np.asarray(u_set, float).T)
    values, vectors = np.linalg.eigh(C)
    ratio = np.einsum("nd,de,ne->n", normals, C, normals) / values.mean()
    cosine = np.abs(normals @ vectors[:, 0])
    return {"set_variance_over_mean": ratio.tolist(),
            "set_variance_over_mean_median": _median(ratio),
            "set_thinnest_cosine": cosine.tolist(), "set_thinnest_cosine_median": _median(cosine),
            "set_thinnest_variance_over_mean": float(values[0] / values.mean())}


def cheap_check(model, u: np.ndarray, eigenvalues: np.ndarray, vectors: np.ndarray,
                names: list[str], u_set: np.ndarray | None = None) -> dict:
    """The iso-rate normals of ``model`` at configurations u against the posterior's Hessian
    eigen-structure there (``hessian_directions`` at the same u): :func:`normal_alignment`;
    given the whole consistent set ``u_set``, also :func:`set_alignment`; the normals
    themselves and their mean direction per parameter."""
    normals, method = iso_rate_normals(model, u)
    report = normal_alignment(normals, eigenvalues, vectors)
    report["normal_method"] = {m: int(np.sum(method == m))
                               for m in ("linear_response", "differences")}
    if u_set is not None:
        report |= set_alignment(normals, u_set)
    report["rate_subspace"] = rate_subspace_report(model, u, eigenvalues, vectors, u_set)
    report["normals"] = normals.tolist()
    if report["n_predicted"]:  # the normals point up the rate, so their mean is meaningful
        mean = np.nanmean(normals, 0)
        report["mean_normal"] = dict(zip(names, (mean / np.linalg.norm(mean)).tolist()))
    return report


def rate_subspace_report(model, u: np.ndarray, eigenvalues: np.ndarray, vectors: np.ndarray,
                         u_set: np.ndarray | None = None) -> dict:
    """Composite predictions: every population's rate normal and the subspace they span
    (:func:`rate_subspaces`) against the posterior's Hessians (curvature in the subspace over
    the mean: :func:`subspace_share`) and, given the consistent set, its variance along each
    population's normal and in the subspace over its mean variance (medians over the
    configurations where the response is predicted)."""
    normals, bases = rate_subspaces(model, u)
    hessians = np.einsum("nde,ne,nfe->ndf", vectors, eigenvalues, vectors)
    usable = np.isfinite(bases).all((1, 2))
    out = {"populations": list(model.network(model.prior.destandardise(u[:1])).names),
           "n_predicted": int(usable.sum())}
    if not usable.any():
        return out
    out["curvature_over_mean_median"] = _median(subspace_share(bases[usable], hessians[usable]))
    if u_set is not None:
        C = np.cov(np.asarray(u_set, float).T)
        out["set_variance_over_mean_median"] = _median(subspace_share(bases[usable], C))
        along = np.einsum("npd,de,npe->np", normals[usable], C, normals[usable]) / np.trace(C) \
            * C.shape[0]
        out["set_variance_along_normal_median"] = dict(zip(out["populations"],
                                                           [_median(a) for a in along.T]))
    return out


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else None


def _random_abs_cosine(d: int) -> float:
    """E|cos| between a fixed unit vector and a uniformly random one in d dimensions:
    Γ(d/2) / (√π Γ((d+1)/2))."""
    from scipy.special import gammaln

    return float(np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / np.sqrt(np.pi))
