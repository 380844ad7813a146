"""The reduction against full single neurons (spec cheap-forward.md §4 "Reduction").

Draws of MK1's E intrinsics (from the prior) and of Poisson conductance inputs: each is one
MK1 E neuron — the simulator's equations, forward Euler at its dt, threshold at v_T + 5ΔT,
adaptation — run in Brian2 under its own excitatory and inhibitory Poisson inputs, against
the cheap model's prediction for that neuron: Campbell moments with adaptation at its
self-consistent adiabatic value, the table's rate of the dimensionless inputs, and the
simulator's time-step correction, as ``networks.MK1Network`` evaluates a population.
Target: median |Δlog10 ν| ≤ 0.05 and 95th percentile ≤ 0.15 where ν ≥ 0.5 Hz; draws with
τ_w < 50 ms (adaptation not slow against the ISI) reported apart.

The prior's τ_w reaches 20 s, which no run of a few seconds brings to its stationary state, so
the check draws either no adaptation (a = b = 0: the table and the moment reduction alone) or
τ_w uniform up to ``tau_w_max`` with a transient of ten of them; draws with g_L + a ≤ 0 (no
adiabatic equilibrium, flagged by the model) are left out.
"""

from __future__ import annotations

import numpy as np

from ..simulators.mk1 import EQUATIONS as MK1_EQUATIONS
from .inhibition import slow_inhibition_rate, table_rate
from .moments import (Neuron, adiabatic_w, dimensionless, discrete_time_rate,
                      first_step_crossing, membrane, source, step_constants)

#: Hz: the targets hold where the simulated rate is at least this
MIN_RATE = 0.5
#: s: draws with a faster adaptation are reported apart (the adiabatic w̄ is approximate)
SLOW_TAU_W = 0.05
#: intrinsics drawn from the prior (E.*), as the MK1 simulator names them per neuron
INTRINSICS = ("C", "g_L", "v_rest", "v_thresh", "v_reset", "t_refrac", "delta_T", "a", "b",
              "tau_w", "E_gi", "tau_ge", "tau_gi")
#: Hz: the total excitatory / inhibitory input event rates are drawn log-uniformly in these
#: ranges (MK1's drive is 500 sources at 0.5–20 Hz; recurrent input adds K·ν)
EXC_RATES = (500.0, 30_000.0)
INH_RATES = (50.0, 10_000.0)

#: the simulator's own equations (``simulators/mk1.py``), with an inhibitory input rate beside
#: its excitatory ``lambda_ext`` (per step); the network's other variables stay unused
EQUATIONS = MK1_EQUATIONS + "lambda_i : 1 (constant)\n"


def draw(spec, prior, n: int, seed: int, adaptation: bool = True,
         tau_w_max: float = 0.5) -> dict:
    """n neurons: E intrinsics of prior draws (SI; τ_w uniform from the prior's low end to
    ``tau_w_max`` s, or a = b = 0 without ``adaptation``) and input rates (Hz) with the prior's
    E.Q_ge and E.Q_gi as quanta; g_L + a > 0 (the others are redrawn)."""
    rng = np.random.default_rng(seed)
    theta = prior.sample(4 * n, seed=seed)
    params = [prior.to_simulator(row) for row in theta]
    params = [p for p in params if p["E.g_L"] + p["E.a"] > 0][:n]
    out = {k: np.array([p[f"E.{k}"] for p in params]) for k in INTRINSICS}
    if adaptation:
        j = prior.names.index("E.tau_w")
        low = prior.low[j] * prior.parameters[j].si_factor
        out["tau_w"] = rng.uniform(low, tau_w_max, n)
    else:
        out["a"], out["b"] = np.zeros(n), np.zeros(n)
    out["Q_ge"] = np.array([p["E.Q_ge"] for p in params])
    out["Q_gi"] = np.array([p["E.Q_gi"] for p in params])
    out["rate_e"] = np.exp(rng.uniform(*np.log(EXC_RATES), n))
    out["rate_i"] = np.exp(rng.uniform(*np.log(INH_RATES), n))
    out["E_ge"] = np.full(n, spec.fixed["E_ge"])
    return out


def simulate(draws: dict, dt: float, duration: float, transient: float, seed: int) -> np.ndarray:
    """Rates (Hz) of the drawn neurons over [transient, duration], all in one Brian2 group
    (runtime mode, numpy target; independent neurons, independent inputs)."""
    import brian2 as b2

    target = b2.prefs.codegen.target
    b2.prefs.codegen.target = "numpy"  # no compiler needed; restored below (a global)
    try:
        return _simulate(b2, draws, dt, duration, transient, seed)
    finally:
        b2.prefs.codegen.target = target


def _simulate(b2, draws: dict, dt: float, duration: float, transient: float, seed: int):
    b2.seed(seed)
    n = len(draws["C"])
    G = b2.NeuronGroup(n, EQUATIONS, threshold="v > v_cut", reset="v = v_reset; w += b",
                       refractory="t_refrac", method="euler", clock=b2.Clock(dt * b2.second))
    units = {"C": b2.farad, "g_L": b2.siemens, "a": b2.siemens, "b": b2.amp,
             "Q_ge": b2.siemens, "Q_gi": b2.siemens, "t_refrac": b2.second, "tau_w": b2.second,
             "tau_ge": b2.second, "tau_gi": b2.second}
    for name in INTRINSICS + ("Q_ge", "Q_gi"):
        setattr(G, name, draws[name] * units.get(name, b2.volt))
    G.E_ge = draws["E_ge"][0] * b2.volt  # shared: the simulator's fixed reversal potential
    G.v_cut = (draws["v_thresh"] + 5 * draws["delta_T"]) * b2.volt
    G.lambda_ext = draws["rate_e"] * dt
    G.lambda_i = draws["rate_i"] * dt
    G.v = draws["v_rest"] * b2.volt
    G.run_regularly("g_e += Q_ge * poisson(lambda_ext)\ng_i += Q_gi * poisson(lambda_i)",
                    when="before_groups")
    network = b2.Network(G)
    network.run(transient * b2.second)
    monitor = b2.SpikeMonitor(G)
    network.add(monitor)
    network.run((duration - transient) * b2.second)
    return np.bincount(np.asarray(monitor.i), minlength=n) / (duration - transient)


def _neuron(draws: dict) -> Neuron:
    return Neuron(**{k: np.asarray(draws[k], float) for k in INTRINSICS
                     if k not in ("E_gi", "tau_ge", "tau_gi")},
                  tau_e=draws["tau_ge"], tau_i=draws["tau_gi"], E_e=draws["E_ge"],
                  E_i=draws["E_gi"])


def _drive(draws: dict):
    return (source(draws["rate_e"], draws["Q_ge"], True)
            + source(draws["rate_i"], draws["Q_gi"], False))


def predict(draws: dict, table, dt: float, iterations: int = 200,
            slow_inhibition: bool = False) -> np.ndarray:
    """The cheap model's rate (Hz) of each drawn neuron: ν = Φ(ν) with adaptation at its
    adiabatic value for ν (damped iteration from 0), then the time-step correction;
    ``slow_inhibition`` as in ``networks.MK1Network``."""
    neuron, drive = _neuron(draws), _drive(draws)
    nu = np.zeros(len(draws["C"]))
    for _ in range(iterations):
        w = adiabatic_w(neuron, drive, nu)
        new, mom = table_rate(table, neuron, drive, w)[:2]
        if slow_inhibition:
            new = slow_inhibition_rate(table, neuron, drive, w, new, mom)
        if np.allclose(new, nu, rtol=1e-6, atol=1e-9):
            break
        nu = 0.5 * nu + 0.5 * new
    crossing = first_step_crossing(step_constants(neuron, dt), drive, mom)
    return discrete_time_rate(nu, neuron.t_refrac, crossing, dt)


#: κ = τ_syn/τ_eff above which :func:`groups` calls the conductances quasi-static
SLOW_KAPPA = 10.0


def _adiabatic_moments(draws: dict, rate: np.ndarray):
    """(membrane moments, dimensionless inputs) of the drawn neurons with adaptation at its
    adiabatic value for ``rate``."""
    neuron, drive = _neuron(draws), _drive(draws)
    mom = membrane(neuron, drive, adiabatic_w(neuron, drive, rate))
    return mom, dimensionless(neuron, mom)


def groups(draws: dict, rate: np.ndarray) -> dict:
    """Masks of the regimes the reduction treats differently, from each neuron's dimensionless
    inputs with adaptation at its adiabatic value for ``rate``: κ = τ_syn/τ_eff > 10 (the
    conductances quasi-static against the membrane: sparse, large shot events that the
    Gaussian diffusion of the table does not describe), and below it mean-driven (m ≥ 0) or
    fluctuation-driven (m < 0: the rate lives in the tail of σ_V)."""
    _, found = _adiabatic_moments(draws, rate)
    slow = found.kappa > SLOW_KAPPA
    return {"mean_driven": ~slow & (found.m >= 0), "fluctuation_driven": ~slow & (found.m < 0),
            "kappa_over_10": slow}


def step_groups(draws: dict, rate: np.ndarray, dt: float) -> dict:
    """The κ > 10 neurons by dt/τ_eff, the simulator's Euler step against the effective
    membrane time: below 1; 1–2 (the first free step overshoots μ_V); ≥ 2 (forward Euler
    diverges: the deviation from μ_V is multiplied by 1 − dt/τ_eff < −1 each step)."""
    mom, found = _adiabatic_moments(draws, rate)
    h = dt / mom.tau_eff
    slow = found.kappa > SLOW_KAPPA
    return {"kappa_over_10_step_below_1": slow & (h < 1),
            "kappa_over_10_step_1_to_2": slow & (h >= 1) & (h < 2),
            "kappa_over_10_step_from_2": slow & (h >= 2)}


def check(spec, prior, table, n: int, seed: int, duration: float, transient: float,
          adaptation: bool = False, slow_inhibition: bool = False) -> dict:
    """Draw, simulate and predict ``n`` neurons; :func:`compare` by :func:`groups` and
    :func:`step_groups`."""
    draws = draw(spec, prior, n, seed=seed, adaptation=adaptation)
    simulated = simulate(draws, spec.dt, duration=duration, transient=transient, seed=seed)
    predicted = predict(draws, table, spec.dt, slow_inhibition=slow_inhibition)
    found = compare(simulated, predicted, groups(draws, predicted)
                    | step_groups(draws, predicted, spec.dt))
    return found | {"neurons": n, "seed": seed, "duration": duration, "transient": transient,
                    "adaptation": adaptation, "slow_inhibition": slow_inhibition}


def compare(simulated: np.ndarray, predicted: np.ndarray, groups: dict) -> dict:
    """|Δlog10 ν| where the simulated rate is ≥ ``MIN_RATE``: median and 95th percentile, over
    all neurons and per group (name → mask); and how often the model calls a neuron that
    fires silent (< 0.05 Hz) or one that never fired active (≥ ``MIN_RATE``)."""
    active = simulated >= MIN_RATE
    signed = np.log10(np.maximum(predicted, 1e-3)) - np.log10(np.maximum(simulated, 1e-3))
    out = {"n": int(len(simulated)), "active": int(active.sum())}
    for name, keep in ({"all": np.ones(len(simulated), bool)} | groups).items():
        e = signed[active & keep]
        out[name] = {"n": int(len(e)),
                     "median_abs_dlog10": float(np.median(np.abs(e))) if len(e) else None,
                     "p95_abs_dlog10": float(np.percentile(np.abs(e), 95)) if len(e) else None,
                     "median_dlog10": float(np.median(e)) if len(e) else None,
                     "fires_called_silent": int(np.sum(active & keep & (predicted < 0.05))),
                     "silent_called_active": int(np.sum((simulated == 0) & keep
                                                        & (predicted >= MIN_RATE)))}
    return out
