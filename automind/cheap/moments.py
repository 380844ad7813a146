"""Membrane moments of a conductance-driven AdEx neuron and its reduction to the table's inputs.

Shot-noise conductances (Campbell's theorem): events at rates λ_k with quanta Q_k on a
synapse type s (decay τ_s, reversal E_s) give mean μ_s = τ_s Σλ_kQ_k and variance
σ_s² = (τ_s/2) Σλ_kQ_k². The effective leak μ_G = g_L + μ_e + μ_i sets τ_eff = C/μ_G
(Richardson 2004; Zerlaut et al. 2018); adaptation enters as its adiabatic mean w̄
(di Volo et al. 2019). The reduced neuron then depends on θ only through
(m, r, δ, ℓ, ρ, κ) — see ``docs/cheap.md`` and ``analytic.py``.

Everything is vectorised: arrays of any common shape, SI units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Neuron:
    """Intrinsic parameters of a population (arrays or floats, SI)."""

    C: np.ndarray
    g_L: np.ndarray
    v_rest: np.ndarray
    v_thresh: np.ndarray
    v_reset: np.ndarray
    t_refrac: np.ndarray
    delta_T: np.ndarray
    a: np.ndarray
    b: np.ndarray
    tau_w: np.ndarray
    tau_e: np.ndarray
    tau_i: np.ndarray
    E_e: np.ndarray
    E_i: np.ndarray


@dataclass
class Drive:
    """Summed input per synapse type: Σλ_kQ_k (S/s) and Σλ_kQ_k² (S²/s)."""

    e1: np.ndarray
    e2: np.ndarray
    i1: np.ndarray
    i2: np.ndarray

    def __add__(self, other: "Drive") -> "Drive":
        return Drive(self.e1 + other.e1, self.e2 + other.e2, self.i1 + other.i1,
                     self.i2 + other.i2)


def source(rate, quantum, excitatory: bool) -> Drive:
    """A population of Poisson sources with total event rate ``rate`` and quantum ``quantum``."""
    rate, quantum = np.asarray(rate, float), np.asarray(quantum, float)
    one, two, zero = rate * quantum, rate * quantum**2, np.zeros(np.broadcast(rate, quantum).shape)
    return Drive(one, two, zero, zero) if excitatory else Drive(zero, zero, one, two)


@dataclass
class Moments:
    mu_G: np.ndarray      # mean total conductance, S
    tau_eff: np.ndarray   # C / μ_G, s
    mu_V: np.ndarray      # mean free membrane potential (adaptation included), V
    sigma_V: np.ndarray   # sd of the free membrane potential, V
    tau_syn: np.ndarray   # σ_V²-weighted synaptic time constant, s
    w: np.ndarray         # adaptation current used, A


def free_mean(neuron: Neuron, drive: Drive, w) -> tuple[np.ndarray, np.ndarray]:
    """(μ_G, μ_V) for a given adaptation current w: the voltage where the mean currents cancel."""
    mu_e, mu_i = neuron.tau_e * drive.e1, neuron.tau_i * drive.i1
    mu_G = neuron.g_L + mu_e + mu_i
    mu_V = (neuron.g_L * neuron.v_rest + mu_e * neuron.E_e + mu_i * neuron.E_i - w) / mu_G
    return mu_G, mu_V


def adiabatic_w(neuron: Neuron, drive: Drive, rate) -> np.ndarray:
    """w̄ = a (μ_V − v_rest) + b τ_w ν with μ_V depending on w̄ itself (solved in closed form)."""
    mu_G, mu_V0 = free_mean(neuron, drive, 0.0)
    return (neuron.a * (mu_V0 - neuron.v_rest) + neuron.b * neuron.tau_w * rate) / \
        (1.0 + neuron.a / mu_G)


def membrane(neuron: Neuron, drive: Drive, w) -> Moments:
    """Campbell moments of the free membrane potential under shot-noise conductances."""
    mu_G, mu_V = free_mean(neuron, drive, w)
    tau_eff = neuron.C / mu_G
    var_e, var_i = 0.5 * neuron.tau_e * drive.e2, 0.5 * neuron.tau_i * drive.i2
    ce = var_e * (neuron.E_e - mu_V)**2 * neuron.tau_e / (mu_G**2 * (neuron.tau_e + tau_eff))
    ci = var_i * (neuron.E_i - mu_V)**2 * neuron.tau_i / (mu_G**2 * (neuron.tau_i + tau_eff))
    var = ce + ci
    with np.errstate(invalid="ignore", divide="ignore"):
        tau_syn = np.where(var > 0, (ce * neuron.tau_e + ci * neuron.tau_i) / var, neuron.tau_e)
    return Moments(mu_G, tau_eff, mu_V, np.sqrt(var), tau_syn, np.asarray(w, float))


@dataclass
class Inputs:
    """The table's dimensionless inputs; ``deterministic`` marks σ_V ≈ 0 (scaled by r instead)."""

    m: np.ndarray
    r: np.ndarray
    delta: np.ndarray
    ell: np.ndarray
    rho: np.ndarray
    kappa: np.ndarray
    deterministic: np.ndarray


#: Below this σ_V (V) the neuron is treated as noise-free.
SIGMA_FLOOR = 1e-7


def dimensionless(neuron: Neuron, mom: Moments) -> Inputs:
    """(m, r, δ, ℓ, ρ, κ) of a neuron with these moments (see module docstring)."""
    ell = np.log(np.maximum(mom.mu_G / neuron.g_L, 1.0))
    theta_star = neuron.v_thresh + neuron.delta_T * ell
    det = mom.sigma_V < SIGMA_FLOOR
    # noise-free neurons: a scale-free description, voltages in units of θ* − v_reset
    scale = np.where(det, np.maximum(theta_star - neuron.v_reset, 1e-3), mom.sigma_V)
    return Inputs(m=(mom.mu_V - theta_star) / scale, r=(theta_star - neuron.v_reset) / scale,
                  delta=np.broadcast_to(neuron.delta_T / scale, det.shape).copy(),
                  ell=ell, rho=neuron.t_refrac / mom.tau_eff,
                  kappa=np.where(det, 0.0, mom.tau_syn / mom.tau_eff), deterministic=det)


def current_based(mu, sigma, v_thresh, v_reset, t_refrac, tau_m) -> Inputs:
    """Inputs of a current-based LIF (e.g. Brunel 2000) with free mean μ and free sd σ (V):
    δ = ℓ = κ = 0, τ_eff = τ_m."""
    mu, sigma = np.asarray(mu, float), np.asarray(sigma, float)
    det = sigma < SIGMA_FLOOR
    scale = np.where(det, v_thresh - v_reset, sigma)
    zero = np.zeros(np.broadcast(mu, sigma).shape)
    return Inputs(m=(mu - v_thresh) / scale, r=(v_thresh - v_reset) / scale, delta=zero,
                  ell=zero, rho=zero + t_refrac / tau_m, kappa=zero, deterministic=det)


def refractory_steps(t_refrac, dt) -> np.ndarray:
    """Brian2's refractory period in steps: ``timestep(t_ref, dt)`` = ⌊t_ref/dt + 1e-3⌋ (at
    least 1: a neuron can fire again at the next step at the earliest)."""
    return np.maximum(np.floor(np.asarray(t_refrac, float) / dt + 1e-3), 1.0)


@dataclass
class StepConstants:
    """θ-constant parts of :func:`first_step_crossing` (computed once per network)."""

    scale: np.ndarray          # dt / C
    v_reset: np.ndarray
    reset_current: np.ndarray  # g_L ΔT e^{(v_reset − v_T)/ΔT}, A
    gap: np.ndarray            # v_cut − v_reset, V
    lever_e: np.ndarray        # ½ τ_e (E_e − v_reset)²: Var of the step's g_e term per Σλ_kQ_k²
    lever_i: np.ndarray
    slope_e: np.ndarray        # τ_e (E_e − v_reset): the step's mean per unit Σλ_kQ_k
    slope_i: np.ndarray


def step_constants(neuron: Neuron, dt) -> StepConstants:
    v_r, d_t = neuron.v_reset, neuron.delta_T
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        spike = np.where(d_t > 0, neuron.g_L * d_t * np.exp(np.minimum(
            (v_r - neuron.v_thresh) / np.where(d_t > 0, d_t, 1.0), 30.0)), 0.0)
    return StepConstants(dt / neuron.C, v_r, spike, neuron.v_thresh + 5.0 * d_t - v_r,
                         0.5 * neuron.tau_e * (neuron.E_e - v_r) ** 2,
                         0.5 * neuron.tau_i * (neuron.E_i - v_r) ** 2,
                         neuron.tau_e * (neuron.E_e - v_r), neuron.tau_i * (neuron.E_i - v_r))


def first_step_crossing(step: StepConstants, drive: Drive, mom: Moments,
                        quenched=None) -> np.ndarray:
    """Probability that one forward-Euler step from v_reset crosses v_cut = v_T + 5ΔT: the
    neuron then fires on the first step after its refractory period.

    The mean step is dt/C [μ_G(μ_V − v_reset) + g_L ΔT e^{(v_reset − v_T)/ΔT}] (μ_V includes
    the adaptation current); its sd comes from the conductances' Campbell variances, taken
    constant over one step (τ_syn ≫ dt). ``quenched``: (Var e1, Var i1) of Σλ_kQ_k across
    the population's neurons (random in-degrees); the mean step is linear in them, so
    averaging the Gaussian crossing probability over them adds their variance to the step's
    (exact for Gaussian in-degree spread)."""
    from scipy.special import ndtr

    return ndtr(first_step_z(step, drive, mom, quenched))


def first_step_z(step: StepConstants, drive: Drive, mom: Moments, quenched=None) -> np.ndarray:
    """(mean step − gap) / sd of :func:`first_step_crossing` (±inf without noise): how deep
    into (z > 0) or short of first-step firing a population is."""
    gap = step.scale * (mom.mu_G * (mom.mu_V - step.v_reset) + step.reset_current) - step.gap
    var = step.lever_e * drive.e2 + step.lever_i * drive.i2
    if quenched is not None:
        var = var + step.slope_e ** 2 * quenched[0] + step.slope_i ** 2 * quenched[1]
    sd = step.scale * np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, gap / sd, np.where(gap > 0, np.inf, -np.inf))


def discrete_time_rate(rate, t_refrac, crossing, dt) -> np.ndarray:
    """The rate a forward-Euler simulation with step ``dt`` shows for a neuron whose
    continuous-time rate is ``rate`` (= 1/(t_ref + T), T the free time from reset to spike).

    A spike can come at the earliest on the step the refractory period ends (n_ref = Brian2's
    refractory steps), if one step from reset crosses the threshold (probability
    ``crossing``); otherwise a free time that takes k ≥ 2 steps ends on the step after it,
    (k − 1) dt ≈ max(dt, T − dt/2) on average. So ISI = n_ref dt + (1 − P₁) max(dt, T − dt/2).
    This is what MK1's runaway criterion (ν t_ref > 0.99) measures: whole populations firing
    on the first free step, at t_ref / (n_ref dt) ≥ 1."""
    # a rate that underflowed to 0 (deep in the tail) is a finite, huge free time: 0 × inf
    # would be NaN where the first step always crosses
    free = 1.0 / np.maximum(np.asarray(rate, float), 1e-300) - t_refrac
    isi = refractory_steps(t_refrac, dt) * dt + (1.0 - crossing) * np.maximum(dt, free - 0.5 * dt)
    return 1.0 / isi
