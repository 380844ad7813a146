"""Populations coupled through the table: the run from rest, equilibria, stability, bursting.

For a batch of θ at once, on the rate + adaptation dynamics

    τ_eff ν̇ = −ν + Φ(ν, w),   τ_w ẇ = −w + a(μ_V − v_rest) + b τ_w ν:

1. **The run from rest** (ν = 0, w = 0: the simulator's start; its first 0.1 s with the
   synaptic conductances and membranes starting at rest too, ``start_from_rest``), integrated
   for the run's duration (at most 5 s): the status mirrors the early stop (mean E rate ×
   t_ref over the probe window vs 1e-4 / 0.99; from a probe-window run at the finer
   ``STATUS_DT``), the rates are means over the analysis window (from at most
   ``RATE_START``). This matters: with τ_w up to 20 s, adaptation is far from its adiabatic
   mean within a run.
   The status needs only the probe window, always integrated in full (``undetermined`` only
   if the integration fails); a run that neither settles nor cycles before the horizon keeps
   its regime undetermined ("") and its rates are flagged ``unsettled`` — never a guess. A
   limit cycle (≥ 3 prominent peaks) is ``bursting``, its period the inter-burst interval.
2. **Equilibria**: damped, Anderson-accelerated fixed-point iteration ν ← ν + α(Φ(ν) − ν)
   (adaptation at its adiabatic mean) from the saturated start (1/t_ref), with stability from
   the Jacobian; a stable state other than where the run settles is ``multistable``.
   (``fixed_point`` also serves quiet or drive-only starts.)
3. **Loop gain** of the fast (rate) subsystem where the run ends, adaptation frozen: the
   largest real part of the eigenvalues of ∂Φ/∂ν. Near 1 the state is close to the fold
   where recurrent excitation ignites the network (above 1 only adaptation holds it): a
   finite, noisy network there re-ignites and adapts in bursts where the deterministic rate
   model settles — on its own it ranks runs with valid bursts only weakly (AUC 0.60–0.69 on
   two N = 2000 banks; docs/cheap.md, "At the spec's protocol").
4. **Burst score** ln(T/τ_w) + loop gain, T the analysed window: a finite network bursts
   when its fast subsystem re-ignites readily (loop gain near or above 1) *and* its E
   adaptation recovers within the window often enough for two bursts (T/τ_w cycles);
   −inf without adaptation (τ_w = ∞).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .moments import Drive, free_mean

ALPHA, TOL, MAX_ITER, DEPTH = 0.2, 1e-4, 300, 5
ABS_TOL = 1e-6  # Hz: rates below this are zero for convergence purposes
SILENT, RUNAWAY = 1e-4, 0.99
#: Step of the run from rest: exponential Euler for w (exact relaxation), ν relaxed towards Φ
#: by at most half the gap per step (a map iterated without damping would oscillate with period
#: 2 dt when τ_eff ≪ dt). Resolves bursts, not fast (gamma) oscillations, which are out of scope.
INTEGRATION_DT = 1e-2
#: Step of the probe-window run that decides the status: MK1's runaway is decided by the 1–2 %
#: of the probe second before a network saturates, which 10 ms steps do not resolve
#: (docs/cheap.md, "Why runaway is missed"). The rates keep the 10 ms run: at 5 ms throughout,
#: the ok-rate Spearman on our held-out banks fell from 0.48 / 0.58 to 0.37 / 0.51.
STATUS_DT = 5e-3
HORIZON = 5.0
#: The first ``START`` s of every run from rest are integrated in steps of ``START_DT``
#: (``STATUS_START_DT`` in the status run) with the synapses and membranes starting from rest
#: (:func:`start_from_rest`): whether the driven E population fires a first volley, whose
#: adaptation outlives a run where τ_w is seconds long, is a race between the E and I membranes
#: charging that 10 ms steps from zero rates get wrong (docs/cheap.md, "The first volley").
#: The steps divide INTEGRATION_DT and STATUS_DT; the rates' asynchronous error is the same at
#: 1 and 2 ms and 0.01 decades larger at 2.5 ms; the statuses are the same at 1–2.5 ms.
START, START_DT, STATUS_START_DT = 0.1, 2e-3, 2.5e-3
#: The rates are averaged from at most this time (s), even when the simulator's analysis
#: starts later: after the first few hundred ms the run from rest lets adaptation pull 15–26 %
#: of the ok runs towards quiet, which the finite, noisy networks do not follow (their rates
#: stay near the model's early ones). On four fit banks (1 s probes and 4.5 s rounds analysed
#: from 0.5 s) the ok-rate Spearman is 0.48–0.59 averaged from 0.5 s, 0.82–0.93 from 0.1 s
#: (docs/cheap.md, "Rates of runs analysed late").
RATE_START = 0.1


@dataclass(frozen=True)
class Protocol:
    """What the simulator measures: probe window, run duration, analysis start (s)."""

    probe: float = 1.0
    duration: float = 10.0
    t_start: float = 0.1

    @classmethod
    def of_spec(cls, spec) -> "Protocol":
        return cls(min(spec.probe, spec.duration), spec.duration,
                   min(spec.t_analysis_start, RATE_START))


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
    iterations: np.ndarray     # of the saturated-start fixed point (0 where not needed)
    loop_gain: np.ndarray      # fast subsystem's gain where the run ends (nan: status only)
    burst_score: np.ndarray    # ln(T / E τ_w) + loop gain (nan: status only)
    flags: dict = field(default_factory=dict)

    def as_columns(self) -> dict:
        cols = {f"rate_{p}": self.rates[:, i] for i, p in enumerate(self.populations)}
        cols |= {f"cv_{p}": self.cv[:, i] for i, p in enumerate(self.populations)}
        cols["rate_units"] = self.flags["rate_units"]  # all neurons' mean (a recording's)
        return cols | {"rate_E": self.rate_E, "status": self.status, "regime": self.regime,
                       "margin": self.margin, "period": self.period,
                       "extrapolated": self.extrapolated, "iterations": self.iterations,
                       "loop_gain": self.loop_gain, "burst_score": self.burst_score}


def _map(net, x, index):
    w = net.adiabatic(x, index)
    return net.evaluate(x, w, index, cv=False)[0]


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
    # the network sliced to the active rows whenever they halve (slicing every parameter
    # on each of up to 300 iterations would cost more than the few rows left)
    sub, members, position = net, B, np.arange(B)
    for it in range(max_iter):
        xa = x[active]
        fa = _map(sub, xa, position[active])
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
        if len(active) < members // 2:
            sub, members = sub.take(position[active]), len(active)
            position[active] = np.arange(len(active))
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
        out, _, _, tau, target = net.evaluate(nu, ww, index, cv=False)
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


def rate_jacobian(phi, rates, absolute: float) -> np.ndarray:
    """∂phi/∂ν (b, P, P; column k: ∂phi/∂ν_k) of a map of the rates (b, P) → (b, P), by
    central differences of 10⁻³ relative + ``absolute`` (Hz) in ν, clipped at ν = 0."""
    b, P = rates.shape
    jac = np.zeros((b, P, P))
    for k in range(P):
        h = 1e-3 * rates[:, k] + absolute
        up, down = rates.copy(), rates.copy()
        up[:, k] += h
        down[:, k] = np.maximum(rates[:, k] - h, 0.0)
        jac[:, :, k] = (phi(up) - phi(down)) / (up[:, k] - down[:, k])[:, None]
    return jac


def loop_gain(net, rates, w) -> np.ndarray:
    """Largest real part of the eigenvalues of ∂Φ/∂ν at (ν, w) with w frozen (steps of
    10⁻³ relative + 1 µHz)."""
    index = np.arange(len(rates))
    jac = rate_jacobian(lambda nu: net.evaluate(nu, w, index, cv=False)[0], rates, 1e-6)
    return np.max(np.linalg.eigvals(np.nan_to_num(jac)).real, axis=-1)


def burst_score(loop_gain, tau_w, window) -> np.ndarray:
    """ln(window / τ_w) + loop gain: adaptation cycles that fit in the analysed ``window`` (s)
    and the fast subsystem's readiness to re-ignite (docs/cheap.md, "Bursts")."""
    with np.errstate(divide="ignore"):
        return np.log(window / np.asarray(tau_w, float)) + np.asarray(loop_gain, float)


def start_from_rest(net, duration: float = START, fine: float = START_DT) -> tuple:
    """The first ``duration`` s from rest at steps of ``fine`` s: ν and w at its end, and ν at
    every step (steps, B, P).

    As in the simulator, nothing starts at its stationary state: each population's synaptic
    conductances rise from zero over τ_e and τ_i towards what the current rates imply, and its
    mean membrane potential relaxes from v_rest towards the free mean over τ_eff. The rate is
    the table's at that state (the lag of the membrane enters as the current that holds the
    free mean there, added to w), and w relaxes towards a(μ − v_rest) + bτ_wν."""
    B, P = net.max_rate.shape
    n = net.neuron()
    rise_e, rise_i = 1.0 - np.exp(-fine / n.tau_e), 1.0 - np.exp(-fine / n.tau_i)
    finite = np.isfinite(net.tau_w)
    w_decay = np.exp(-fine / np.where(finite, net.tau_w, 1.0))
    nu, w = np.zeros((B, P)), np.zeros((B, P))
    g = Drive(*(np.zeros((B, P)) for _ in range(4)))
    mu = np.broadcast_to(n.v_rest, (B, P)).astype(float)
    means = np.zeros((int(round(duration / fine)), B, P))
    for s in range(len(means)):
        implied = net.drives(nu)
        g = Drive(g.e1 + rise_e * (implied.e1 - g.e1), g.e2 + rise_e * (implied.e2 - g.e2),
                  g.i1 + rise_i * (implied.i1 - g.i1), g.i2 + rise_i * (implied.i2 - g.i2))
        mu_G, mu_V = free_mean(n, g, w)
        mu = mu_V + (mu - mu_V) * np.exp(-fine * mu_G / n.C)
        nu, _, _, _, target = net.evaluate(nu, w + (mu_V - mu) * mu_G, cv=False, drive=g)
        w = np.where(finite, target + (w - target) * w_decay, w)
        means[s] = nu
    return nu, w, means


def run_from_rest(net, protocol: Protocol, dt=INTEGRATION_DT, horizon=HORIZON, block=0.25,
                  start=START, start_dt=START_DT):
    """Integrate the rate + adaptation dynamics from rest for min(duration, horizon).

    Rows whose status rate varies < 1 % over a ``block`` are frozen (their remaining time
    counts at the final value). Returns a dict: probe-window mean status rate, analysis-window
    mean rates per population, final ν and w, ``finished`` (settled or the whole run
    integrated), ``period`` (s, NaN unless a limit cycle) and the trace (float32). Where the
    network has conductances the first ``start`` s are :func:`start_from_rest` at steps of
    ``start_dt`` (``start=0``: from zero rates at ``dt`` throughout, as before session 35)."""
    B, P = net.max_rate.shape
    end = min(protocol.duration, horizon)
    steps = max(int(round(end / dt)), 1)
    n_probe = max(int(round(protocol.probe / dt)), 1)
    first = min(int(round(protocol.t_start / dt)), steps - 1)
    n_analysis = max(int(round(protocol.duration / dt)) - first, 1)
    probe_sum, analysis_sum = np.zeros(B), np.zeros((B, P))
    trace = np.full((steps, B), np.nan, np.float32)
    n_start = min(int(round(start / dt)), steps) if net.conductances else 0
    if n_start:
        k = int(round(dt / start_dt))
        if k < 1 or abs(k * start_dt - dt) > 1e-9 * dt:
            raise ValueError(f"the start's step {start_dt} s does not divide dt = {dt} s")
        nu, w, fine_means = start_from_rest(net, n_start * dt, start_dt)
        start_means = fine_means.reshape(n_start, k, B, P).mean(1)
        for s in range(n_start):
            rate = net.status_rate(start_means[s])
            trace[s] = rate
            probe_sum += rate if s < n_probe else 0.0
            analysis_sum += start_means[s] if s >= first else 0.0
    else:
        nu, w = np.zeros((B, P)), np.zeros((B, P))
    settled = np.zeros(B, bool)
    live = np.arange(B)
    per_block = max(int(round(block / dt)), 2)
    finite_w = np.isfinite(net.tau_w)
    w_decay = np.exp(-dt / np.where(finite_w, net.tau_w, 1.0))
    # the live rows' state and network, re-sliced only when rows freeze (not every step)
    sub, nu_l, w_l, probe_l, analysis_l = net, nu.copy(), w.copy(), probe_sum.copy(), analysis_sum.copy()
    fw_l, decay_l, ew_l = finite_w, w_decay, net.excitatory_weights
    for s in range(n_start, steps):
        out, _, _, tau, target = sub.evaluate(nu_l, w_l, cv=False)
        gain = np.minimum(1.0 - np.exp(-dt / tau), 0.5)
        nu_l = nu_l + gain * (out - nu_l)
        w_l = np.where(fw_l, target + (w_l - target) * decay_l, w_l)
        rate = np.sum(nu_l * ew_l, -1)
        trace[s, live] = rate
        if s < n_probe:
            probe_l += rate
        if s >= first:
            analysis_l += nu_l
        if (s + 1) % per_block == 0 and s >= per_block:
            recent = trace[s + 1 - per_block:s + 1, live].astype(float)
            still = recent.max(0) - recent.min(0) <= 0.01 * (recent.mean(0) + 1e-3)
            if still.any():
                # A steady rate is not enough: on a plateau (saturated at the refractory limit,
                # or silent) the rate ignores a still-drifting adaptation until w tips it over.
                # Frozen only if w relaxed to where the run ends would not move the rate.
                left = (steps - s - 1) * dt
                k = np.flatnonzero(still)
                w_end = np.where(fw_l[k], target[k] + (w_l[k] - target[k]) * decay_l[k] ** (left / dt),
                                 w_l[k])
                moved = sub.take(k).evaluate(nu_l[k], w_end, cv=False)[0]
                rate_end = np.sum(moved * ew_l[k], -1)
                still[k] = np.abs(rate_end - rate[k]) <= 0.01 * (rate[k] + 1e-3)
            if not still.any():
                continue
            nu[live], w[live], probe_sum[live], analysis_sum[live] = nu_l, w_l, probe_l, analysis_l
            frozen = live[still]
            settled[frozen] = True
            _fill(frozen, s, nu, net.excitatory_weights, probe_sum, analysis_sum, n_probe, first, n_analysis)
            moving = ~still
            live = live[moving]
            if len(live) == 0:
                break
            sub = sub.take(moving)
            nu_l, w_l, probe_l, analysis_l = nu_l[moving], w_l[moving], probe_l[moving], analysis_l[moving]
            fw_l, decay_l, ew_l = fw_l[moving], decay_l[moving], ew_l[moving]
    if len(live):
        nu[live], w[live], probe_sum[live], analysis_sum[live] = nu_l, w_l, probe_l, analysis_l
    _fill(live, steps - 1, nu, net.excitatory_weights, probe_sum, analysis_sum, n_probe, first, n_analysis)
    period = np.full(B, np.nan)
    if len(live):
        period[live] = _periods(trace[:, live], dt)
    finished = settled | (steps * dt >= protocol.duration - 1e-9) | np.isfinite(period)
    return {"probe_rate": probe_sum / n_probe, "rates": analysis_sum / n_analysis, "nu": nu, "w": w,
            "finished": finished, "settled": settled, "period": period, "trace": trace}


def _fill(rows, s, nu, weights, probe_sum, analysis_sum, n_probe, first, n_analysis):
    """Steps after ``s`` count at the rows' final rates (frozen, or the horizon reached)."""
    if len(rows) == 0:
        return
    done = s + 1
    probe_sum[rows] += max(n_probe - done, 0) * np.sum(nu[rows] * weights[rows], -1)
    analysis_sum[rows] += max(n_analysis - max(done - first, 0), 0) * nu[rows]


def _periods(trace, dt):
    """Limit-cycle period per column (NaN unless ≥ 3 prominent peaks after the first second)."""
    from scipy.signal import find_peaks

    skip = int(round(1.0 / dt))
    out = np.full(trace.shape[1], np.nan)
    for j in range(trace.shape[1]):
        x = trace[skip:, j].astype(float)
        x = x[np.isfinite(x)]
        if len(x) < 10 or x.max() - x.min() <= 0.05 * (abs(x.mean()) + 1e-3):
            continue
        peaks, _ = find_peaks(x, prominence=0.5 * (x.max() - x.min()))
        if len(peaks) >= 3:
            out[j] = np.median(np.diff(peaks)) * dt
    return out


def solve(net, protocol: Protocol | None = None, silent=SILENT, runaway=RUNAWAY,
          max_iter=MAX_ITER, horizon=HORIZON, status_only=False) -> Prediction:
    """Predict status, regime and rates for every θ of the network's batch.

    ``status_only``: integrate the probe window only and skip the equilibria (what a screen
    needs; rates are then means over the probe window and regimes are left undetermined).
    The status comes from a probe-window run at ``STATUS_DT`` either way (same statuses)."""
    protocol = protocol or Protocol()
    B, P = net.max_rate.shape
    everyone = np.arange(B)
    probe_only = Protocol(protocol.probe, protocol.probe, 0.0)
    if status_only:
        horizon, protocol = protocol.probe, probe_only
        run = run_from_rest(net, protocol, dt=STATUS_DT, horizon=horizon,
                            start_dt=STATUS_START_DT)
        status_run = run
    else:
        run = run_from_rest(net, protocol, horizon=horizon)
        status_run = run_from_rest(net, probe_only, dt=STATUS_DT, horizon=probe_only.probe,
                                   start_dt=STATUS_START_DT)
    rates, w = run["rates"], run["w"]
    # The status needs only the probe window, which is always integrated in full; the regime
    # needs the run to settle or cycle before the horizon, else it stays undetermined ("").
    probe_integrated = min(protocol.duration, horizon) >= protocol.probe - 1e-9
    probe_rate = status_run["probe_rate"]
    known = np.isfinite(probe_rate) & np.all(np.isfinite(rates), -1) & \
        (run["settled"] | probe_integrated)
    regime = np.where(np.isfinite(run["period"]), "bursting", "async").astype(object)
    regime[~run["finished"]] = ""
    # equilibria: another stable state than where the run ends is multistability
    saturated, conv_s, iters = np.zeros((B, P)), np.zeros(B, bool), np.zeros(B, int)
    gain = np.full(B, np.nan)
    if status_only:
        regime[:] = ""
    else:
        with np.errstate(all="ignore"):
            gain = np.where(known, loop_gain(net, run["nu"], run["w"]), np.nan)
        # only where a second state could change the regime: async runs that settled
        rows = np.flatnonzero((regime == "async") & run["settled"])
        if len(rows):
            saturated[rows], conv_s[rows], iters[rows] = fixed_point(
                net.take(rows), net.max_rate[rows].copy(), max_iter=max_iter)
    end_rate = net.status_rate(run["nu"])
    for other, conv in ((saturated, conv_s),):
        differs = conv & (regime == "async") & run["settled"] & (
            np.abs(np.log10((net.status_rate(other) + 1e-3) / (end_rate + 1e-3))) > 0.1)
        if differs.any():
            idx = np.flatnonzero(differs)
            w_o = net.adiabatic(other[idx], idx)
            regime[idx[jacobian_stable(net, other[idx], w_o, idx)]] = "multistable"
    _, cv, extra, _, _ = net.evaluate(rates, w, everyone)
    rate_e = net.status_rate(rates)
    activity = probe_rate * net.t_refrac_probe
    status = np.where(activity < silent, "silent", np.where(activity > runaway, "runaway", "ok"))
    status = np.where(known, status, "undetermined").astype(object)
    regime = np.where(known, regime, "").astype(object)  # unsettled runs: rates are flagged
    log_a = np.log10(np.maximum(activity, 1e-30))
    margin = np.minimum(np.abs(log_a - np.log10(silent)), np.abs(log_a - np.log10(runaway)))
    margin = np.where(known, margin, np.nan)
    window = protocol.duration - protocol.t_start
    return Prediction(net.names, rates, rate_e, cv, w, status, regime, margin, run["period"],
                      np.any(extra, axis=-1), iters, gain,
                      burst_score(gain, net.tau_w[:, 0], window),
                      {"negative_leak": np.asarray(net.flag_negative_leak),
                       "probe_rate_E": probe_rate,
                       # every neuron's mean rate (rates' window): a recording's rate_mean
                       "rate_units": net.unit_rate(rates),
                       # the probe run's end state: what the status classifier reads
                       "probe_end_rate_E": net.status_rate(status_run["nu"]),
                       "probe_end_w": status_run["w"],
                       "unsettled": ~run["finished"]})
