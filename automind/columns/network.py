"""A circuit of columns as a torch module: trainable entries for S independent parameter sets.

States are (S, n, P): S parameter sets (e.g. training seeds, each with its own trained
weights), n trials each, P populations. Trained entries live in ``conn_values`` (S, n_conn)
and ``input_values`` (S, n_in_entries), in units of W before the entry's gain; everything
else is fixed. Gradients reach only the trained entries, so every optimiser respects the mask.
"""

from __future__ import annotations

import numpy as np

from . import pd
from .circuit import CircuitSpec
from .dmf import integrate


def _torch():
    import torch

    return torch


class Circuit(_torch().nn.Module):
    def __init__(self, spec: CircuitSpec, n_sets: int = 1, dtype=None):
        torch = _torch()
        super().__init__()
        dtype = dtype or torch.float32
        self.spec, self.n_sets = spec, n_sets
        W, W_in, drive = spec.matrices()
        trained = [c for c in spec.connections if c.train]
        rows = [c.target for c in trained]
        cols = [c.source for c in trained]
        gains = np.array([c.gain for c in trained])
        start = W[rows, cols] / np.where(gains == 0, 1, gains) if trained else np.zeros(0)
        W_fixed = W.copy()
        W_fixed[rows, cols] = 0.0
        in_entries = [(pop, k, w, ch.gain) for k, ch in enumerate(spec.inputs) if ch.train
                      for pop, w in ch.targets]
        W_in_fixed = W_in.copy()
        for pop, k, _, _ in in_entries:
            W_in_fixed[pop, k] = 0.0
        as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)  # noqa: E731
        self.register_buffer("W_fixed", as_t(W_fixed))
        self.register_buffer("W_in_fixed", as_t(W_in_fixed))
        self.register_buffer("drive", as_t(drive))
        self.register_buffer("conn_gain", as_t(gains))
        self.register_buffer("in_gain", as_t([e[3] for e in in_entries]))
        excitatory = np.tile(pd.EXCITATORY, len(spec.columns))
        self.register_buffer("conn_excitatory", torch.as_tensor(excitatory[cols], dtype=torch.bool))
        self.conn_index = (torch.as_tensor(rows, dtype=torch.long),
                           torch.as_tensor(cols, dtype=torch.long))
        self.in_index = (torch.as_tensor([e[0] for e in in_entries], dtype=torch.long),
                         torch.as_tensor([e[1] for e in in_entries], dtype=torch.long))
        self.conn_values = torch.nn.Parameter(as_t(start).repeat(n_sets, 1))
        self.input_values = torch.nn.Parameter(as_t([e[2] for e in in_entries]).repeat(n_sets, 1))

    @property
    def populations(self) -> tuple[str, ...]:
        return self.spec.populations

    def weights(self):
        """(W (S, P, P), W_in (S, P, n_inputs)) with the trained entries filled in."""
        S = self.n_sets
        W = self.W_fixed.expand(S, -1, -1).clone()
        if self.conn_values.shape[1]:
            W[:, self.conn_index[0], self.conn_index[1]] = self.conn_values * self.conn_gain
        W_in = self.W_in_fixed.expand(S, -1, -1).clone()
        if self.input_values.shape[1]:
            W_in[:, self.in_index[0], self.in_index[1]] = self.input_values * self.in_gain
        return W, W_in

    def keep_signs(self) -> None:
        """Dale's law by projection (after an optimiser step): trained entries from E sources
        stay >= 0, from I sources <= 0 (ODE-Column's ``enforce_pos_neg``). Input weights keep
        any sign: as in ODE-Column's XOR, the summed input current of each population is
        rectified instead (``forward``)."""
        torch = _torch()
        with torch.no_grad():
            v = self.conn_values
            v.copy_(torch.where(self.conn_excitatory, v.clamp(min=0), v.clamp(max=0)))

    def settle(self, n_trials: int, duration: float = 0.2, dt: float = 1e-4):
        """(I, H) after ``duration`` s without input from rest, detached (no gradient): every
        trial starts at the circuit's own baseline."""
        torch = _torch()
        with torch.no_grad():
            W, _ = self.weights()
            _, state = integrate(W, self.drive, int(round(duration / dt)), dt, self.spec.params,
                                 batch=(self.n_sets, n_trials), record_every=10 ** 9)
        return state

    def forward(self, inputs, dt: float = 1e-4, method: str = "euler", record=None,
                record_every: int = 1, settle: float = 0.2, generator=None):
        """Rates (T_rec, S, n, P_rec) for input rates ``inputs`` (steps, S, n, n_inputs) in Hz;
        each population's input current is rectified (>= 0)."""
        W, W_in = self.weights()
        U = (inputs @ W_in.mT).clamp(min=0)   # input currents are never negative (O: relu)
        state = self.settle(inputs.shape[2], settle, dt) if settle > 0 else None
        rates, _ = integrate(W, self.drive, inputs.shape[0], dt, self.spec.params, inputs=U,
                             state=state, method=method, record=record,
                             record_every=record_every, generator=generator,
                             batch=(self.n_sets, inputs.shape[2]))
        return rates
