"""Joint equilibrium of populations coupled through the table; stability; bursting.

For a batch of θ at once: damped, Anderson-accelerated fixed-point iteration
ν ← ν + α(Φ(ν) − ν) (adaptation at its adiabatic mean) from the quiet (ν = 0, the
simulator's start), drive-only (ν = Φ(0)) and saturated (1/t_ref) starts; stability from
the Jacobian of

    τ_eff ν̇ = −ν + Φ(ν, w),   τ_w ẇ = −w + a(μ_V − v_rest) + b τ_w ν;

a quiet-start equilibrium that is unstable (or not reached) is integrated for 5 s: a limit
cycle is ``bursting`` with its period, a settled trajectory gives the equilibrium, anything
else is ``undetermined`` — never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ALPHA, TOL, MAX_ITER, DEPTH = 0.2, 1e-4, 300, 5
ABS_TOL = 1e-6  # Hz: rates below this are zero for convergence purposes
SILENT, RUNAWAY = 1e-4, 0.99
#: Exponential-Euler step of the 5 s integration (exact relaxation per step, so stable for
#: any τ_eff; it resolves bursts slower than ~10 ms, not fast oscillations, which are out of scope).
INTEGRATION_DT = 2e-3  # the simulators' early-stop thresholds on ν_E · t_ref


@dataclass
class Prediction:
    """Per-θ outputs (arrays over the batch; per population along the last axis)."""

    populations: tuple
    rates: np.ndarray          # Hz, (B, P) quiet-start equilibrium (cycle mean when bursting)
    rate_E: np.ndarray         # Hz, the status rate (E populations weighted by size)
    cv: np.ndarray             # ISI CV per population
    w: np.ndarray              # adaptation current per population, A
    status: np.ndarray         # silent / ok / runaway / undetermined
    regime: np.ndarray         # async / bursting / multistable / "" when undetermined
    margin: np.ndarray         # log10 distance of ν_E t_ref to the nearest status threshold
    period: np.ndarray         # s, inter-burst interval (nan unless bursting)
    extrapolated: np.ndarray   # any table lookup at the solution outside the table
    iterations: np.ndarray
    flags: dict = field(default_factory=dict)

    def as_columns(self) -> dict:
        cols = {f"rate_{p}": self.rates[:, i] for i, p in enumerate(self.populations)}
        cols |= {f"cv_{p}": self.cv[:, i] for i, p in enumerate(self.populations)}
        return cols | {"rate_E": self.rate_E, "status": self.status, "regime": self.regime,
                       "margin": self.margin, "period": self.period,
                       "extrapolated": self.extrapolated, "iterations": self.iterations}


def _map(net, x, index):
    w = net.adiabatic(x, index)
    return net.evaluate(x, w, index)[0]


def fixed_point(net, start: np.ndarray, alpha=ALPHA, tol=TOL, max_iter=MAX_ITER, depth=DEPTH):
    """Anderson-accelerated damped iteration for every row of ``start``; returns
    (ν*, converged, iterations)."""
    x = np.array(start, float)
    B, P = x.shape
    converged = np.zeros(B, bool)
    iterations = np.full(B, max_iter)
    hist_dx = np.zeros((B, depth, P))
    hist_dg = np.zeros((B, depth, P))
    prev_x, prev_g = np.zeros((B, P)), np.zeros((B, P))
    active = np.arange(B)
    vmax = net.max_rate
    for it in range(max_iter):
        xa = x[active]
        fa = _map(net, xa, active)
        g = fa - xa
        done = np.all(np.abs(g) <= tol * np.maximum(np.abs(fa), np.abs(xa)) + ABS_TOL, axis=-1)
        done |= ~np.all(np.isfinite(fa), axis=-1)  # reported unconverged below
        finished = active[done]
        ok = np.all(np.isfinite(fa[done]), axis=-1)
        x[finished[ok]] = fa[done][ok]
        converged[finished[ok]] = True
        iterations[finished] = it + 1
        keep = ~done
        active, xa, g = active[keep], xa[keep], g[keep]
        if len(active) == 0:
            break
        if it > 0:
            slot = it % depth
            hist_dx[active, slot] = xa - prev_x[active]
            hist_dg[active, slot] = g - prev_g[active]
        prev_x[active], prev_g[active] = xa, g
        dg, dx = hist_dg[active], hist_dx[active]
        gram = np.einsum("bmp,bnp->bmn", dg, dg)
        reg = 1e-10 * np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-300
        gram = gram + reg * np.eye(depth)
        gamma = np.linalg.solve(gram, np.einsum("bmp,bp->bm", dg, g)[..., None])[..., 0]
        step = xa + alpha * g - np.einsum("bm,bmp->bp", gamma, dx + alpha * dg)
        plain = xa + alpha * g
        # Anderson is a secant method: far from the root it can jump backwards or out of the
        # physical range; then take the damped step and forget the history.
        sane = np.all(np.isfinite(step), axis=-1) & (np.sum((step - xa) * g, axis=-1) > 0) & \
            np.all((step >= 0) & (step <= vmax[active]), axis=-1)
        step = np.where(sane[:, None], step, plain)
        hist_dx[active[~sane]] = 0.0
        hist_dg[active[~sane]] = 0.0
        x[active] = np.clip(step, 0.0, vmax[active])
    return x, converged, iterations


def jacobian_stable(net, rates, w, index) -> np.ndarray:
    """Whether (ν, w) is a stable equilibrium of the rate + adaptation dynamics."""
    b, P = rates.shape
    state = np.concatenate([rates, w], axis=-1)

    def rhs(s):
        nu, ww = s[:, :P], s[:, P:]
        out, _, _, tau, target = net.evaluate(nu, ww, index)
        tau_w = net.tau_w[index]
        dw = np.where(np.isfinite(tau_w), (target - ww) / np.where(np.isfinite(tau_w), tau_w, 1.0), 0)
        return np.concatenate([(out - nu) / tau, dw], axis=-1)

    base = rhs(state)
    jac = np.zeros((b, 2 * P, 2 * P))
    for k in range(2 * P):
        h = np.where(k < P, 1e-3 * np.maximum(state[:, k], 0.1), 1e-3 * np.maximum(np.abs(state[:, k]), 1e-12))
        shifted = state.copy()
        shifted[:, k] += h
        jac[:, :, k] = (rhs(shifted) - base) / h[:, None]
    jac = np.nan_to_num(jac)
    return np.max(np.linalg.eigvals(jac).real, axis=-1) < 0


def integrate(net, index, duration=5.0, dt=INTEGRATION_DT, block=0.5):
    """Rate + adaptation dynamics from rest (ν = 0, w = 0), exponential Euler.

    Returns the status-rate trace after the first second (NaN once a row has settled: it
    stops being integrated when a whole ``block`` varies by < 1 %), the final (ν, w) and the
    time-averaged ν per population after the first second."""
    P = net.max_rate.shape[-1]
    n = len(index)
    nu, w = np.zeros((n, P)), np.zeros((n, P))
    tau_w = net.tau_w[index]
    steps, per_block, start = int(round(duration / dt)), int(round(block / dt)), int(round(1.0 / dt))
    trace = np.full((steps - start, n), np.nan)
    total, counted = np.zeros_like(nu), np.zeros(n)
    live = np.arange(n)
    for s in range(steps):
        out, _, _, tau, target = net.evaluate(nu[live], w[live], index[live])
        nu[live] = out + (nu[live] - out) * np.exp(-dt / tau)
        tw = tau_w[live]
        w[live] = np.where(np.isfinite(tw), target + (w[live] - target) * np.exp(-dt / tw), w[live])
        if s >= start:
            trace[s - start, live] = np.sum(nu[live] * net.excitatory_weights[index[live]], -1)
            total[live] += nu[live]
            counted[live] += 1
            if (s - start + 1) % per_block == 0:
                recent = trace[s - start + 1 - per_block:s - start + 1, live]
                still = recent.max(0) - recent.min(0) <= 0.01 * (recent.mean(0) + 1e-3)
                live = live[~still]
                if len(live) == 0:
                    break
    return trace, nu, w, total / np.maximum(counted, 1)[:, None]


def _limit_cycle(trace, dt):
    """(settled, period) of status-rate traces (NaN after a row settled): settled when the
    last half second varies < 5 %; period from ≥ 3 prominent peaks."""
    from scipy.signal import find_peaks

    settled = np.zeros(trace.shape[1], bool)
    period = np.full(trace.shape[1], np.nan)
    tail = int(round(0.5 / dt))
    for j in range(trace.shape[1]):
        x = trace[:, j][np.isfinite(trace[:, j])]
        last = x[-tail:]
        if last.max() - last.min() <= 0.05 * (abs(last.mean()) + 1e-3):
            settled[j] = True
            continue
        peaks, _ = find_peaks(x, prominence=0.5 * (x.max() - x.min()))
        if len(peaks) >= 3:
            period[j] = np.median(np.diff(peaks)) * dt
    return settled, period


def solve(net, silent=SILENT, runaway=RUNAWAY, integrate_unstable=True,
          max_iter=MAX_ITER) -> Prediction:
    """Predict status, regime and rates for every θ of the network's batch."""
    B, P = net.max_rate.shape
    everyone = np.arange(B)
    quiet, conv_q, iters = fixed_point(net, np.zeros((B, P)), max_iter=max_iter)
    drive_only, conv_d, _ = fixed_point(net, _map(net, np.zeros((B, P)), everyone),
                                        max_iter=max_iter)
    saturated, conv_s, _ = fixed_point(net, net.max_rate.copy(), max_iter=max_iter)
    w = net.adiabatic(quiet, everyone)
    stable = np.zeros(B, bool)
    if conv_q.any():
        idx = np.flatnonzero(conv_q)
        stable[idx] = jacobian_stable(net, quiet[idx], w[idx], idx)
    rates, status_known = quiet.copy(), conv_q & stable
    regime = np.where(status_known, "async", "").astype(object)
    period = np.full(B, np.nan)
    dt = INTEGRATION_DT
    todo = np.flatnonzero(~status_known)
    if integrate_unstable and len(todo):
        trace, nu_end, w_end, mean = integrate(net, todo, dt=dt)
        settled, cyc = _limit_cycle(trace, dt)
        rates[todo[settled]] = nu_end[settled]
        w[todo[settled]] = w_end[settled]
        regime[todo[settled]] = "async"
        bursting = ~settled & np.isfinite(cyc)
        rates[todo[bursting]] = mean[bursting]
        regime[todo[bursting]] = "bursting"
        period[todo[bursting]] = cyc[bursting]
        status_known[todo[settled | bursting]] = True
    # another stable state from the other starts: multistable (status still from rest)
    for other, conv in ((drive_only, conv_d), (saturated, conv_s)):
        differs = conv & status_known & (regime == "async") & (
            np.abs(np.log10((net.status_rate(other) + 1e-3) / (net.status_rate(rates) + 1e-3))) > 0.1)
        if differs.any():
            idx = np.flatnonzero(differs)
            w_o = net.adiabatic(other[idx], idx)
            regime[idx[jacobian_stable(net, other[idx], w_o, idx)]] = "multistable"
    _, cv, extra, _, _ = net.evaluate(rates, w, everyone)
    rate_e = net.status_rate(rates)
    activity = rate_e * net.t_refrac_probe
    status = np.where(activity < silent, "silent", np.where(activity > runaway, "runaway", "ok"))
    status = np.where(status_known, status, "undetermined").astype(object)
    log_a = np.log10(np.maximum(activity, 1e-30))
    margin = np.minimum(np.abs(log_a - np.log10(silent)), np.abs(log_a - np.log10(runaway)))
    margin = np.where(status_known, margin, np.nan)
    return Prediction(net.names, rates, rate_e, cv, w, status, regime, margin, period,
                      np.any(extra, axis=-1), iters,
                      {"negative_leak": np.asarray(net.flag_negative_leak)})
