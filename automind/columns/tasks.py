"""Tasks for circuits of columns: winner-take-all against the Wong & Wang (2006) reduced
model, and XOR across three columns (after ccnmaastricht/ODE-Column's scripts, re-implemented
from the equations in shared/spec/rsnn.md §6; no code copied).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .circuit import CircuitSpec

TASKS = ("wta", "xor")
STIM_INDEGREES = {"L4E": 295, "L4I": 186}   # stimulus in-degrees (ODE-Column config/model.toml)


# ---- Wong & Wang (2006) two-variable reduced model ---------------------------------------

@dataclass(frozen=True)
class WongWang:
    gamma: float = 0.641
    tau_s: float = 0.1           # s, NMDA gating
    tau_ampa: float = 2e-3       # s, noise filter
    J_within: float = 0.2609     # nA
    J_between: float = -0.0497   # nA
    J_ext: float = 5.2e-4        # nA/Hz
    I_0: float = 0.3255          # nA
    sigma_noise: float = 0.02    # nA
    a: float = 270.0
    b: float = 108.0
    d: float = 0.154

    def rate(self, x):
        y = self.a * x - self.b
        return y / -np.expm1(-self.d * y)

    def simulate(self, mu: np.ndarray, rng: np.random.Generator, dt: float = 1e-3,
                 pre: float = 5.0, stim: float = 5.0, post: float = 5.0) -> np.ndarray:
        """Rates (steps, trials, 2) in Hz for stimulus rates ``mu`` (trials, 2), Euler at dt."""
        n_pre, n_stim, n_post = (int(round(t / dt)) for t in (pre, stim, post))
        trials = mu.shape[0]
        S = np.full((trials, 2), 0.1)
        noise = np.zeros((trials, 2))
        out = np.empty((n_pre + n_stim + n_post, trials, 2))
        coupling = np.array([[self.J_within, self.J_between], [self.J_between, self.J_within]])
        for n in range(len(out)):
            current = self.J_ext * mu if n_pre <= n < n_pre + n_stim else 0.0
            x = S @ coupling.T + self.I_0 + current + noise
            r = self.rate(x)
            out[n] = r
            S = S + dt * (-S / self.tau_s + (1 - S) * self.gamma * r)
            noise = noise + dt / self.tau_ampa * -noise + \
                self.sigma_noise * np.sqrt(dt / self.tau_ampa) * rng.standard_normal((trials, 2))
        return out


@dataclass(frozen=True)
class Batch:
    inputs: np.ndarray     # (steps, trials, n_inputs) Hz
    targets: np.ndarray    # (steps or 1, trials, n_readout)
    labels: np.ndarray     # (trials,) winner index (WTA) or pattern index (XOR)


COLUMN_VARIANTS = ("ode_column", "evers")   # the tasks' default first (ODE-Column's scripts)


def _params(column: str, **extra) -> dict:
    if column not in COLUMN_VARIANTS:
        raise UserError(f"unknown column variant {column!r}; use one of {', '.join(COLUMN_VARIANTS)}")
    return {"variant": column} | (extra if column == "ode_column" else {})


def wta_spec(column: str = "ode_column") -> CircuitSpec:
    """Two columns; trained: L2/3E self-excitation and L2/3E -> L2/3I of the other column
    (ODE-Column scripts/wta_ode.py); sizes halved for the ODE-Column variant."""
    conns = []
    for me, other in (("A", "B"), ("B", "A")):
        conns.append({"source": f"{me}.L23E", "target": f"{me}.L23E", "train": True})
        conns.append({"source": f"{me}.L23E", "target": f"{other}.L23I", "weight": 0.0,
                      "train": True})
    inputs = [{"name": f"stim_{c}", "targets": {f"{c}.{p}": k for p, k in STIM_INDEGREES.items()}}
              for c in ("A", "B")]
    return CircuitSpec.from_dict({"columns": ["A", "B"], "connections": conns, "inputs": inputs,
                                  "readout": ["A.L23E", "B.L23E"], "params": _params(column)})


def wta_batch(trials: int, rng: np.random.Generator, steps: int = 1500,
              model: WongWang = WongWang()) -> Batch:
    """μ_A ~ U(15, 25), μ_B = μ_A + U(10, 20), randomly swapped; Wong-Wang traces (15 s at
    1 ms) subsampled x10 and divided by 20 are the targets of 1500 column steps (time
    compressed 100x); the columns get μ during the middle third."""
    mu_a = rng.uniform(15, 25, trials)
    mu = np.stack([mu_a, mu_a + rng.uniform(10, 20, trials)], axis=1)
    swap = rng.random(trials) < 0.5
    mu[swap] = mu[swap, ::-1]
    target = model.simulate(mu, rng)[::10][:steps] / 20.0
    inputs = np.zeros((steps, trials, 2))
    third = steps // 3
    inputs[third:2 * third] = mu
    return Batch(inputs, target, mu.argmax(1))


def xor_spec(column: str = "ode_column") -> CircuitSpec:
    """Inputs x1, x2 each onto L4E/L4I of both A and B (trained; ODE-Column src/xor_columns.py:
    a 2-2-1 network), A and B feeding C through trained weights from their L2/3E onto C's
    L4E/L4I with a fixed gain of 10; readout C.L2/3E. ODE-Column sizes are halved (its XOR
    net reuses the two-column weights for C)."""
    inputs = [{"name": name, "train": True,
               "targets": {f"{c}.{p}": k for c in ("A", "B") for p, k in STIM_INDEGREES.items()}}
              for name in ("x1", "x2")]
    conns = [{"source": f"{c}.L23E", "target": f"C.{p}", "indegree": k, "gain": 10.0,
              "train": True} for c in ("A", "B") for p, k in STIM_INDEGREES.items()]
    return CircuitSpec.from_dict({"columns": ["A", "B", "C"], "connections": conns,
                                  "inputs": inputs, "readout": ["C.L23E"],
                                  "params": _params(column, size_divisor=2.0)})


XOR_PATTERNS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
XOR_TARGETS = np.array([0.25, 1.0, 1.0, 0.25])


def xor_batch(patterns: np.ndarray, steps_blank: int, steps_stim: int,
              rate: float = 20.0, amplitudes: np.ndarray | None = None) -> Batch:
    """Blank, then 0 / ``rate`` Hz on inputs x1, x2 (times a per-trial ``amplitudes``, 1 by
    default); target: final C.L2/3E rate 1.0 (XOR) or 0.25."""
    patterns = np.asarray(patterns)
    scale = np.ones(len(patterns)) if amplitudes is None else np.asarray(amplitudes)
    inputs = np.zeros((steps_blank + steps_stim, len(patterns), 2))
    inputs[steps_blank:] = XOR_PATTERNS[patterns] * rate * scale[:, None]
    return Batch(inputs, XOR_TARGETS[patterns][None, :, None], patterns)


def xor_training_patterns(trials: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(patterns, amplitudes) of one training batch as ODE-Column's scripts/xor_ode.py draws it:
    all four patterns in every block of four (shuffled), each "1" scaled by U(0.975, 1.025)."""
    blocks = -(-trials // 4)
    patterns = np.concatenate([rng.permutation(4) for _ in range(blocks)])[:trials]
    return patterns, rng.uniform(0.975, 1.025, trials)


def check_task(task: str) -> str:
    if task not in TASKS:
        raise UserError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return task
