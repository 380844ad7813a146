"""Derivative-free Gauss–Newton refinement of θ fits on forward torch runs.

Near a recording the surrogate gradient stops being a descent direction of d² (a network burst
is made by the recurrent loop, which the fits' gradient leaves out; studies/rsnn_vs_npe), while
central differences of the forward runs' residuals still are. Each step, per start: the
standardised residuals r (m features) at θ and at θ ± h·e_i (prior-standardised u, all 2d + 1
runs on one seed: common random numbers; with S seeds the residuals are averaged over S such
sets, so their noise falls by √S), J by central differences, and the damped
Gauss–Newton step δ = −(JᵀJ + λ·m·I)⁻¹ Jᵀ r, at most ``MAX_STEP`` long. The damping keeps a
step's noise small along directions the residuals barely see (r carries noise of sd ~1 per
feature). The result is the mean of the last half of the iterates (their noise averages out);
their curvature JᵀJ / m is kept, across seeds where there are several (``cross_seed_gram``);
every step draws a new seed, so a start is never fitted to one realisation.

With the noise's correlation R (the acceptance's, ``inference/noise.py``) the residuals are
whitened, r → L⁻¹r with R = LLᵀ, so the steps minimise the acceptance's own d² = zᵀR⁻¹z / m:
in a bursting network the spectral features' noise moves together (one mode held 20 of 48
features' variance in studies/rsnn_vs_npe), and the RMS of z counts that one mode many times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..simulators.execution import simulation_seed

#: λ per feature: the Gauss–Newton system is JᵀJ + DAMPING·m·I
DAMPING = 0.5
#: the longest step, in prior sd (a seed where a burst is missing gives a large residual)
MAX_STEP = 1.0


@dataclass
class RefineResult:
    names: list[str]
    theta: np.ndarray                 # (K, d) the mean of the last half of the iterates
    d2: np.ndarray                    # (steps, K) mean square residual at each iterate
    path: np.ndarray                  # (steps + 1, K, d) iterates, prior units
    jtj: np.ndarray                   # (K, d, d) JᵀJ / m over the last `averaged` steps (u;
    #                                   with ≥ 2 seeds across seeds: free of their noise)
    status: list[str]
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0


def averaged(steps: int) -> int:
    """How many last iterates a refinement of ``steps`` steps averages into its result."""
    return max(1, (steps + 1) // 2)


def refine_theta(residuals, prior, starts, steps: int = 5, step_sd: float = 0.3, seed: int = 0,
                 progress=None, checkpoint=None, correlation=None, seeds: int = 1) -> RefineResult:
    """``residuals(thetas, seeds) -> (B, m)`` standardised residuals of forward runs
    (``rsnn.fit.Loss.residuals``); ``starts`` (K, d) prior units; ``step_sd``: the central
    differences' half-width in prior sd. ``checkpoint``: a file the state is saved to after
    every step and resumed from (steps draw their seeds from (seed, step, start)).
    ``correlation``: (m, m) correlation of the residuals' noise; they are whitened by it.
    ``seeds``: the residuals of each step are averaged over this many seeds."""
    from ..io import save_npz

    if not 0 < step_sd <= 1:
        raise UserError(f"refine_theta: step_sd must be in (0, 1] prior sd, got {step_sd}")
    if seeds < 1:
        raise UserError(f"refine_theta: seeds must be >= 1, got {seeds}")
    starts = prior.validate(starts)
    K, d = starts.shape
    lo = prior.standardise(prior.low[None])[0] + step_sd   # the differences stay in the box
    hi = prior.standardise(prior.high[None])[0] - step_sd
    state = _resume(checkpoint, K, d, steps)
    if state is None:
        u = prior.standardise(starts)
        state = {"step": 0, "iterates": np.full((steps + 1, K, d), np.nan),
                 "d2": np.full((steps, K), np.nan), "jtj": np.zeros((K, d, d)),
                 "status": np.array(["ok"] * K, dtype="U8"),
                 "messages": np.array([""] * K, dtype="U200"), "seconds": 0.0}
        state["iterates"][0] = np.clip(u, lo, hi)
    keep = averaged(steps)
    t0 = time.perf_counter() - state["seconds"]
    for step in range(state["step"], steps):
        u = state["iterates"][step].copy()
        for k in range(K):
            if state["status"][k] != "ok":
                continue
            first = (step * K + k) * seeds  # with one seed, the seeds of earlier versions
            found = _step(residuals, prior, u[k], step_sd,
                          [simulation_seed(seed, first + s) for s in range(seeds)], correlation)
            if isinstance(found, str):
                state["status"][k], state["messages"][k] = "failed", f"step {step}: {found}"
                continue
            delta, d2, jtj = found
            u[k] = np.clip(u[k] + delta, lo, hi)
            state["d2"][step, k] = d2
            if step >= steps - keep:  # the curvature where the averaged iterates are
                state["jtj"][k] += jtj / keep
        state["iterates"][step + 1] = u
        state["step"], state["seconds"] = step + 1, time.perf_counter() - t0
        if checkpoint is not None and step + 1 < steps:
            save_npz(checkpoint, **state)
        if progress:
            progress(step, state["d2"][step])
    path = state["iterates"]
    failed = state["status"] != "ok"  # a failed start: where it stopped (it moves no more)
    theta = prior.destandardise(np.where(failed[:, None], path[-1], path[-keep:].mean(0)))
    return RefineResult(list(prior.names), theta, state["d2"],
                        prior.destandardise(path.reshape(-1, d)).reshape(path.shape),
                        state["jtj"], state["status"].tolist(), state["messages"].tolist(),
                        float(state["seconds"]))


def _step(residuals, prior, u, step_sd: float, seeds: list[int], correlation=None):
    """One damped Gauss–Newton step at u on the residuals averaged over ``seeds``: (δ, d² at u
    (the mean over seeds of each seed's d², as one run's acceptance sees it), JᵀJ / m), or why it
    cannot be taken."""
    import warnings

    from .hessian import cross_seed_gram, difference_points

    theta = prior.destandardise(u[None])
    points = np.vstack([theta, difference_points(prior, theta[0], step_sd)[0]])  # θ, u ± h·e_i
    with warnings.catch_warnings():  # a feature a run leaves undefined: NaN, dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        r = np.asarray(residuals(np.tile(points, (len(seeds), 1)),
                                 np.repeat(seeds, len(points)).tolist()), float)
    usable = np.isfinite(r).all(0)
    if not usable.any():
        return "no feature is defined at and around this θ"
    r = r[:, usable]
    if correlation is not None:  # whiten over the features this step defines
        from ..inference.noise import NoiseModel

        r = NoiseModel(np.ones(len(usable)), correlation).select(usable).whiten(r)
    per_seed = r.reshape(len(seeds), len(points), -1)
    d2 = float(np.mean(per_seed[:, 0] ** 2))
    m = r.shape[1]
    jacobians = ((per_seed[:, 1::2] - per_seed[:, 2::2]) / (2 * step_sd)).transpose(0, 2, 1)
    J = jacobians.mean(0)  # (m, d): of the residuals averaged over the seeds
    delta = -np.linalg.solve(J.T @ J + DAMPING * m * np.eye(len(u)),
                             J.T @ per_seed[:, 0].mean(0))
    norm = np.linalg.norm(delta)
    if norm > MAX_STEP:
        delta *= MAX_STEP / norm
    gram = cross_seed_gram(jacobians) if len(seeds) > 1 else J.T @ J
    return delta, d2, gram / m


def _resume(path, K: int, d: int, steps: int) -> dict | None:
    if path is None or not Path(path).is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        state = {k: saved[k] for k in saved.files}
    if state["iterates"].shape != (steps + 1, K, d):
        raise UserError(f"{path} is a checkpoint of another refinement (starts or steps differ); "
                        "remove it to start afresh")
    state["step"], state["seconds"] = int(state["step"]), float(state["seconds"])
    state["status"] = state["status"].astype("U8")
    state["messages"] = state["messages"].astype("U200")
    return state
