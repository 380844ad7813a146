"""The laminar column as a dynamic mean field (Evers, Peters & Senden 2023), in torch.

Per population: synaptic input I, membrane potential H, rate F = f(H):

    dI/dt = -I/τ_s + W F + W_bg ν_bg + U(t)   (+ σ sqrt(dt/τ_s) ξ per step)
    dH/dt = (-H + R I)/τ_m,   R = τ_m / C_m
    f(h) = (a h - b) / (1 - exp(-d (a h - b)))

States are batched: (B, P) with P = 8 per column. ``W`` is (P, P) shared or (B, P, P) per
batch row (parameter sets, trained weights of several seeds). Fixed-step solvers: ``euler``
(I, then H from the new I, then F: the published update order) and ``rk4``; ``dopri5`` and the
adjoint come from torchdiffeq when it is installed (``pip install automind[columns]``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from ..errors import UserError
from . import pd

FIXED_STEP = ("euler", "rk4")
VARIANTS = ("evers", "ode_column")
SOLVERS = FIXED_STEP + ("dopri5",)


@dataclass(frozen=True)
class DMFParams:
    """Column constants (SI-like units of the published code: J in nA, C_m in the code's
    250e-6, rates in Hz)."""

    a: float = 48.0
    b: float = 981.0
    d: float = 8.9e-3
    tau_s: float = 0.5e-3
    tau_m: float = 10e-3
    C_m: float = 250e-6
    J_E: float = 87.8e-3
    g: float = -4.0              # J_I = g J_E
    nu_bg: float = pd.NU_BG
    l4_to_l23_gain: float = 2.0  # multiplies the L4E -> L2/3E connection probability
    sigma: float = 0.0           # noise on I (0.002 in the published DMF)
    variant: str = "evers"       # the column's constants: "evers" (PD) or "ode_column"
    area: str = "mt"             # ode_column: the per-area population sizes
    size_divisor: float = 1.0    # ode_column: sizes / the number of columns of the net
    kappa: float = 0.0           # adaptation of L2/3E (rate f(H - A)); ode_column 1.5
    tau_a: float = 10.0          # adaptation time constant (s)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise UserError(f"unknown column variant {self.variant!r}; use one of "
                            f"{', '.join(VARIANTS)}")

    @classmethod
    def for_variant(cls, variant: str = "evers", **changes) -> "DMFParams":
        """The variant's published constants, then ``changes``: ``ode_column`` sets τ_m 20 ms,
        κ 1.5 and the L4E -> L2/3E probability 0.0880 (ODE-Column config/model.toml)."""
        base = {}
        if variant == "ode_column":
            from .variants import L4_TO_L23_GAIN

            base = dict(tau_m=20e-3, kappa=1.5, l4_to_l23_gain=L4_TO_L23_GAIN)
        return cls(variant=variant, **(base | changes))

    @property
    def R(self) -> float:
        return self.tau_m / self.C_m

    def with_(self, **changes) -> "DMFParams":
        return replace(self, **changes)


def column_weights(params: DMFParams = DMFParams()) -> tuple[np.ndarray, np.ndarray]:
    """(W, drive) of one column: W[target, source] = J_source K[target, source] (8 x 8) and the
    constant background drive W_bg ν_bg = K_ext J_E ν_bg (8,), float64. ``params.variant``
    "ode_column" builds them from the ODE-Column constants (``variants.weights``)."""
    if params.variant == "ode_column":
        from .variants import weights

        return weights(params)
    J = np.where(pd.EXCITATORY, params.J_E, params.g * params.J_E)
    W = pd.in_degrees(params.l4_to_l23_gain) * J[None, :]
    return W, pd.K_EXT * params.J_E * params.nu_bg


def transfer(h, params: DMFParams = DMFParams()):
    """f(h) = x / (1 - exp(-d x)), x = a h - b; smooth through x = 0 (limit 1/d + x/2)."""
    import torch

    x = params.a * h - params.b
    z = params.d * x
    small = z.abs() < 1e-6
    safe_z = torch.where(small, torch.ones_like(z), z).clamp(min=-80.0)  # e^80: no overflow
    return torch.where(small, 1.0 / params.d + 0.5 * x, x / -torch.expm1(-safe_z))


def recurrent(W, F):
    """W F for W (P, P) with F (..., P); W (B, P, P) with F (B, P) or (B, n, P)."""
    if W.dim() == 2:
        return F @ W.T
    if F.dim() == W.dim():
        return F @ W.mT
    return (W @ F.unsqueeze(-1)).squeeze(-1)


def derivatives(I, H, W, drive, U, params: DMFParams, A=None):
    """(dI/dt, dH/dt) of the noise-free DMF; with adaptation ``A`` (params.kappa > 0)
    (dI/dt, dH/dt, dA/dt), the rate being f(H - A)."""
    F = transfer(H if A is None else H - A, params)
    dI = -I / params.tau_s + recurrent(W, F) + drive
    if U is not None:
        dI = dI + U
    dH = (-H + params.R * I) / params.tau_m
    if A is None:
        return dI, dH
    return dI, dH, (-A + adaptation_strengths(params, F) * F) / params.tau_a


def adaptation_strengths(params: DMFParams, like):
    """κ on every column's L2/3E (population 0 of each block of 8), 0 elsewhere."""
    import torch

    kappa = torch.zeros(like.shape[-1], dtype=like.dtype, device=like.device)
    kappa[0::8] = params.kappa
    return kappa


def initial_state(batch, n_pop: int, dtype=None, device=None, adaptation: bool = False):
    """Zero I and H (rates start at f(0) ~ 0.16 Hz), and A with ``adaptation``; ``batch`` an
    int or a shape tuple."""
    import torch

    shape = (batch,) if isinstance(batch, int) else tuple(batch)
    zeros = torch.zeros(*shape, n_pop, dtype=dtype, device=device)
    return (zeros, zeros.clone()) + ((zeros.clone(),) if adaptation else ())


def integrate(W, drive, steps: int, dt: float = 1e-4, params: DMFParams = DMFParams(),
              inputs=None, state=None, method: str = "euler", record_every: int = 1,
              record=None, generator=None, batch: int | None = None):
    """Integrate ``steps`` steps of ``dt``; returns (rates (T_rec, B, P_rec), (I, H) final).

    ``inputs``: None, a tensor (steps, B, P) or a callable step -> (B, P) tensor (input
    current U, held constant over a step). ``record``: population indices to keep (all by
    default); rates are taken after every ``record_every``-th step. ``generator``: a
    torch.Generator for the noise (σ > 0).
    """
    import torch

    if method not in FIXED_STEP:
        if method == "dopri5":
            raise UserError("dopri5 is an adaptive solver: use integrate_odeint")
        raise UserError(f"unknown solver {method!r}; use one of {', '.join(SOLVERS)}")
    check_dt(dt, params)
    n_pop = W.shape[-1]
    if state is None:
        state = initial_state(_batch_shape(W, drive, batch), n_pop, dtype=W.dtype,
                              device=W.device, adaptation=params.kappa > 0)
    elif (len(state) == 3) != (params.kappa > 0):
        raise UserError("the state must hold A exactly when adaptation (kappa > 0) is on")
    with small_ops_threads(state[0].numel()):
        return _integrate(W, drive, steps, dt, params, inputs, state, method, record_every,
                          record, generator)


def _integrate(W, drive, steps, dt, params, inputs, state, method, record_every, record,
               generator):
    import torch

    I, H = state[:2]
    A = state[2] if len(state) == 3 else None
    kappa = None if A is None else adaptation_strengths(params, A)
    noise_scale = params.sigma * math.sqrt(dt / params.tau_s)
    fast = not torch.is_grad_enabled() and method == "euler" and A is None
    if fast:
        I, H = I.clone(), H.clone()
    out = []
    for n in range(steps):
        U = inputs(n) if callable(inputs) else None if inputs is None else inputs[n]
        if fast:
            _euler_step_inplace(I, H, W, drive, U, dt, params)
        elif method == "euler":
            F = transfer(H if A is None else H - A, params)
            dI = -I / params.tau_s + recurrent(W, F) + drive
            I = I + dt * (dI if U is None else dI + U)
            H = H + dt * (-H + params.R * I) / params.tau_m
            if A is not None:
                A = A + dt * (-A + kappa * F) / params.tau_a
        else:
            I, H, A = _rk4_step(I, H, A, W, drive, U, dt, params)
        if noise_scale > 0:
            I = I + noise_scale * torch.randn(I.shape, generator=generator, dtype=I.dtype,
                                              device=I.device)
        if (n + 1) % record_every == 0:
            F = transfer(H if A is None else H - A, params)
            out.append(F if record is None else F[..., record])
    rates = torch.stack(out) if out else torch.empty(0)
    return rates, (I, H) if A is None else (I, H, A)


@contextmanager
def small_ops_threads(n_values: int, threshold: int = 100_000):
    """One intra-op thread while states are small: on a busy machine torch's thread pool
    made an (3, 8, 16) batched matmul 300x slower (8 ms instead of 25 µs)."""
    import torch

    before = torch.get_num_threads()
    if n_values < threshold and before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _euler_step_inplace(I, H, W, drive, U, dt, params):
    """The Euler step with few, in-place operations (no autograd): ~4x faster on one column,
    where per-operation overhead dominates."""
    import torch

    z = H.mul(params.a * params.d).sub_(params.b * params.d).clamp_(min=-80.0)
    F = z.div(torch.expm1(z.neg())).mul_(-1.0 / params.d)
    if W.dim() == 2 and F.dim() == 2:
        rec = torch.addmm(drive.expand_as(F), F, W.T)
    else:
        rec = recurrent(W, F).add_(drive)
    if U is not None:
        rec.add_(U)
    I.mul_(1.0 - dt / params.tau_s).add_(rec, alpha=dt)
    H.mul_(1.0 - dt / params.tau_m).add_(I, alpha=dt * params.R / params.tau_m)


def _batch_shape(W, drive, batch):
    if batch is not None:
        return batch
    if W.dim() == 3:
        return W.shape[0]
    return drive.shape[0] if drive.dim() == 2 else 1


def _rk4_step(I, H, A, W, drive, U, dt, params):
    """One RK4 step of (I, H) or, with adaptation A, (I, H, A); A None stays None."""
    y = (I, H) if A is None else (I, H, A)
    field = lambda s: derivatives(*s[:2], W, drive, U, params, *s[2:])  # noqa: E731
    k1 = field(y)
    k2 = field(tuple(v + 0.5 * dt * k for v, k in zip(y, k1)))
    k3 = field(tuple(v + 0.5 * dt * k for v, k in zip(y, k2)))
    k4 = field(tuple(v + dt * k for v, k in zip(y, k3)))
    new = tuple(v + dt / 6 * (a + 2 * b + 2 * c + d) for v, a, b, c, d in zip(y, k1, k2, k3, k4))
    return new if A is not None else new + (None,)


def check_dt(dt: float, params: DMFParams) -> None:
    if not (math.isfinite(dt) and 0 < dt <= params.tau_s):
        raise UserError(f"dt = {dt:g} s must be in (0, τ_s = {params.tau_s:g} s] for a stable "
                        "fixed-step integration")


def steady_rates(params: DMFParams = DMFParams(), duration: float = 1.0, dt: float = 1e-4,
                 method: str = "euler", dtype=None) -> np.ndarray:
    """Rates (Hz) of one column after ``duration`` s with no input (float64 by default)."""
    import torch

    dtype = dtype or torch.float64
    W, drive = (torch.as_tensor(a, dtype=dtype) for a in column_weights(params))
    with torch.no_grad():
        rates, _ = integrate(W, drive.unsqueeze(0), int(round(duration / dt)), dt, params,
                             method=method, record_every=int(round(duration / dt)))
    return rates[-1, 0].numpy()
