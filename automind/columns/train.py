"""Train a circuit of columns by backpropagation through its ODE solver (WTA, XOR).

``train_task("wta", out)`` writes to ``out``: ``train.json`` (settings, curves, held-out
scores before and after, times, provenance), ``weights.pt`` (the trained entries, a plain
tensor dict), ``curve.png`` and ``rates.png``. XOR trains several seeds at once as
independent parameter sets of one batched circuit (gradients and RMSprop updates never mix).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError, require_new_folder
from . import tasks

DEFAULTS = {
    # R§3.6 / spec §6: RMSprop lr 10, α 0.9, ExponentialLR 0.99 per step, 15 trials per step;
    # 60 steps (spec: 40; O: ~190): at 40 the held-out index was 0.74-0.79 over 3 seeds
    "wta": dict(steps=60, trials=15, lr=10.0, alpha=0.9, decay=0.99, decay_every=1, seeds=1,
                eval_trials=32, eval_every=5),
    # 160 samples in batches of 4 per epoch; RMSprop α 0.95, ExponentialLR 0.8 per epoch;
    # lr 0.2 = O scripts/xor_ode.py's 1e-4 on weights that carry τ_s (spec: 0.5, which
    # silenced one input in 3 of 5 seeds: docs/columns.md)
    "xor": dict(steps=160, trials=4, lr=0.2, alpha=0.95, decay=0.8, decay_every=40, seeds=5,
                eval_trials=4, eval_every=20),
}


@dataclass(frozen=True)
class TrainConfig:
    task: str
    steps: int
    trials: int
    lr: float
    alpha: float
    decay: float
    decay_every: int
    seeds: int
    eval_trials: int
    eval_every: int
    seed: int = 0
    dt: float = 1e-4
    method: str = "euler"
    settle: float = 0.2
    xor_blank: float = 0.05     # O: 0.5 s; every trial starts settled at baseline (``settle``)
    xor_stim: float = 0.2       # O: 0.5 s; 0.2 s = 10 τ_m (ODE-Column) reaches the driven steady state
    checkpoint_every: int = 10
    input_scale: float = 1.0     # multiplies the task's input rates (1 = as published)
    max_seconds: float = 0.0     # > 0: stop after the step that passes this wall-clock budget
    column: str = "ode_column"   # the column's constants (tasks.COLUMN_VARIANTS)
    dale: bool = True            # keep the trained entries' signs (projection after each step)

    @classmethod
    def for_task(cls, task: str, **overrides) -> "TrainConfig":
        tasks.check_task(task)
        values = DEFAULTS[task] | {k: v for k, v in overrides.items() if v is not None}
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UserError(f"unknown training setting(s) {sorted(unknown)}")
        config = cls(task=task, **values)
        config.check()
        return config

    def check(self) -> None:
        for name in ("steps", "trials", "seeds", "eval_trials", "eval_every", "decay_every",
                     "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("lr", "alpha", "decay", "dt", "xor_blank", "xor_stim", "input_scale"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise UserError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not (math.isfinite(self.max_seconds) and self.max_seconds >= 0):
            raise UserError(f"max_seconds must be >= 0 (0: no limit), got {self.max_seconds!r}")
        if self.task == "wta" and self.seeds != 1:
            raise UserError("wta trains one parameter set: use seeds = 1 (several runs: --seed)")
        if self.column not in tasks.COLUMN_VARIANTS:
            raise UserError(f"unknown column variant {self.column!r}; use one of "
                            f"{', '.join(tasks.COLUMN_VARIANTS)}")
        if self.method not in ("euler", "rk4"):
            raise UserError(f"training integrates with euler or rk4, not {self.method!r}")


class _Task:
    """Data, loss and held-out evaluation of one task for S parameter sets."""

    def __init__(self, config: TrainConfig):
        self.config = config
        make = tasks.wta_spec if config.task == "wta" else tasks.xor_spec
        self.spec = make(config.column)
        self.readout = list(self.spec.readout)
        if config.task == "xor":
            self.blank = int(round(config.xor_blank / config.dt))
            self.stim = int(round(config.xor_stim / config.dt))
        else:  # held-out trials from their own stream, never seen in training
            held = tasks.wta_batch(config.eval_trials, np.random.default_rng([config.seed, 1]))
            self.held_out = dataclasses.replace(held, inputs=held.inputs * config.input_scale)

    def batch(self, rng, trials):
        """Inputs (steps, S, n, n_in) and the per-set batches."""
        S = self.config.seeds
        if self.config.task == "wta":
            b = tasks.wta_batch(trials, rng)
            b = dataclasses.replace(b, inputs=b.inputs * self.config.input_scale)
            return np.broadcast_to(b.inputs[:, None], (len(b.inputs), S) + b.inputs.shape[1:]), [b] * S
        batches = []
        for _ in range(S):
            patterns, amplitudes = tasks.xor_training_patterns(trials, rng)
            batches.append(tasks.xor_batch(patterns, self.blank, self.stim,
                                           20.0 * self.config.input_scale, amplitudes))
        return np.stack([b.inputs for b in batches], axis=1), batches

    def loss(self, rates, batches, torch):
        """Mean over sets of each set's loss; rates (T, S, n, n_readout). Returns (total, per set)."""
        targets = torch.as_tensor(np.stack([b.targets for b in batches], axis=1), dtype=rates.dtype)
        if self.config.task == "wta":
            per = torch.nn.functional.smooth_l1_loss(rates, targets.expand_as(rates),
                                                     reduction="none").mean(dim=(0, 2, 3))
        else:
            per = (rates[-1:] - targets).abs().mean(dim=(0, 2, 3))
        return per.sum(), per

    def evaluate(self, circuit, torch) -> dict:
        """Held-out scores per parameter set (no gradient)."""
        c = self.config
        with torch.no_grad():
            if c.task == "wta":
                b = self.held_out
                rates = circuit(torch.as_tensor(b.inputs[:, None], dtype=torch.float32), c.dt,
                                c.method, record=self.readout, settle=c.settle)
                _, per = self.loss(rates, [b], torch)
                end = (2 * len(b.inputs)) // 3 - 1  # last step of the stimulus
                r = rates[end, 0].numpy()
                idx = np.arange(len(r))
                r_win, r_lose = r[idx, b.labels], r[idx, 1 - b.labels]
                index = (r_win - r_lose) / (r_win + r_lose)
                return {"loss": per.tolist(), "wta_index": [float(index.mean())],
                        "correct_winner": [int((r_win > r_lose).sum())], "trials": len(r)}
            inputs, batches = self._all_patterns()
            rates = circuit(torch.tensor(inputs, dtype=torch.float32), c.dt, c.method,
                            record=self.readout, settle=c.settle)
            _, per = self.loss(rates, batches, torch)
            final = rates[-1, :, :, 0].numpy()                        # (S, 4)
            own = np.abs(final - tasks.XOR_TARGETS)
            other = np.abs(final - (1.25 - tasks.XOR_TARGETS))  # the other target value
            correct = (own < other).sum(axis=1)
            return {"loss": per.tolist(), "correct_patterns": correct.tolist(),
                    "final_rates": final.tolist(),
                    "solved_seeds": int((correct == 4).sum())}

    def _all_patterns(self):
        b = tasks.xor_batch(np.arange(4), self.blank, self.stim, 20.0 * self.config.input_scale)
        S = self.config.seeds
        return np.broadcast_to(b.inputs[:, None], (len(b.inputs), S, 4, 2)), [b] * S


def train_task(task: str, out, progress: bool = False, **settings) -> dict:
    """Train the ``task`` circuit, write the run folder ``out``; returns the train.json dict.

    NaN in the loss or gradient stops training with a UserError naming the step; the last
    good weights are then in ``out/checkpoint.pt``.
    """
    import torch

    from .dmf import small_ops_threads

    config = TrainConfig.for_task(task, **settings)
    out = Path(out)
    require_new_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    task_obj = _Task(config)
    circuit = _initial_circuit(task_obj.spec, config)
    optimizer = torch.optim.RMSprop(circuit.parameters(), lr=config.lr, alpha=config.alpha)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.decay)
    rng = np.random.default_rng([config.seed, 0])
    curve, evals = [], []
    start = time.perf_counter()
    with small_ops_threads(0):
        evals.append({"step": 0} | task_obj.evaluate(circuit, torch))
        for step in range(1, config.steps + 1):
            inputs, batches = task_obj.batch(rng, config.trials)
            rates = circuit(torch.tensor(inputs, dtype=torch.float32),
                            config.dt, config.method, record=task_obj.readout,
                            settle=config.settle)
            loss, per = task_obj.loss(rates, batches, torch)
            optimizer.zero_grad()
            loss.backward()
            grads = [p.grad for p in circuit.parameters() if p.grad is not None]
            if not torch.isfinite(loss) or any(not torch.isfinite(g).all() for g in grads):
                _save_weights(out / "checkpoint.pt", circuit, step - 1)  # not yet updated
                raise UserError(f"training diverged at step {step} (NaN/inf loss or gradient); "
                                f"last good weights in {out / 'checkpoint.pt'}")
            optimizer.step()
            if config.dale:
                circuit.keep_signs()
            if step % config.decay_every == 0:
                scheduler.step()
            curve.append({"step": step, "loss": per.tolist(),
                          "seconds": round(time.perf_counter() - start, 3)})
            out_of_time = 0 < config.max_seconds < time.perf_counter() - start
            last = step == config.steps or out_of_time
            if step % config.checkpoint_every == 0 or last:
                _save_weights(out / "checkpoint.pt", circuit, step)
            if step % config.eval_every == 0 or last:
                evals.append({"step": step} | task_obj.evaluate(circuit, torch))
                if progress:
                    print(json.dumps(evals[-1]), flush=True)
            if last:
                break
    seconds = time.perf_counter() - start
    _save_weights(out / "weights.pt", circuit, step)
    result = _summary(config, task_obj, circuit, curve, evals, seconds)
    result["steps_done"] = step
    from .figures import rates_figure, training_curve_figure

    training_curve_figure(result, out / "curve.png")
    rates_figure(circuit, task_obj, config, out / "rates.png")
    _write_json(out / "train.json", result)
    return result


def _initial_circuit(spec, config):
    """The spec's initial values; XOR seeds start from independently jittered weights
    |w + 3 ξ| (units of W; ODE-Column src/xor_columns.py), seeded, so seeds differ in start
    and sample order, and A and B differ (the jitter breaks their symmetry)."""
    import torch

    from .network import Circuit

    circuit = Circuit(spec, n_sets=config.seeds)
    if config.task == "xor":
        gen = torch.Generator().manual_seed(config.seed)
        with torch.no_grad():
            for p in (circuit.conn_values, circuit.input_values):
                p.copy_((p + 3.0 * torch.randn(p.shape, generator=gen)).abs())
    return circuit


def _summary(config, task_obj, circuit, curve, evals, seconds) -> dict:
    from ..provenance import package_versions

    first, last = evals[0], evals[-1]
    result = {"task": config.task, "config": dataclasses.asdict(config),
              "circuit": {"populations": list(circuit.populations),
                          "trained_connections": [
                              f"{circuit.populations[c.source]}->{circuit.populations[c.target]}"
                              for c in task_obj.spec.connections if c.train],
                          "trained_inputs": [ch.name for ch in task_obj.spec.inputs if ch.train]},
              "curve": curve, "evaluations": evals, "seconds": round(seconds, 2),
              "before": first, "after": last,
              "weights": {"connections": circuit.conn_values.detach().tolist(),
                          "inputs": circuit.input_values.detach().tolist()},
              "versions": package_versions()}
    if config.task == "wta":
        result["success"] = bool(last["correct_winner"][0] == last["trials"]
                                 and last["wta_index"][0] >= 0.75)
    else:
        result["success"] = bool(last["solved_seeds"] >= max(1, math.ceil(0.8 * config.seeds)))
    return result


def _save_weights(path: Path, circuit, step: int) -> None:
    import io

    import torch

    from ..io import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save({"conn_values": circuit.conn_values.detach().clone(),
                "input_values": circuit.input_values.detach().clone(),
                "step": torch.tensor(step)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_weights(path, circuit) -> int:
    """Load trained entries saved by ``train_task`` into ``circuit`` (tensors only, no code
    executed); returns the step they were saved at."""
    import torch

    data = torch.load(path, weights_only=True)
    with torch.no_grad():
        circuit.conn_values.copy_(data["conn_values"])
        circuit.input_values.copy_(data["input_values"])
    return int(data["step"])


def _write_json(path: Path, data: dict) -> None:
    from ..io import write_json

    write_json(path, data, sort_keys=False)
