"""Fit the per-synapse weights of realised MK1 graphs with exponentiated Adam (spec rsnn.md §5).

θ stays fixed at each start; its graph is drawn once (``realise``: the torch builder's graph
for the start's θ and a graph seed) and its weights become the parameters: a signed (K, N, N)
tensor S, S = +q for an excitatory presynaptic neuron, −q for an inhibitory one, 0 where
there is no synapse. ``ExpAdam`` multiplies every entry by a positive factor, so no weight
changes sign (Dale's law: E neurons stay excitatory, I inhibitory), zeros stay zero (the
graph does not change) and weights never turn negative as conductances. Each step runs the
dense differentiable network on W = |S| (new drive and initial state, the same graph), the
loss is ``fit.Loss``'s (validate's d² plus extra terms), the step size annealed (cosine, to
5 %); NaN losses and gradients fail a
start as in ``fit_theta``. The result is the geometric mean of the last quarter's iterates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..simulators.execution import simulation_seed
from .fit import Loss, _check, polyak_tail, record_step, resume_state, save_state
from . import network
from .mk1 import TorchMK1
from .optim import ExpAdam


@dataclass
class WeightFitResult:
    start: list[dict]                # per start: the realised graph, its start weights
    fitted: list[dict]               # per start: the same synapses, fitted weights
    loss: np.ndarray                 # (steps, K) loss curve (NaN after a start failed)
    status: list[str]                # "ok" | "failed" per start
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0


def realise(spec, params_list: list[dict], graph_seeds: list[int]) -> list[dict]:
    """Each θ's graph as the torch builder draws it with its graph seed, as connectivity
    dicts {"syn_exc" | "syn_inh": (pre, post), "q_exc" | "q_inh": weights (S)}."""
    model = TorchMK1(spec, dtype=torch.float64, propagation="event")
    with torch.no_grad():
        net = model.build(params_list, graph_seeds)
    out = []
    for b, (pre, post, q) in enumerate(net["graph"].synapses):
        from_e = net["exc"][b][pre]
        graph = TorchMK1.connectivity(net["graph"], b, net["exc"][b])
        graph["q_exc"] = q[from_e].numpy().copy()
        graph["q_inh"] = q[~from_e].numpy().copy()
        out.append(graph)
    return out


def exc_flags(spec, params: dict) -> np.ndarray:
    """(N,) bool: the excitatory neurons (the first N_E)."""
    from ..simulators.mk1 import layout

    return np.arange(spec.N) < layout(spec, params)["E"][1]


def to_signed(spec, graphs: list[dict]) -> torch.Tensor:
    """(K, N, N) S[k, pre, post]: +q from E, −q from I, 0 without a synapse."""
    S = torch.zeros((len(graphs), spec.N, spec.N), dtype=torch.float64)
    for k, g in enumerate(graphs):
        for key, sign in (("exc", 1.0), ("inh", -1.0)):
            pre, post = (torch.as_tensor(np.asarray(a, np.int64)) for a in g[f"syn_{key}"])
            S[k, pre, post] = sign * torch.as_tensor(np.asarray(g[f"q_{key}"], float))
    return S


def from_signed(graphs: list[dict], S: torch.Tensor) -> list[dict]:
    """The graphs with the weights |S| read at their synapses."""
    out = []
    for k, g in enumerate(graphs):
        new = {key: g[key] for key in ("syn_exc", "syn_inh")}
        for key in ("exc", "inh"):
            pre, post = (np.asarray(a, np.int64) for a in g[f"syn_{key}"])
            new[f"q_{key}"] = S[k, pre, post].abs().numpy().copy()
        out.append(new)
    return out


def fit_weights(spec, prior, params_list: list[dict], graphs: list[dict], target: dict,
                scale: dict, steps: int = 100, lr: float = 0.02, seed: int = 0,
                duration: float | None = None, t_from: float | None = None,
                dtype=torch.float64, progress=None, extra=None,
                memory_limit: float | None = None, repeats: int = 1,
                detach_recurrent: bool = True, checkpoint=None,
                checkpoint_every: int = 500, device: str = "cpu") -> WeightFitResult:
    """Fit the weights of ``graphs`` (``realise``; θ ``params_list`` fixed, SI) to ``target``
    (feature -> transformed value) with noise scales ``scale``, all K networks in one batch;
    ``lr``: ExpAdam's step in log|w|; ``repeats``: runs per start and step (new drive each),
    whose mean loss is descended: a synapse's gradient is noisy, the mean of R runs has 1/R
    of its variance; ``detach_recurrent``: a weight's gradient through its direct effect on
    the postsynaptic neuron only (``TorchMK1``). ``extra``, ``checkpoint`` and
    ``checkpoint_every`` as ``fit_theta``'s (a resumed fit equals an uninterrupted one);
    ``device``: where the networks run (the weights and the optimiser stay on the CPU)."""
    _check(prior, target, scale, [])
    K = len(params_list)
    objective = Loss(spec, prior, target, scale, [], duration, t_from, dtype, device, extra,
                     memory_limit, detach_exp=True,
                     recurrent_grad=0.0 if detach_recurrent else 1.0)
    S0 = to_signed(spec, graphs)
    sign_pre = torch.stack([torch.as_tensor(exc_flags(spec, p), dtype=torch.float64) * 2 - 1
                            for p in params_list])[:, :, None]
    S = S0.clone().requires_grad_(True)
    optimizer = ExpAdam([S], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=0.05 * lr)
    tail = polyak_tail(steps)
    nonzero = S0 != 0
    log_sum = torch.zeros_like(S0)
    nan_grads, status, messages = [0] * K, ["ok"] * K, [""] * K
    curve = np.full((steps, K), np.nan)
    first, spent = resume_state(checkpoint, S, optimizer, scheduler, log_sum, nan_grads, status,
                                messages, curve)
    start_time = time.perf_counter() - spent
    for step in range(first, steps):
        live = [k for k in range(K) if status[k] == "ok"]
        if not live:
            break
        rows = [k for k in live for _ in range(repeats)]
        seeds = [simulation_seed(seed, (step * K + k) * repeats + r)
                 for k in live for r in range(repeats)]
        W = (S * sign_pre)[rows]  # = |S|, with the gradient of S
        params = [params_list[k] for k in rows]
        spikes, _ = objective.model.run_differentiable(
            params, seeds, objective.duration, trainable=(),
            P=network.theta_tensors(params, dtype, device), weights=W, **objective.limit)
        loss = objective.of_spikes(spikes, params).view(len(live), repeats).mean(1)
        optimizer.zero_grad()
        finite = torch.isfinite(loss)
        if finite.any():
            loss[finite].sum().backward()
        if S.grad is None:
            S.grad = torch.zeros_like(S)
        frozen = record_step(step, live, loss, finite, torch.isfinite(S.grad).flatten(1).all(1),
                             curve, nan_grads, status, messages)
        S.grad.nan_to_num_(0.0)
        before = S.detach().clone()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            S[frozen] = before[frozen]
            if step >= steps - tail:
                log_sum += torch.where(nonzero, S.abs().clamp_min(1e-300).log(), 0.0)
        if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_state(checkpoint, step, S, optimizer, log_sum, nan_grads, status, messages,
                       curve, time.perf_counter() - start_time)
        if progress:
            progress(step, curve[step])
    with torch.no_grad():  # ok starts: the geometric mean of the last quarter's iterates
        ok = torch.tensor([st == "ok" for st in status])[:, None, None]
        mean = torch.where(nonzero, torch.sign(S0) * torch.exp(log_sum / tail), 0.0)
        S_end = torch.where(ok, mean, S.detach())
    return WeightFitResult(graphs, from_signed(graphs, S_end), curve, status, messages,
                           time.perf_counter() - start_time)


def resimulate_weights(spec, params_list: list[dict], graphs: list[dict], seed: int,
                       feature_set: str) -> list:
    """Event-propagation torch runs (float64) of θ on the given graphs with new seeds
    (``simulation_seed(seed, k)``), with ``feature_set``'s features: a weight fit's check."""
    from ..features.sets import simulation_features

    model = TorchMK1(spec, dtype=torch.float64, propagation="event")
    seeds = [simulation_seed(seed, k) for k in range(len(params_list))]
    results = model.run_batch(params_list, seeds, imported=graphs)
    for result in results:
        result.features = simulation_features(result, [feature_set], spec.t_analysis_start)
    return results
