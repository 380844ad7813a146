"""The cheap model's rate gradient against Brian2 finite differences (spec cheap-forward.md §4:
median angle ≤ 25° over 20 points, common random numbers).

At each point u (prior-standardised coordinates) every parameter j is moved to u ± h·e_j
(clipped to the prior box). Brian2 simulates both sides with the same seed (common random
numbers: the same graph draws and Poisson inputs as far as the parameters allow), once per
seed of ``seeds``; its gradient is the secant of log10 of the E rate over the analysed window.
The cheap model gives the secant of its predicted E rate (the mean over the same window, from
the run from rest) at the same θ±, the derivative of that prediction at the point, and its
linear response at the point's equilibrium (what ``invariance --cheap`` uses where the
network is asynchronous). Reported per point: the angle of each to Brian2's gradient (the mean
over seeds), and the angle between two seeds' Brian2 gradients (the noise floor: an estimate
cannot be told from Brian2 better than its own repeat agrees).
Components where a side is not ``ok`` in either model are left out of every angle.
"""

from __future__ import annotations

import numpy as np

from ..prior import STANDARDISED_EDGE
from .solve import Protocol

#: spec cheap-forward.md §4: median angle ≤ 25° over 20 points
TARGET_DEGREES = 25.0
TARGET_POINTS = 20
#: a bank run's rate may be this factor outside the rate range and still be a candidate
RATE_SLACK = 2.0


def sides(prior, u: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """θ at u ± step·e_j clipped to the prior box: ``up`` and ``down`` (n, d, d) — row [i, j]
    is point i with parameter j moved — and the spans (n, d) in standardised units."""
    u = np.atleast_2d(np.asarray(u, float))
    n, d = u.shape
    shifted, edge = [], STANDARDISED_EDGE
    for sign in (1, -1):
        v = np.repeat(u[:, None, :], d, axis=1)
        v[:, np.arange(d), np.arange(d)] = np.clip(u + sign * step, -edge, edge)
        shifted.append(v)
    span = shifted[0][:, np.arange(d), np.arange(d)] - shifted[1][:, np.arange(d), np.arange(d)]
    up, down = (np.clip(prior.destandardise(v), prior.low, prior.high) for v in shifted)
    return up, down, span


def secant(log_up: np.ndarray, log_down: np.ndarray, span: np.ndarray) -> np.ndarray:
    """d log10 ν / du from the two sides (n, d); NaN where a side is NaN or the span is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, (log_up - log_down) / span, np.nan)


def angle_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (degrees, 0–180) between rows of a and b over the components finite in both."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(keep, a, 0.0), np.where(keep, b, 0.0)
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > 0, np.sum(a * b, axis=1) / norm, np.nan)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def cheap_gradients(model, u: np.ndarray, step: float) -> dict:
    """The cheap model's d log10 ν_E / du at u (n, d): ``secant`` over the same sides as the
    simulations, ``derivative`` (of the same prediction, 10⁻³ of the prior widths), and
    ``linear_response`` at the point's equilibrium (NaN rows where it has none)."""
    prior = model.prior
    u = np.atleast_2d(np.asarray(u, float))
    n, d = u.shape
    up, down, span = sides(prior, u, step)
    pred = model.predict(np.concatenate([up.reshape(-1, d), down.reshape(-1, d)]))
    log_rate = np.where(pred.status == "ok", np.log10(np.maximum(pred.rate_E, 1e-30)), np.nan)
    log_up, log_down = log_rate.reshape(2, n, d)
    theta = prior.destandardise(u)
    dtheta_du = prior.dtheta_du(u)
    return {"secant": secant(log_up, log_down, span),
            "derivative": model.rate_gradient(theta) * dtheta_du,
            "linear_response": model.rate_response(theta)["rate_E"] * dtheta_du}


def analysed_log_rate(result, t_start: float) -> float:
    """log10 of the E population's rate after ``t_start`` (NaN unless ``ok`` and active)."""
    if result.status != "ok" or result.t_end <= t_start:
        return float("nan")
    times = result.spikes["E"][0]
    rate = np.count_nonzero(times >= t_start) / (result.n_units["E"] * (result.t_end - t_start))
    return float(np.log10(rate)) if rate > 0 else float("nan")


def simulate_log_rates(spec, prior, thetas: np.ndarray, seeds, workers: int = 1,
                       dask: str | None = None, analysed_from: float | None = None,
                       progress: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Statuses and ``analysed_log_rate`` of θ rows simulated with the given per-row seeds,
    from ``analysed_from`` (s), by default where the cheap model's rates start
    (``solve.Protocol``: the spec's analysis start, at most ``solve.RATE_START``), so that
    both measure the same window. ``progress``: a progress bar's label."""
    from ..simulators.engine import CompiledModel
    from ..simulators.execution import make_jobs, simulate_jobs

    compiled = str(CompiledModel.for_spec(spec).directory)
    results = simulate_jobs(spec, compiled, make_jobs(prior, thetas, spec.duration, seeds=seeds),
                            workers, dask, progress=progress)
    start = Protocol.of_spec(spec).t_start if analysed_from is None else analysed_from
    return (np.array([r.status for r in results]),
            np.array([analysed_log_rate(r, start) for r in results]))


def point_seeds(seed: int, points) -> list[int]:
    """One seed per point (common to all its sides), derived from ``seed`` and the point's
    number among the candidates."""
    from ..simulators.execution import simulation_seed

    return [simulation_seed(int(seed), int(i)) for i in points]


def simulated_gradients(spec, prior, u: np.ndarray, step: float, seeds, workers: int = 1,
                        dask: str | None = None, progress: bool = False, points=None,
                        analysed_from: float | None = None) -> tuple[np.ndarray, dict]:
    """Brian2's d log10 ν_E / du (n_seeds, n, d): both sides of every parameter of every
    point simulated with one seed per (seed, point), and the sides' status counts.
    ``points``: the points' numbers for their seeds (default 0..n-1); ``progress``: bars."""
    u = np.atleast_2d(np.asarray(u, float))
    n, d = u.shape
    points = range(n) if points is None else points
    up, down, span = sides(prior, u, step)
    thetas = np.concatenate([up, down], axis=1).reshape(-1, d)  # point-major: (n, 2d)
    out = np.full((len(seeds), n, d), np.nan)
    statuses = {}
    for s, seed in enumerate(seeds):
        status, log_rate = simulate_log_rates(spec, prior, thetas,
                                              np.repeat(point_seeds(seed, points), 2 * d),
                                              workers, dask, analysed_from,
                                              f"seed {seed}: both sides" if progress else None)
        log_up, log_down = log_rate.reshape(n, 2, d).transpose(1, 0, 2)
        out[s] = secant(log_up, log_down, span)
        statuses[str(seed)] = {str(k): int(np.sum(status == k)) for k in np.unique(status)}
    return out, statuses


def usable_points(spec, prior, u: np.ndarray, seed: int, rate_range=(1.0, 30.0),
                  workers: int = 1, dask: str | None = None, points=None,
                  analysed_from: float | None = None,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Which candidate points (standardised u; ``points`` their numbers, for the seeds) are
    simulated ``ok`` with an E rate in ``rate_range`` (one run each, with the seed of their
    gradient's first run): the mask and the simulated log10 rates."""
    theta = prior.destandardise(np.atleast_2d(u))
    points = range(len(theta)) if points is None else points
    status, log_rate = simulate_log_rates(spec, prior, theta, point_seeds(seed, points),
                                          workers, dask, analysed_from,
                                          "centres" if progress else None)
    with np.errstate(invalid="ignore"):
        inside = (log_rate >= np.log10(rate_range[0])) & (log_rate <= np.log10(rate_range[1]))
    return (status == "ok") & inside, log_rate


def gradient_check(model, spec, u: np.ndarray, n: int | None = None, step: float = 0.5,
                   seeds=(1, 2), rate_range=(1.0, 30.0), workers: int = 1,
                   dask: str | None = None, progress: bool = False,
                   analysed_from: float | None = None) -> dict:
    """The report (module docstring) on the first ``n`` of the candidate points u (standardised;
    all by default) that the cheap model predicts ``ok`` and asynchronous and that pass
    ``usable_points`` in ``spec`` (only predicted ones are simulated, in blocks of 2n, so that
    few more than needed are); ``model`` a CheapModel of ``spec`` and its prior; ``progress``:
    progress bars of the simulations."""
    prior = model.prior
    candidates = np.atleast_2d(np.asarray(u, float))
    pred = model.predict(prior.destandardise(candidates))
    said_usable = np.flatnonzero((pred.status == "ok") & (pred.regime == "async"))
    centre = np.full(len(candidates), np.nan)
    chosen, tried = [], 0
    block = max(2 * (n or len(candidates)), 8)
    for start in range(0, len(said_usable), block):
        if n is not None and len(chosen) >= n:
            break
        part = said_usable[start:start + block]
        keep, centre[part] = usable_points(spec, prior, candidates[part], seeds[0], rate_range,
                                           workers, dask, points=part,
                                           analysed_from=analysed_from, progress=progress)
        chosen.extend(part[keep])
        tried += len(part)
    chosen = np.asarray(chosen[:n], int)
    u = candidates[chosen]
    if not len(u):
        return {"candidates": len(candidates), "predicted_usable": len(said_usable),
                "centres_simulated": int(tried), "points": [],
                "angle_secant": {"n": 0}, "meets_target": False}
    simulated, statuses = simulated_gradients(spec, prior, u, step, seeds, workers, dask,
                                              progress, points=chosen,
                                              analysed_from=analysed_from)
    finite = np.isfinite(simulated)
    with np.errstate(invalid="ignore"):
        brian2 = np.where(finite.any(0), np.nansum(simulated, 0) / finite.sum(0), np.nan)
    cheap = cheap_gradients(model, u, step)
    angles = {name: angle_degrees(g, brian2) for name, g in cheap.items()}
    repeat = (angle_degrees(simulated[0], simulated[1]) if len(seeds) > 1
              else np.full(len(u), np.nan))
    # two seeds' errors ε differ by √2·|ε| across g, a seed mean's by |ε|/√S: the angle the
    # mean makes with the noise-free gradient is tan φ ≈ tan(repeat angle) / √(2S)
    noise = np.degrees(np.arctan(np.tan(np.radians(np.minimum(repeat, 89.9)))
                                 / np.sqrt(2 * len(seeds))))
    theta = prior.destandardise(u)
    predicted = pred.rate_E[chosen]
    tau_w = slowest_adaptation(prior, theta)
    names = list(prior.names)
    points = [{"u": row.tolist(), "candidate": int(c),
               "simulated_rate_E": float(10 ** centre[c]), "predicted_rate_E": float(r),
               "tau_w": float(t),
               "angle_secant": float(a), "angle_derivative": float(dv),
               "angle_linear_response": float(b),
               "angle_seed_repeat": float(e), "components": int(k),
               "largest": names[int(np.nanargmax(np.abs(g)))] if np.isfinite(g).any() else None,
               "brian2": g.tolist(), "cheap_secant": sec.tolist()}
              for row, c, r, t, a, dv, b, e, k, g, sec in zip(
                  u, chosen, predicted, tau_w, angles["secant"], angles["derivative"],
                  angles["linear_response"],
                  repeat, (np.isfinite(brian2) & np.isfinite(cheap["secant"])).sum(1), brian2,
                  cheap["secant"])]
    median = _summary(angles["secant"])["median"]
    return {"step": step, "seeds": [int(s) for s in seeds], "rate_range": list(rate_range),
            "analysed_from": (Protocol.of_spec(spec).t_start if analysed_from is None
                              else analysed_from),
            "candidates": len(candidates), "predicted_usable": len(said_usable),
            "centres_simulated": int(tried),
            "parameters": names, "points": points,
            "simulations": int(tried + len(seeds) * u.size * 2),
            "statuses": statuses,
            "angle_secant": _summary(angles["secant"]),
            "angle_derivative": _summary(angles["derivative"]),
            "angle_linear_response": _summary(angles["linear_response"]),
            "angle_seed_repeat": _summary(repeat), "noise_floor": _summary(noise),
            "target_degrees": TARGET_DEGREES, "target_points": TARGET_POINTS,
            "meets_target": bool(median is not None and median <= TARGET_DEGREES
                                 and len(points) >= TARGET_POINTS)}


def secant_angles_by(points: list[dict], key: str) -> dict:
    """The secant angle's summary over the points grouped by ``point[key]``."""
    groups = sorted({str(p[key]) for p in points})
    return {g: _summary([p["angle_secant"] for p in points if str(p[key]) == g]) for g in groups}


def _summary(values) -> dict:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"median": None, "q25": None, "q75": None, "n": 0}
    return {"median": float(np.median(v)), "q25": float(np.percentile(v, 25)),
            "q75": float(np.percentile(v, 75)), "n": int(len(v))}


def slowest_adaptation(prior, theta: np.ndarray) -> np.ndarray:
    """The longest adaptation time constant (s) among θ's parameters and constants (names
    ending in ``tau_w``); 0 where there is none."""
    from .screen import theta_to_si

    values = [v for k, v in theta_to_si(prior, theta).items() if k.endswith("tau_w")]
    return np.max(values, axis=0) if values else np.zeros(len(np.atleast_2d(theta)))


def candidate_points(bank, max_tau_w: float | None = None, synchronous: bool = False,
                     rate_range=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bank indices in bank order, θ rows, Brian2 regime labels) of the bank's ``ok`` runs
    that are asynchronous in Brian2 (``synchronous``: or synchronous, i.e. any but quiet; by
    their features where the bank has them, ``regimes.simulated_labels``, else 'unknown') whose
    E rate lies within a factor ``RATE_SLACK`` of ``rate_range`` if given (the re-simulation's
    seed and window differ), and whose adaptation is faster than ``max_tau_w`` seconds if
    given (a run several times τ_w long reaches the stationary state the cheap model
    predicts)."""
    from ..prior import Prior
    from .regimes import bank_regime_features, simulated_labels

    rows = bank.table()
    keep = rows["status"] == "ok"
    label = np.full(len(keep), "unknown", dtype=object)
    if max_tau_w is not None:
        keep &= slowest_adaptation(Prior.from_dict(bank.meta["prior"]), rows["theta"]) <= max_tau_w
    found = bank_regime_features(bank, rows["index"])
    if found is not None:
        f = found[1]
        label[:] = simulated_labels(f["rate_mean"], f["corr_mean"], f["burst_num"])
        keep &= (label != "quiet") if synchronous else (label == "asynchronous")
    if rate_range is not None:
        with np.errstate(invalid="ignore"):
            keep &= ((rows["rate_E"] >= rate_range[0] / RATE_SLACK)
                     & (rows["rate_E"] <= rate_range[1] * RATE_SLACK))
    return np.asarray(rows["index"])[keep], np.asarray(rows["theta"])[keep], label[keep]


def plot(report: dict, path) -> None:
    """Left: each point's angle to Brian2's gradient against its slowest adaptation time
    constant (secant, linear response, and the seed-repeat noise), the target as a line;
    right: every component of the cheap secant against Brian2's."""
    from ..plots import _pyplot

    plt = _pyplot()
    points = report["points"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    tau = np.array([p["tau_w"] for p in points])
    adapting = bool((tau > 0).all())  # else (Brunel) the points in order
    x = tau if adapting else np.arange(len(points))
    for key, label, style in (("angle_secant", "cheap secant", "o"),
                              ("angle_linear_response", "linear response", "x"),
                              ("angle_seed_repeat", "Brian2 seed repeat", ".")):
        left.plot(x, [p[key] for p in points], style, label=label)
    left.axhline(report["target_degrees"], color="grey", ls="--", lw=1)
    left.set(xscale="log" if adapting else "linear",
             xlabel="slowest adaptation τ_w (s)" if adapting else "point",
             ylabel="angle to Brian2 (°)", ylim=(0, 180),
             title=f"{len(points)} points, step {report['step']} sd")
    if adapting:  # a narrow log axis would label every minor tick on top of the others
        from matplotlib.ticker import NullFormatter

        left.xaxis.set_minor_formatter(NullFormatter())
    left.legend(fontsize=8)
    b = np.concatenate([p["brian2"] for p in points])
    c = np.concatenate([p["cheap_secant"] for p in points])
    right.plot(b, c, ".", alpha=0.5)
    lim = np.nanmax(np.abs(np.concatenate([b, c]))) if np.isfinite(b).any() else 1.0
    right.plot([-lim, lim], [-lim, lim], color="grey", lw=1)
    right.set(xlabel="Brian2 d log10 ν_E / du", ylabel="cheap d log10 ν_E / du",
              title="every parameter of every point")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
