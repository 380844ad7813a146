"""MK1 and Brunel as a few homogeneous populations coupled through the table.

Each network maps population rates ν (batch × populations, Hz) and adaptation currents w to
output rates through :class:`moments` and a table: ``rates_out(ν, w)``. In-degrees follow the
simulators' connection rules (spec §2 of ``shared/spec/cheap-forward.md``).
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import UserError
from .inhibition import slow_inhibition_rate, table_rate
from .moments import (Drive, Neuron, StepConstants, adiabatic_w, current_based, dimensionless,
                      discrete_time_rate, first_step_crossing, first_step_z, membrane, refractory_steps, source,
                      step_constants)


def _take(value, index, size):
    """Rows ``index`` of every per-θ array (first axis of length ``size``) inside ``value``."""
    if isinstance(value, np.ndarray):
        return value[index] if value.ndim and value.shape[0] == size else value
    if isinstance(value, (Neuron, Drive, StepConstants)):
        return type(value)(**{k: _take(v, index, size) for k, v in vars(value).items()})
    if isinstance(value, tuple):
        return tuple(_take(v, index, size) for v in value)
    if isinstance(value, dict):
        return {k: _take(v, index, size) for k, v in value.items()}
    return value


#: Average the first-step crossing over the neurons' random in-degrees (``MK1Network.quenched``)
HETEROGENEOUS_FIRST_STEP = True


class _Network:
    names: tuple
    #: populations of conductance-based neurons whose synapses and membranes can be started from
    #: rest (``solve.start_from_rest``); current-based ones start at their rates' inputs
    conductances = False
    excitatory_weights: np.ndarray  # (B, P): weights of the status ("E") rate
    unit_weights: np.ndarray        # (B, P): each population's share of all neurons
    t_refrac_probe: np.ndarray      # (B,)
    max_rate: np.ndarray            # (B, P): 1 / t_refrac

    def status_rate(self, rates) -> np.ndarray:
        return np.sum(rates * self.excitatory_weights, axis=-1)

    def unit_rate(self, rates) -> np.ndarray:
        """The mean over all neurons (what a recording's unit-mean rate measures)."""
        return np.sum(rates * self.unit_weights, axis=-1)

    def take(self, index) -> "_Network":
        """The same network for the θ rows ``index`` only (so that inner loops need not
        index every parameter array on every call)."""
        sub = copy.copy(self)
        size = len(self.max_rate)
        for name, value in vars(self).items():
            setattr(sub, name, _take(value, index, size))
        return sub


class MK1Network(_Network):
    """Driven E (igniters), undriven E and I populations of MK1 for a batch of θ (SI dicts of arrays)."""

    names = ("E_d", "E_n", "I")
    conductances = True
    #: blend the table's rates with the quasi-static slow-inhibition limit (``inhibition.py``)
    slow_inhibition = False

    def __init__(self, params: dict, fixed: dict, N: int, table, dt: float | None = None):
        """``dt``: the simulator's time step, whose discreteness sets the highest rates (see
        :func:`moments.discrete_time_rate`); None for continuous time."""
        self.table = table
        self.dt = dt
        p = {k: np.asarray(v, float) for k, v in params.items()}
        B = np.broadcast(*p.values()).shape
        n_e = np.clip(np.floor(N * p["exc_prop"] + 0.5), 1, N - 1)
        n_i = N - n_e
        igniters = np.floor(p["p_igniters"] * n_e + 0.5) / n_e
        k = np.floor(p["n_clusters"])
        clustered = (k >= 2) & (p["R_pe2e"] > 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            p_in = np.where(clustered, 1 - (k - 2) * (k - 3) / np.maximum(k * (k - 1), 1), 0.0)
        boost = 1 + (p["R_pe2e"] - 1) * p_in
        k_ee = p["p_e2e"] * (n_e - 1) * boost
        in_share = p_in * p["R_pe2e"] / boost
        self.k_ee_in, self.k_ee_out = k_ee * in_share, k_ee * (1 - in_share)
        self.q_ee_in = p["E.Q_ge"] * p["R_Qe2e"]
        self.k_ei, self.k_ie, self.k_ii = p["p_i2e"] * n_i, p["p_e2i"] * n_e, p["p_i2i"] * (n_i - 1)
        self.p = p
        self.fixed = fixed
        self.igniters = igniters
        e = Neuron(C=p["E.C"], g_L=p["E.g_L"], v_rest=p["E.v_rest"], v_thresh=p["E.v_thresh"],
                   v_reset=p["E.v_reset"], t_refrac=p["E.t_refrac"], delta_T=p["E.delta_T"],
                   a=p["E.a"], b=p["E.b"], tau_w=p["E.tau_w"], tau_e=p["E.tau_ge"],
                   tau_i=p["E.tau_gi"], E_e=fixed["E_ge"], E_i=p["E.E_gi"])
        f = {k: np.full(B, fixed[f"I.{k}"]) for k in
             ("C", "g_L", "v_rest", "v_thresh", "v_reset", "t_refrac", "delta_T", "a", "b", "tau_w",
              "tau_ge", "tau_gi", "E_gi")}
        i = Neuron(C=f["C"], g_L=f["g_L"], v_rest=f["v_rest"], v_thresh=f["v_thresh"],
                   v_reset=f["v_reset"], t_refrac=f["t_refrac"], delta_T=f["delta_T"], a=f["a"],
                   b=f["b"], tau_w=f["tau_w"], tau_e=f["tau_ge"], tau_i=f["tau_gi"],
                   E_e=fixed["E_ge"], E_i=f["E_gi"])
        # Everything per population is stacked along a last axis of 3 (E_d, E_n, I), so one
        # evaluation is one pass of the moments and one table lookup for all populations.
        self.neurons = (e, e, i)
        self.stacked = Neuron(**{k: np.stack([np.broadcast_to(getattr(n, k), B) for n in
                                              self.neurons], axis=-1) for k in vars(e)})
        n_p, q_p = fixed["N_poisson"], fixed["Q_poisson"]
        self.external = (source(n_p * p["E.poisson_rate"], q_p, True),
                         source(np.zeros(B), q_p, True),
                         source(n_p * p["I.poisson_rate"], q_p, True))
        self.external_stacked = Drive(*(np.stack([np.broadcast_to(getattr(d, k), B) for d in
                                                  self.external], axis=-1)
                                        for k in ("e1", "e2", "i1", "i2")))
        # recurrent drive = coefficient × presynaptic rate (Σλ_kQ_k and Σλ_kQ_k², spec §2)
        q_in, q_ge, q_gi = self.q_ee_in, p["E.Q_ge"], p["E.Q_gi"]
        e_to_e1 = self.k_ee_out * q_ge + self.k_ee_in * q_in
        e_to_e2 = self.k_ee_out * q_ge**2 + self.k_ee_in * q_in**2
        self.from_e = (np.stack([e_to_e1, e_to_e1, self.k_ie * p["I.Q_ge"]], -1),
                       np.stack([e_to_e2, e_to_e2, self.k_ie * p["I.Q_ge"]**2], -1))
        self.from_i = (np.stack([self.k_ei * q_gi, self.k_ei * q_gi, self.k_ii * p["I.Q_gi"]], -1),
                       np.stack([self.k_ei * q_gi**2, self.k_ei * q_gi**2,
                                 self.k_ii * p["I.Q_gi"]**2], -1))
        self.excitatory_weights = np.stack([igniters, 1 - igniters, np.zeros(B)], axis=-1)
        e_share = n_e / N
        self.unit_weights = np.stack([igniters * e_share, (1 - igniters) * e_share,
                                      1 - e_share], axis=-1)
        self.t_refrac_probe = p["E.t_refrac"]
        self.max_rate = 1 / (self.stacked.t_refrac if dt is None else
                             refractory_steps(self.stacked.t_refrac, dt) * dt)
        self.step = None if dt is None else step_constants(self.stacked, dt)
        self.heterogeneous = HETEROGENEOUS_FIRST_STEP
        self.tau_w = self.stacked.tau_w
        # μ_G + a ≤ 0: the adiabatic adaptation has no equilibrium (spec §2, flagged)
        self.flag_negative_leak = p["E.g_L"] + p["E.a"] <= 0

    def drives(self, rates, index=slice(None)) -> Drive:
        """Input of every population (fields (b, 3)) at population rates ``rates`` (b, 3)."""
        ig = self.igniters[index]
        nu_e = (ig * rates[..., 0] + (1 - ig) * rates[..., 1])[..., None]
        nu_i = rates[..., 2:3]
        ext = self.external_stacked
        return Drive(ext.e1[index] + self.from_e[0][index] * nu_e,
                     ext.e2[index] + self.from_e[1][index] * nu_e,
                     ext.i1[index] + self.from_i[0][index] * nu_i,
                     ext.i2[index] + self.from_i[1][index] * nu_i)

    def quenched(self, rates, index=slice(None)) -> tuple:
        """Variance across a population's neurons of its recurrent Σλ_kQ_k (e, i), each (b, 3):
        in-degrees are random (binomial, ≈ Poisson), so a presynaptic group of K neurons at
        rate ν with quanta Q contributes Var = K Q² ν² — the recurrent part of Σλ_kQ_k²
        (``from_e[1]``, ``from_i[1]``) times ν; driven and undriven E presynaptic neurons
        mixed by their shares."""
        ig = self.igniters[index]
        nu2_e = (ig * rates[..., 0] ** 2 + (1 - ig) * rates[..., 1] ** 2)[..., None]
        return self.from_e[1][index] * nu2_e, self.from_i[1][index] * rates[..., 2:3] ** 2

    def drive_only_m(self) -> np.ndarray:
        """(B, 3) m = (μ_V − θ*)/σ_V of each population under the external drive alone."""
        zero = np.zeros_like(self.max_rate)
        with np.errstate(all="ignore"):
            return dimensionless(self.neuron(), membrane(self.neuron(), self.drives(zero), zero)).m

    def onset_time(self, drive_only=None) -> np.ndarray:
        """(B,) s: when the driven E population first fires from rest, under the external drive
        alone — the drive's conductance rise τ_e plus the sooner of the noise-free charging time
        τ_eff ln((μ_V − v_rest)/(μ_V − v_thresh)) (if μ_V > v_thresh) and the drive-only ISI
        1/ν_d; at most 1 s. ``drive_only``: the populations' drive-only rates (B, 3), if already
        evaluated. A run whose network saturates is runaway only if it saturates within
        1 − 0.99/a_max of the probe second (docs/cheap.md, "Onset time")."""
        zero = np.zeros_like(self.max_rate)
        neuron = self.neuron()
        with np.errstate(all="ignore"):
            if drive_only is None:
                drive_only = self.evaluate(zero, zero, cv=False)[0]
            mom = membrane(neuron, self.drives(zero), zero)
            mu, v_rest, v_thresh = mom.mu_V[:, 0], neuron.v_rest[:, 0], neuron.v_thresh[:, 0]
            charging = np.where(mu > v_thresh, mom.tau_eff[:, 0] * np.log((mu - v_rest) /
                                                                          (mu - v_thresh)), np.inf)
            isi = 1.0 / np.maximum(drive_only[:, 0], 1e-9)
        return np.minimum(neuron.tau_e[:, 0] + np.minimum(charging, isi), 1.0)

    def saturated_step_z(self, w) -> np.ndarray:
        """(B, 3) z of the first-step crossing (``moments.first_step_z``, in-degree spread
        included) with every population at its saturated rate and adaptation ``w``: how far
        from firing on every first free step a saturated network would be (NaN in
        continuous time)."""
        if self.step is None:
            return np.full(self.max_rate.shape, np.nan)
        rates = self.max_rate.copy()
        drive = self.drives(rates)
        with np.errstate(all="ignore"):
            return first_step_z(self.step, drive, membrane(self.neuron(), drive, w),
                                self.quenched(rates) if self.heterogeneous else None)

    def neuron(self, pop: int | slice = slice(None), index=slice(None)) -> Neuron:
        """Intrinsics of population ``pop`` (or all, stacked) for the θ rows ``index``."""
        return Neuron(**{k: v[index][..., pop] for k, v in vars(self.stacked).items()})

    def adiabatic(self, rates, index=slice(None)) -> np.ndarray:
        return adiabatic_w(self.neuron(slice(None), index), self.drives(rates, index), rates)

    def evaluate(self, rates, w, index=slice(None), cv=True, drive=None):
        """(ν_out Hz, CV, extrapolated, τ_eff s, a(μ_V − v_rest) + bτ_wν target of w), each
        (b, P); ``cv=False`` skips the CV (None), which only the final outputs need.
        ``drive``: the synaptic input to use instead of the one the rates imply."""
        n = self.neuron(slice(None), index)
        drive = self.drives(rates, index) if drive is None else drive
        nu, mom, cvs, extra = table_rate(self.table, n, drive, w, cv=cv)
        if self.slow_inhibition:
            nu = slow_inhibition_rate(self.table, n, drive, w, nu, mom)
        if self.dt is not None:
            step = StepConstants(**{k: v[index] for k, v in vars(self.step).items()})
            nu = discrete_time_rate(nu, n.t_refrac, first_step_crossing(
                step, drive, mom, self.quenched(rates, index) if self.heterogeneous else None), self.dt)
        target = n.a * (mom.mu_V - n.v_rest) + n.b * n.tau_w * rates
        return nu, cvs, extra, mom.tau_eff, target


class BrunelNetwork(_Network):
    """Brunel (2000): one population (E and I are identical), current-based LIF with delta
    synapses; no adaptation."""

    names = ("E",)

    def __init__(self, params: dict, fixed: dict, table):
        self.table = table
        g = np.asarray(params["g"], float)
        nu_ext = np.asarray(params["nu_ext"], float)
        B = np.broadcast(g, nu_ext).shape
        f = fixed
        self.f, self.g = f, g
        self.nu_x = nu_ext * f["theta"] / (f["C_E"] * f["J"] * f["tau_m"])
        self.gamma = (1 - f["exc_fraction"]) / f["exc_fraction"]
        self.excitatory_weights = np.ones(B + (1,))
        self.unit_weights = np.ones(B + (1,))  # E and I fire alike in Brunel's model
        self.t_refrac_probe = np.full(B, f["t_refrac"])
        self.max_rate = np.full(B + (1,), 1 / f["t_refrac"])
        self.tau_w = np.full(B + (1,), np.inf)
        self.flag_negative_leak = np.zeros(B, bool)

    def adiabatic(self, rates, index=slice(None)) -> np.ndarray:
        return np.zeros_like(rates)

    def drive_only_m(self) -> np.ndarray:
        """(B, 1) m = (μ − θ)/σ under the external drive alone."""
        f = self.f
        mu = f["C_E"] * f["J"] * f["tau_m"] * self.nu_x
        sigma = np.sqrt(f["C_E"] * f["J"] ** 2 * f["tau_m"] * self.nu_x / 2)
        inputs = current_based(mu, sigma, f["theta"], f["v_reset"], f["t_refrac"], f["tau_m"])
        return np.broadcast_to(np.asarray(inputs.m, float), self.max_rate.shape[:1])[:, None]

    def evaluate(self, rates, w, index=slice(None), cv=True):
        f = self.f
        g = self.g[index] if np.ndim(self.g) else self.g
        nu_x = self.nu_x[index] if np.ndim(self.nu_x) else self.nu_x
        nu = rates[..., 0]
        c_e, j, tau = f["C_E"], f["J"], f["tau_m"]
        mu = c_e * j * tau * (nu_x + nu * (1 - self.gamma * g))
        sigma = np.sqrt(c_e * j**2 * tau * (nu_x + nu * (1 + self.gamma * g**2)) / 2)
        inputs = current_based(mu, sigma, f["theta"], f["v_reset"], f["t_refrac"], tau)
        log_rate, cvs, extra = self.table.lookup(inputs, cv=cv)
        out = np.minimum(10.0 ** log_rate / tau, 1 / f["t_refrac"])
        zeros = np.zeros_like(out)
        return (out[..., None], None if cvs is None else cvs[..., None], extra[..., None],
                np.full_like(out, tau)[..., None], zeros[..., None])


def for_spec(spec, params: dict, table):
    """The network of a simulator spec (model with a reduction) for θ given as SI arrays."""
    if spec.model == "mk1":
        if spec.reference_quirks:
            raise UserError("cheap: no reduction for mk1 with reference_quirks = true "
                            "(frozen v_cut); use the published model")
        return MK1Network(params, spec.fixed, spec.N, table, dt=spec.dt)
    if spec.model == "brunel":
        return BrunelNetwork(params, spec.fixed, table)
    raise UserError(f"cheap: no reduction (moments) for model {spec.model!r}; "
                    "available: mk1, brunel")

