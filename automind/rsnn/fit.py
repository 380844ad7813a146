"""Fit θ of MK1 by gradient descent through TorchMK1 (spec rsnn.md §5a), as a library call.

Loss = validate's d²: the mean over the chosen features of ((t(x) − t(x*))/σ)², t the
feature-set transform (log10 where marked), computed by the differentiable features on the
same units as ``mk1_compact`` (spike statistics on all units, PSD bands on E). θ moves in
the prior box's logit coordinates (``inference.transforms``) with Adam, K starts in one
batch, new noise and graph every step, the learning rate annealed (cosine, to 5 %) and the
result the mean of the last quarter's iterates — or of the quarter with the lowest mean loss
where the last one's is over twice that and over 2 (``best_window``: a start led uphill).
A start whose loss turns NaN (or whose
gradient is NaN MAX_NAN_GRADIENTS steps running; single NaN-gradient steps are skipped) is
marked ``failed`` and frozen; the others go on. Structural entries (exc_prop, n_clusters,
p_igniters, E.t_refrac) stay at their start values.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..features.sets import MK1_COMPACT, PSD_BANDS
from ..simulators.execution import simulation_seed
from . import features as F
from .mk1 import TRAINABLE, TorchMK1

_BAND = {name: k for k, name in enumerate(PSD_BANDS.names)}
_SPIKE_STATS = {
    "rate_mean": lambda c: F.rate_mean_std(c)[0],
    "rate_std": lambda c: F.rate_mean_std(c)[1],
    "fano_10ms": lambda c: F.fano(c, 0.01),
    "fano_100ms": lambda c: F.fano(c, 0.1),
    "fano_1s": lambda c: F.fano(c, 1.0),
    "corr_mean": F.corr_mean,
}
#: features a gradient fit can use (names as in the feature sets)
DIFFERENTIABLE = tuple(_SPIKE_STATS) + tuple(_BAND)
#: a fit's last stretch of steps must have a mean loss over this many times its lowest
#: stretch's (and over this many times 1, d² at the truth) before the fit reports that
#: stretch instead (``best_window``)
CLIMB = 2.0
#: consecutive NaN-gradient steps (skipped) before a start is marked failed
MAX_NAN_GRADIENTS = 5
_LOG10 = dict(zip(MK1_COMPACT.names, MK1_COMPACT.log10))


@dataclass
class FitResult:
    names: list[str]                 # prior parameter names (columns of theta)
    theta: np.ndarray                # (K, d) final θ, prior units
    loss: np.ndarray                 # (steps, K) loss curve (NaN after a start failed)
    status: list[str]                # "ok" | "failed" per start
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    path: np.ndarray | None = None   # (steps, K, d) θ at each step (prior units; loss[t] is its)
    window: np.ndarray | None = None  # (K,) first step of the iterates averaged into theta

    @property
    def best(self) -> int:
        """The start with the lowest mean loss over the last 10 steps (ok starts only)."""
        tail = np.nanmean(self.loss[-10:], 0)
        tail[np.array(self.status) != "ok"] = np.inf
        return int(np.argmin(tail))


def polyak_tail(steps: int) -> int:
    """How many last iterates a fit of ``steps`` steps averages into its result (a quarter)."""
    return max(1, steps // 4)


def best_window(curve: np.ndarray, length: int, climb: float = CLIMB) -> int:
    """The first step of the ``length`` consecutive steps a fit's θ is averaged over: the last
    ones, unless their mean loss is over ``climb`` × that of the lowest stretch, or of 1 if
    that is lower (d² at the truth is ~1: below, stretches differ by noise; NaN steps ignored;
    the latest of equal stretches) — a surrogate gradient can lead a start uphill
    (two of the study's prior starts climbed from d² 14 to 75-90 and stayed), and the fit then
    reports the best stretch it visited. Not the lowest stretch always: once a fit has
    converged its loss only fluctuates, and the lowest stretch would be a noise dip before the
    learning rate was annealed."""
    curve = np.asarray(curve, float)
    n = len(curve) - length + 1
    if n <= 0 or not np.isfinite(curve).any():
        return max(n - 1, 0)
    finite = np.isfinite(curve)
    sums = np.convolve(np.where(finite, curve, 0.0), np.ones(length), "valid")
    counts = np.convolve(finite.astype(float), np.ones(length), "valid")
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.inf)
    best = int(n - 1 - np.argmin(means[::-1]))
    return n - 1 if means[-1] <= climb * max(means[best], 1.0) else best


def _check(prior, target: dict, scale: dict, free) -> list[str]:
    unknown = [n for n in target if n not in DIFFERENTIABLE]
    if not target or len(unknown) == len(target):
        raise UserError(f"gradient fit: no differentiable feature among {sorted(target)}; "
                        f"differentiable: {sorted(DIFFERENTIABLE)}")
    if unknown:
        raise UserError(f"gradient fit: features {unknown} are not differentiable")
    missing = [n for n in target if not (scale.get(n, 0) > 0)]
    if missing:
        raise UserError(f"gradient fit: features {missing} need a noise scale σ > 0")
    free = [n for n in prior.names if n in TRAINABLE] if free is None else list(free)
    bad = [n for n in free if n not in prior.names or n not in TRAINABLE]
    if bad:
        raise UserError(f"gradient fit: cannot fit {bad} by gradient (not in the prior, or "
                        f"structural); trainable: {[n for n in prior.names if n in TRAINABLE]}")
    return free


def fit_theta(spec, prior, target: dict[str, float], scale: dict[str, float], starts,
              free=None, steps: int = 100, lr: float = 0.05, seed: int = 0,
              duration: float | None = None, t_from: float | None = None,
              device: str = "cpu", dtype=torch.float64, progress=None, extra=None,
              memory_limit: float | None = None, detach_exp: bool = True,
              recurrent_grad: float = 1.0, checkpoint=None,
              checkpoint_every: int = 500) -> FitResult:
    """Fit θ from K ``starts`` (prior units, e.g. prior or posterior samples) to ``target``
    (feature name -> value in the transformed space, as validate compares) with noise scales
    ``scale`` (same names). ``extra(counts, counts_e, n_e) -> (B,)``: terms added to d² (1 ms
    counts of all units and the E population's summed counts). ``detach_exp``: drop the AdEx
    exponential's ∂/∂v in backward (``TorchMK1``), without which the gradient of a slowly
    firing start explodes (10⁹ with a random sign, N = 20, 1.5 Hz drive). ``recurrent_grad``:
    the factor on the gradient through presynaptic spikes per synaptic hop (``TorchMK1``;
    through the whole loop it reached 10³⁴–10⁴² at N = 500 over 2.6 s). ``checkpoint``: a
    file the state is saved to every ``checkpoint_every`` steps and resumed from (steps draw
    their noise from (seed, step), so a resumed fit equals an uninterrupted one). Returns
    every start's path end, loss curve and status."""
    from ..inference.transforms import BoxToUnconstrained

    free = _check(prior, target, scale, free)
    starts = prior.validate(starts)
    K = len(starts)
    objective = Loss(spec, prior, target, scale, free, duration, t_from, dtype, device, extra,
                     memory_limit, detach_exp, recurrent_grad=recurrent_grad)
    box = BoxToUnconstrained.for_prior(prior)
    z = box.to_z(starts).double().requires_grad_(True)
    free_mask = torch.tensor([n in free for n in prior.names])
    optimizer = torch.optim.Adam([z], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=0.05 * lr)
    tail = polyak_tail(steps)
    path, nan_grads = torch.zeros((steps,) + tuple(z.shape), dtype=z.dtype), [0] * K
    status, messages = ["ok"] * K, [""] * K
    curve = np.full((steps, K), np.nan)
    first, spent = resume_state(checkpoint, z, optimizer, scheduler, path, nan_grads, status,
                                messages, curve)
    start_time = time.perf_counter() - spent
    for step in range(first, steps):
        theta = box.to_theta(z)
        live = [k for k in range(K) if status[k] == "ok"]
        if not live:
            break
        path[step] = z.detach()
        loss = objective(theta[live], [simulation_seed(seed, step * K + k) for k in live])
        optimizer.zero_grad()
        finite = torch.isfinite(loss)
        if finite.any():
            loss[finite].sum().backward()
        if z.grad is None:
            z.grad = torch.zeros_like(z)
        frozen = record_step(step, live, loss, finite, torch.isfinite(z.grad).all(1), curve,
                             nan_grads, status, messages)
        z.grad[:, ~free_mask] = 0
        z.grad.nan_to_num_(0.0)
        before = z.detach().clone()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            z[frozen] = before[frozen]  # failed starts and NaN-gradient steps do not move
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_state(checkpoint, step, z, optimizer, path, nan_grads, status, messages, curve,
                       time.perf_counter() - start_time)
        if progress:
            progress(step, curve[step])
    # ok starts: the mean of a quarter of the iterates (Polyak averaging; the last quarter
    # unless the start climbed, ``best_window``); failed starts: where they stopped
    window = np.array([best_window(curve[:, k], tail) for k in range(K)])
    with torch.no_grad():
        z_end = z.detach().clone()
        for k in range(K):
            if status[k] == "ok":
                z_end[k] = path[window[k]:window[k] + tail, k].mean(0)
    return FitResult(list(prior.names), box.to_theta(z_end).numpy(), curve, status, messages,
                     time.perf_counter() - start_time,
                     path=box.to_theta(path.reshape(-1, z.shape[1])).numpy().reshape(path.shape),
                     window=window)


def save_state(path, step, param, optimizer, accumulator, nan_grads, status, messages, curve,
               seconds):
    """Everything a resumed fit needs after ``step`` (plain arrays: no pickle): the fitted
    tensor ``param``, its optimizer state (Adam's or ExpAdam's), the ``accumulator`` (θ fits:
    the path of iterates; weight fits: the tail's log-weight sum)."""
    from ..io import save_npz

    state = {}
    for key, value in optimizer.state[param].items():  # tensors, or a step count as a number
        state[f"opt_{key}"] = value.detach().numpy() if torch.is_tensor(value) else np.asarray(value)
        state[f"opt_{key}_is_tensor"] = np.asarray(torch.is_tensor(value))
    save_npz(path, step=step, param=param.detach().numpy(), accumulator=accumulator.numpy(),
             nan_grads=np.array(nan_grads), status=np.array(status), messages=np.array(messages),
             curve=curve, seconds=seconds, **state)


def resume_state(path, param, optimizer, scheduler, accumulator, nan_grads, status, messages,
                 curve):
    """Load ``save_state``'s checkpoint ``path`` into the fit's state; returns (next step,
    seconds spent): (0, 0) without one (None or no file). A checkpoint of another fit (other
    starts, graphs or steps) is refused."""
    import warnings

    if path is None or not Path(path).is_file():
        return 0, 0.0
    with np.load(path, allow_pickle=False) as saved:
        if ("param" not in saved.files or saved["param"].shape != tuple(param.shape)
                or saved["curve"].shape != curve.shape
                or saved["accumulator"].shape != tuple(accumulator.shape)):
            raise UserError(f"{path} is a checkpoint of another fit (starts or steps differ, or an "
                            "older automind's); remove it to start this fit afresh")
        step = int(saved["step"])
        with torch.no_grad():
            param.copy_(torch.as_tensor(saved["param"]))
        accumulator.copy_(torch.as_tensor(saved["accumulator"]))
        state = {}
        for name in saved.files:
            if name.startswith("opt_") and not name.endswith("_is_tensor"):
                value = saved[name]
                state[name[4:]] = (torch.as_tensor(value).clone()
                                   if bool(saved[f"{name}_is_tensor"]) else value.item())
        optimizer.state[param] = state
        nan_grads[:] = saved["nan_grads"].tolist()
        status[:], messages[:] = saved["status"].tolist(), saved["messages"].tolist()
        curve[:] = saved["curve"]
        seconds = float(saved["seconds"])
    with warnings.catch_warnings():  # the schedule's own recurrence, replayed to this step
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(step + 1):
            scheduler.step()
    return step + 1, seconds


class Loss:
    """d² (+ ``extra``) of θ rows (a (B, d) float64 tensor in prior units, gradients flow to
    the ``free`` columns) on new simulations with the given seeds: ``loss(theta, seeds)``."""

    def __init__(self, spec, prior, target: dict, scale: dict, free, duration=None, t_from=None,
                 dtype=torch.float64, device: str = "cpu", extra=None, memory_limit=None,
                 detach_exp: bool = True, recurrent_grad: float = 1.0):
        self.spec, self.prior, self.free, self.dtype, self.extra = spec, prior, free, dtype, extra
        self.duration = spec.duration if duration is None else duration
        t_from = spec.t_analysis_start if t_from is None else t_from
        self.model = TorchMK1(spec, device=device, dtype=dtype, propagation="dense",
                              detach_exp=detach_exp, recurrent_grad=recurrent_grad)
        self.steps_per_ms = round(1e-3 / spec.dt)
        self.skip = int(round(t_from / 1e-3))
        self.factors = torch.tensor([p.si_factor for p in prior.parameters], dtype=torch.float64)
        self.names = list(target)
        self.goal = torch.tensor([target[n] for n in self.names], dtype=torch.float64)
        self.sigma = torch.tensor([scale[n] for n in self.names], dtype=torch.float64)
        self.limit = {} if memory_limit is None else {"memory_limit": memory_limit}

    def __call__(self, theta: torch.Tensor, seeds) -> torch.Tensor:
        dtype, spec = self.dtype, self.spec
        params_list = [self.prior.to_simulator(row.detach().numpy()) for row in theta]
        si = theta * self.factors
        P = {}
        device = self.model.device  # θ and the optimiser stay on the CPU, the network runs here
        for j, name in enumerate(self.prior.names):
            column = si[:, j:j + 1].to(device, dtype)
            P[name] = column if name in self.free else column.detach()
        for name in params_list[0]:  # constants of the prior
            if name not in P:
                P[name] = torch.tensor([[p[name]] for p in params_list], dtype=dtype,
                                       device=device)
        spikes, _ = self.model.run_differentiable(params_list, list(seeds), self.duration,
                                                  trainable=(), P=P, **self.limit)
        return self.of_spikes(spikes, params_list)

    def of_spikes(self, spikes: torch.Tensor, params_list: list[dict]) -> torch.Tensor:
        """The loss (B,) of differentiable spikes (B, steps, N) of networks with θ ``params_list``."""
        counts, counts_e, n_e = self._counts(spikes, params_list)
        loss = (self._residuals(counts, counts_e, n_e) ** 2).mean(1)
        if self.extra is not None:
            loss = loss + self.extra(counts, counts_e, n_e)
        return loss

    def residuals(self, theta, seeds) -> np.ndarray:
        """(B, m) standardised residuals (feature − target) / σ of θ rows (prior units) on
        forward runs with the given seeds, no gradients: the d² part of the loss is their
        mean square. Not held to the memory limit: that estimates autograd's graph, which a
        run without gradients does not build (it keeps only the spikes)."""
        theta = torch.as_tensor(np.asarray(theta, float), dtype=torch.float64)
        params_list = [self.prior.to_simulator(row.numpy()) for row in theta]
        with torch.no_grad():
            spikes, _ = self.model.run_differentiable(params_list, list(seeds), self.duration,
                                                      trainable=(), memory_limit=math.inf)
            return self._residuals(*self._counts(spikes, params_list)).numpy()

    def _counts(self, spikes, params_list):
        """Per-ms spike counts after the transient (B, T, N), the E population's (B, T), n_E;
        on the CPU, where the target and the loss terms live (gradients flow back)."""
        counts = F.bin_ms(spikes, self.steps_per_ms)[:, self.skip:].cpu()
        n_e = [int(round(self.spec.N * p["exc_prop"])) for p in params_list]
        counts_e = torch.stack([counts[b, :, :max(min(n, self.spec.N - 1), 1)].sum(1)
                                for b, n in enumerate(n_e)], 0)  # population rate needs E only
        return counts, counts_e, n_e

    def _residuals(self, counts, counts_e, n_e) -> torch.Tensor:
        values = torch.stack([_feature(name, counts, counts_e, n_e) for name in self.names], 1)
        return (values - self.goal) / self.sigma


def record_step(step: int, live: list[int], loss, finite, grad_ok, curve, nan_grads: list[int],
                status: list[str], messages: list[str]) -> torch.Tensor:
    """One optimisation step's bookkeeping for K starts (``live`` of them stepped; loss row b is
    start live[b]): record the loss curve, fail a start whose loss is NaN or whose gradient has
    been NaN ``MAX_NAN_GRADIENTS`` steps running. Returns which starts must not move this step."""
    frozen = torch.ones(len(status), dtype=torch.bool)
    for b, k in enumerate(live):
        if not finite[b]:
            status[k], messages[k] = "failed", f"step {step}: the loss is NaN"
            continue
        curve[step, k] = float(loss[b].detach())
        nan_grads[k] = 0 if grad_ok[k] else nan_grads[k] + 1
        if nan_grads[k] >= MAX_NAN_GRADIENTS:
            status[k] = "failed"
            messages[k] = (f"step {step}: the gradient was NaN {MAX_NAN_GRADIENTS} steps running"
                           " (overflow through the recurrent loop? see --recurrent-grad)")
        frozen[k] = not grad_ok[k] or status[k] != "ok"
    return frozen


def _feature(name: str, counts, pop_counts, n_e) -> torch.Tensor:
    """One transformed feature (B,): ``pop_counts`` (B, T) are the E population's counts."""
    if name.startswith("psd_band_"):
        rates = pop_counts / torch.tensor(n_e, dtype=pop_counts.dtype)[:, None]
        raw = F.psd_bands(F.psd(rates.unsqueeze(2)))[:, _BAND[name]]
    else:
        raw = _SPIKE_STATS[name](counts)
    return F.log10_floor(raw) if _LOG10.get(name, False) else raw
