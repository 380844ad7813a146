"""The column as an SBI simulator: the ``column`` model of the simulator registry.

θ: background rate ``nu_bg`` (Hz), relative inhibition ``g`` (J_I = -g J_E), the excitatory
PSC ``J_E`` (A) and ``l4_to_l23_gain`` (the L4E -> L2/3E probability factor). One
simulation is one noisy column (σ from the spec) integrated by Euler at the spec's dt; it
records the eight population rates every ``record_dt`` as ``state["rate"]`` (steps, 8).
Nothing is compiled (``backend = "torch"``); ``simulate_rates`` runs many θ as one batch.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from . import pd
from .dmf import DMFParams, column_weights, integrate

backend = "torch"
populations = pd.POPULATIONS
state_variables = ("rate",)
required_fixed = ("sigma", "record_dt")
compile_time_fixed = ()
theta_names = ("nu_bg", "g", "J_E", "l4_to_l23_gain")
RUNAWAY_RATE = 500.0   # Hz: any population above it at the end -> "runaway"
SILENT_RATE = 1e-3     # Hz: every E population below it -> "silent"
NOISE_CHUNK = 200      # steps of noise drawn at once per simulation


def check_spec(spec) -> None:
    if spec.N != 8:
        raise UserError("column: network.N must be 8 (the eight populations of one column)")
    if spec.dt > DMFParams().tau_s:
        raise UserError(f"column: dt {spec.dt:g} s must not exceed τ_s = 0.5 ms")
    ratio = spec.fixed["record_dt"] / spec.dt
    if spec.fixed["record_dt"] <= 0 or abs(ratio - round(ratio)) > 1e-6:
        raise UserError("column: record_dt must be a positive multiple of dt")
    if spec.fixed["sigma"] < 0:
        raise UserError("column: sigma must be >= 0")


def params_of(values: dict) -> DMFParams:
    """θ (SI: J_E in A) -> the DMF's constants (J in nA)."""
    return DMFParams(nu_bg=float(values["nu_bg"]), g=-float(values["g"]),
                     J_E=float(values["J_E"]) * 1e9,
                     l4_to_l23_gain=float(values["l4_to_l23_gain"]))


def layout(spec, params: dict) -> dict[str, tuple[int, int]]:
    return {name: (k, k + 1) for k, name in enumerate(populations)}


def probe(spec, params: dict) -> tuple[int, float]:
    return 8, 0.0


def run_args(spec, params: dict, rng) -> dict:
    return {}


def build(*args, **kwargs):
    raise UserError("the column model is not compiled (backend torch)")


class _Noise:
    """Per-simulation seeded noise, drawn in chunks: results do not depend on the batch."""

    def __init__(self, seeds, scale: float, dtype):
        self.rngs = [np.random.default_rng(int(s)) for s in seeds]
        self.scale, self.dtype, self.chunk, self.start = scale, dtype, None, -NOISE_CHUNK

    def __call__(self, n: int):
        import torch

        if n >= self.start + NOISE_CHUNK:
            self.start = n
            draws = np.stack([rng.standard_normal((NOISE_CHUNK, 8)) for rng in self.rngs], 1)
            self.chunk = torch.as_tensor(draws * self.scale, dtype=self.dtype)
        return self.chunk[n - self.start]


def simulate_rates(spec, params_rows: list[dict], seeds, duration: float | None = None,
                   dtype=None) -> np.ndarray:
    """Rates (n, steps, 8) in Hz of n columns (θ as SI dicts), one seeded noise each."""
    import torch

    dtype = dtype or torch.float64
    duration = spec.duration if duration is None else duration
    dmf = [params_of(p) for p in params_rows]
    W, drive = zip(*(column_weights(p) for p in dmf))
    W = torch.as_tensor(np.stack(W), dtype=dtype)
    drive = torch.as_tensor(np.stack(drive), dtype=dtype)
    sigma, dt = spec.fixed["sigma"], spec.dt
    # the noise σ sqrt(dt/τ_s) ξ added to I per step, passed as an input current (÷ dt)
    noise = _Noise(seeds, sigma * math.sqrt(dt / DMFParams().tau_s) / dt, dtype) if sigma > 0 else None
    every = int(round(spec.fixed["record_dt"] / dt))
    with torch.no_grad():
        rates, _ = integrate(W, drive, int(round(duration / dt)), dt, DMFParams(), inputs=noise,
                             record_every=every)
    return rates.permute(1, 0, 2).numpy()


def status_of(rates: np.ndarray) -> tuple[str, str]:
    """(status, message) of one simulation's rates (steps, 8)."""
    if not np.all(np.isfinite(rates)):
        return "failed", "non-finite rate"
    if rates[-1].max() > RUNAWAY_RATE:
        return "runaway", f"a population ends above {RUNAWAY_RATE:g} Hz"
    if rates[-1, pd.EXCITATORY].max() < SILENT_RATE:
        return "silent", f"every E population ends below {SILENT_RATE:g} Hz"
    return "ok", ""


def run(spec, params: dict, seed: int, duration: float) -> dict:
    """One simulation: {"state": {"rate": (steps, 8)}, "status", "message", "t_end"}."""
    return run_batch(spec, [params], [seed], duration)[0]


def run_batch(spec, params_rows: list[dict], seeds, duration: float) -> list[dict]:
    """Many simulations integrated as one batch; each equals its own ``run``."""
    out = []
    for rates in simulate_rates(spec, params_rows, seeds, duration):
        status, message = status_of(rates)
        out.append({"state": {"rate": rates}, "status": status, "message": message,
                    "t_end": duration})
    return out
