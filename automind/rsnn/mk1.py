"""TorchMK1: the MK1 network in discrete time, batched over θ (state (B, N)).

One step n (t = n·dt) in the Brian2 builder's schedule (groups, thresholds,
before_synapses, synapses, resets), forward Euler on the old values:
  1. not refractory: n − n_last ≥ R, R = int((t_refrac + 1e-3 dt)/dt) (Brian2's ``timestep``)
  2. v += [nr]·dt/C·(g_L(v_rest − v) + g_LΔT·exp(clip((v − v_T)/ΔT′, −50, 30)) − w
          + g_e(E_ge − v) + g_i(E_gi − v) + I_bias);  w += dt(a(v − v_rest) − w)/τ_w;
     g_x −= dt·g_x/τ_gx
  3. z = [v > v_cut]·nr
  4. g_e += Q_poisson·Poisson(N_poisson·ν·dt)           (the external drive)
  5. g_e += Σ_pre z·W (excitatory pre), g_i likewise (after ``delay``, by a ring buffer)
  6. where z: v ← v_reset, w += b; spike time n·dt
``propagation="event"`` gathers the rows of spiking neurons (banks); ``"dense"`` multiplies
the whole spike vector (fits, autograd). Elements that the probe window finds silent or
runaway stop there, as the compiled binary's controller does.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..errors import UserError
from ..simulators import mk1 as b2mk1
from ..simulators.simulator import SimulationResult, activity_status
from . import network
from .recurrent import RecurrentInput
from .surrogates import spike

NOISE_BLOCK = 100  # steps of Poisson drive drawn at once per element
NEVER = -(10 ** 9)  # last-spike step of a neuron that never spiked


def check_dt(dt: float) -> None:
    """The 1 ms feature bins need a whole number of steps per ms."""
    ratio = 1e-3 / dt
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        raise UserError(f"rsnn: dt = {dt * 1e3:g} ms does not divide 1 ms")


def last_step(t_stop: float, dt: float) -> int:
    """Number of steps the compiled controller runs for ``t_stop`` (it stops after the step
    with t + 1.5 dt > t_stop)."""
    n = max(0, int(t_stop / dt) - 3)
    while n * dt + 1.5 * dt <= t_stop:
        n += 1
    return n + 1


def dense_memory_bytes(B: int, N: int, steps: int, dtype=torch.float64) -> int:
    """Peak memory of a dense differentiable run (forward and backward), calibrated on the
    process's peak RSS (session 28, float32 and float64, B 2-10, N 100-500, 0.6-2 s at dt
    0.2 ms: 1.0-1.3× the measured; the tensors autograd saves are only ~40 % of it, the rest
    is its per-step graph and the allocator): ~32 (B, N) values and 32 kB per step, plus the
    (B, N, N) weights and their intermediates."""
    item = torch.empty((), dtype=dtype).element_size()
    return item * (32 * B * N * steps + 6 * B * N * N) + 32_000 * steps


def poisson_block(lam: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """(steps, N) independent Poisson(lam) counts per step and neuron, drawn as a Poisson
    process: each neuron's total over the block ~ Poisson(steps·lam), its events placed
    uniformly over the steps. Same distribution as one draw per step, but the cost follows the
    number of events rather than steps × N."""
    counts = torch.zeros(steps * len(lam), dtype=torch.float64)
    flat = poisson_events(lam, steps, generator)
    counts.index_add_(0, flat, torch.ones(len(flat), dtype=torch.float64))
    return counts.view(steps, len(lam))


def poisson_events(lam: torch.Tensor, steps: int, generator: torch.Generator) -> torch.Tensor:
    """``poisson_block``'s events as flat indices step·N + neuron (one per event)."""
    totals = torch.poisson(steps * lam, generator=generator)
    neuron = torch.repeat_interleave(torch.arange(len(lam)), totals.long())
    step = torch.randint(0, steps, (len(neuron),), generator=generator)
    return step * len(lam) + neuron


def _euler_in_place(v, w, g_e, g_i, nrf, x, dt, gL, v_rest, v_T, dT, gL_dT, a, tau_w, tau_ge,
                    tau_gi, E_gi, C, E_ge, I_bias) -> None:
    """The Euler step of ``integrate`` without autograd, in place (``x``: scratch): the same
    operations in the same order as the differentiable expression (products commuted only),
    so the same numbers, with fewer allocations."""
    torch.sub(v, v_T, out=x).div_(dT).clamp_(-50, 30).exp_().mul_(gL_dT)   # spike current
    dv = torch.sub(v_rest, v).mul_(gL).add_(x).sub_(w)
    dv.sub_(torch.sub(v, E_ge, out=x).mul_(g_e))
    dv.add_(torch.sub(E_gi, v, out=x).mul_(g_i)).add_(I_bias).div_(C)
    w.add_(torch.sub(v, v_rest, out=x).mul_(a).sub_(w).mul_(dt).div_(tau_w))
    g_e.sub_(torch.mul(g_e, dt, out=x).div_(tau_ge))
    g_i.sub_(torch.mul(g_i, dt, out=x).div_(tau_gi))
    v.add_(torch.mul(nrf, dt, out=x).mul_(dv))


#: θ entries a gradient fit may move (spec §2: exc_prop, n_clusters, p_igniters and
#: E.t_refrac set integers or draws and stay fixed)
TRAINABLE = tuple(n for n in b2mk1.theta_names if n not in network.STRUCTURAL + ("E.t_refrac",))
MEMORY_LIMIT = 4 * 2 ** 30  # bytes, default ceiling of a dense differentiable run


def check_device(device: str) -> None:
    """A UserError unless torch can run on ``device`` ("cpu", "cuda", "cuda:K")."""
    if not (str(device) == "cpu" or str(device).startswith("cuda")):
        raise UserError(f"rsnn: device must be cpu or cuda[:K], got {device!r}")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError("rsnn: CUDA requested but no CUDA device is available")


class TorchMK1:
    """MK1 in torch for a simulator spec; ``run_batch`` mirrors ``Simulator.run`` per element."""

    def __init__(self, spec, device: str = "cpu", dtype=torch.float64, propagation: str = "event",
                 surrogate: str = "triangular", detach_exp: bool = False,
                 detach_recurrent: bool = False, defer_weight_grad: bool = True,
                 recurrent_grad: float = 1.0):
        if spec.model != "mk1":
            raise UserError(f"rsnn: the torch backend runs model 'mk1', not {spec.model!r}")
        if propagation not in ("event", "dense"):
            raise UserError(f"rsnn: propagation must be 'event' or 'dense', got {propagation!r}")
        check_device(device)
        check_dt(spec.dt)
        self.spec, self.device, self.dtype = spec, torch.device(device), dtype
        self.propagation, self.surrogate = propagation, surrogate
        # backward through the AdEx exponential's v: its ∂/∂v (up to e^5·g_L/C near v_cut)
        # multiplies over subthreshold excursions and explodes; detach_exp drops it (v_T and
        # ΔT keep their gradient), the forward is unchanged
        self.detach_exp = detach_exp
        # backward through the synapses' presynaptic spikes: detached, a weight's gradient is
        # its direct effect on the postsynaptic neuron (paths through other neurons' spikes
        # are dropped); the weight fits use it (docs/rsnn.md: with them, the rate gradient of
        # a coupled network had the wrong sign at 1.5× its E→E weights). recurrent_grad: that
        # gradient scaled by this factor per synaptic hop (1: the surrogate's; 0: detached, as
        # detach_recurrent). Through the full loop it grows geometrically with the hops:
        # 1e34-1e42 at N = 500 over 2.6 s, inf in float32
        if not 0.0 <= recurrent_grad <= 1.0:
            raise UserError(f"rsnn: recurrent_grad must be in [0, 1], got {recurrent_grad}")
        self.recurrent_grad = 0.0 if detach_recurrent else float(recurrent_grad)
        # the graph's gradient as one product per 256 steps (rsnn/recurrent.py) instead of
        # autograd's (B, N, N) outer product per step; False: the latter (benchmarks, tests)
        self.defer_weight_grad = defer_weight_grad
        self.delay_steps = int(round(spec.fixed["delay"] / spec.dt))

    # -- building -----------------------------------------------------------------------------
    def build(self, params_list: list[dict], seeds: list[int], P: dict | None = None,
              grad: bool = False, imported: list[dict] | None = None,
              weights: torch.Tensor | None = None) -> dict:
        """Per-element structure, parameters, initial state and graph. ``P`` ({name: (B, 1)
        tensor}) replaces the θ values of ``params_list`` (for gradients); ``imported``
        (event mode) takes each element's graph from a Brian2 run's connectivity (with its
        own weights where it holds ``q_exc`` / ``q_inh``); ``weights`` (dense mode, (B, N, N)
        conductances W[b, pre, post], may carry gradients) is the graph itself. With either,
        no graph uniforms are drawn, so the two see the same drive for the same seed."""
        spec, dtype, dev = self.spec, self.dtype, self.device
        structures = [network.element_structure(spec, p, s) for p, s in zip(params_list, seeds)]
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        P = P if P is not None else network.theta_tensors(params_list, dtype, dev)
        exc = torch.as_tensor(np.stack([s["exc"] for s in structures]), device=dev)
        igniter = torch.as_tensor(np.stack([s["igniter"] for s in structures]), device=dev)
        arrays = network.neuron_arrays(spec, P, exc, igniter)
        v0 = torch.stack([torch.randn(spec.N, generator=g, dtype=torch.float64)
                          for g in generators]).to(dev, dtype)
        if weights is not None:
            if tuple(weights.shape) != (len(seeds), spec.N, spec.N):
                raise UserError(f"rsnn: weights must be (B, N, N) = ({len(seeds)}, {spec.N}, "
                                f"{spec.N}), got {tuple(weights.shape)}")
            graph = weights.to(dev, dtype)
        elif grad or self.propagation == "dense":
            graph = network.draw_graph(spec, P, arrays, structures, generators, grad)
        else:
            graph = network.SparseGraph(network.draw_synapses(spec, P, arrays, structures,
                                                              generators, imported), exc)
        refrac = torch.floor((arrays["t_refrac"].detach().double() + 1e-3 * spec.dt) / spec.dt)
        return {"exc": exc, "arrays": arrays, "graph": graph, "generators": generators,
                "v": arrays["v_rest"] + spec.fixed["v_init_sd"] * v0,
                "refrac": refrac.long(), "n_e": exc.sum(1)}

    def _noise(self, lam: torch.Tensor, generators: list, out: torch.Tensor | None = None):
        """(B, NOISE_BLOCK, N) Poisson counts (``poisson_block``'s), each element from its own
        generator, written into ``out`` when it has that shape (no new allocation)."""
        lam64 = lam.detach().double().cpu()
        B, N = lam64.shape
        if out is None or out.shape != (B, NOISE_BLOCK, N):
            out = torch.zeros((B, NOISE_BLOCK, N), dtype=self.dtype)
        else:
            out.zero_()
        for b, g in enumerate(generators):
            flat = poisson_events(lam64[b], NOISE_BLOCK, g)
            out[b].view(-1).index_add_(0, flat, torch.ones(len(flat), dtype=self.dtype))
        return out.to(self.device)

    # -- stepping -----------------------------------------------------------------------------
    def integrate(self, net: dict, n_steps: int, grad: bool = False, probe: tuple | None = None,
                  record_state: tuple = (), state_units: int = 0):
        """Run ``n_steps``. Returns (spikes, steps_run, state): spikes = (element, step, neuron)
        int arrays (no-grad) or a (B, T, N) tensor (grad); elements stopped by ``probe`` =
        (probe steps, t_probe, silent, runaway) get fewer steps."""
        spec, dt = self.spec, self.spec.dt
        A = net["arrays"]
        C, gL, v_rest, v_T, dT = A["C"], A["g_L"], A["v_rest"], A["v_thresh"], A["dT_safe"]
        gL_dT, a, tau_w, b_adapt = A["g_L"] * A["delta_T"], A["a"], A["tau_w"], A["b"]
        tau_ge, tau_gi, E_gi, v_reset, v_cut = A["tau_ge"], A["tau_gi"], A["E_gi"], A["v_reset"], A["v_cut"]
        E_ge, I_bias, Q_p = spec.fixed["E_ge"], spec.fixed["I_bias"], spec.fixed["Q_poisson"]
        scale = 5 * A["delta_T"].detach() + 1e-3
        graph, exc, R = net["graph"], net["exc"], net["refrac"]
        B, N = exc.shape
        lam = A["lambda_ext"]
        v = net["v"] if grad else net["v"].clone()  # without autograd, updated in place
        w, g_e, g_i = (torch.zeros_like(v) for _ in range(3))
        ready = NEVER + R  # the step from which a neuron is out of refractoriness
        work = torch.empty_like(v)
        alive = torch.arange(B, device=self.device)
        steps_run = np.full(B, n_steps, dtype=np.int64)
        buffer = [None] * (self.delay_steps + 1)
        excf = exc.to(self.dtype)
        gens = list(net["generators"])
        probe_count = torch.zeros(B, device=self.device)
        spikes, dense_z, state = [], [], {k: [] for k in record_state}
        params = [C, gL, v_rest, v_T, dT, gL_dT, a, tau_w, b_adapt, tau_ge, tau_gi, E_gi, v_reset,
                  v_cut, scale, lam, excf, R]
        noise = None
        recurrent = RecurrentInput(graph, self.defer_weight_grad) if grad else None
        for n in range(n_steps):
            if n % NOISE_BLOCK == 0:
                noise = self._noise(lam, gens, None if grad else noise)
            nr = ready <= n  # = (n − last spike) >= R
            nrf = nr.to(self.dtype)
            if grad:
                v_exp = v.detach() if self.detach_exp else v
                spike_current = gL_dT * torch.exp(torch.clamp((v_exp - v_T) / dT, -50, 30))
                dv = (gL * (v_rest - v) + spike_current - w - g_e * (v - E_ge) + g_i * (E_gi - v)
                      + I_bias) / C
                w_new = w + dt * (a * (v - v_rest) - w) / tau_w
                g_e = g_e - dt * g_e / tau_ge
                g_i = g_i - dt * g_i / tau_gi
                v = v + dt * nrf * dv
                w = w_new
            else:
                _euler_in_place(v, w, g_e, g_i, nrf, work, dt, gL, v_rest, v_T, dT, gL_dT, a,
                                tau_w, tau_ge, tau_gi, E_gi, C, E_ge, I_bias)
            if grad:
                z = spike(v - v_cut, scale, self.surrogate) * nrf
                zb = z.detach() > 0
            else:
                zb = (v > v_cut) & nr
                z = zb.to(self.dtype)
            counts = noise[:, n % NOISE_BLOCK]
            if grad:
                g_e = g_e + Q_p * (counts * (lam / lam.detach()).nan_to_num(1.0))
            else:
                g_e.add_(torch.mul(counts, Q_p, out=work))
            if grad:
                g = self.recurrent_grad
                z_pre = z if g == 1.0 else z.detach() if g == 0.0 else \
                    z.detach() + g * (z - z.detach())
                d_e, d_i = recurrent(torch.stack((z_pre * excf, z_pre - z_pre * excf), 1)).unbind(1)
            elif self.propagation == "dense":
                d_e, d_i = self._dense(z, graph, excf)
            else:
                b_idx, i_idx = zb.nonzero(as_tuple=True)
                d_e, d_i = graph.propagate(b_idx, i_idx, g_e)
            slot = (n + self.delay_steps) % len(buffer)
            buffer[slot] = (d_e, d_i) if buffer[slot] is None else \
                (buffer[slot][0] + d_e, buffer[slot][1] + d_i)
            now = buffer[n % len(buffer)]
            if now is not None:
                if grad:
                    g_e, g_i = g_e + now[0], g_i + now[1]
                else:
                    g_e.add_(now[0]), g_i.add_(now[1])
                buffer[n % len(buffer)] = None
            if grad:
                v = torch.where(zb, v_reset, v)
                w = w + b_adapt * z
                ready = torch.where(zb, R + n, ready)
                dense_z.append(z)
            else:
                if self.propagation == "dense":
                    b_idx, i_idx = zb.nonzero(as_tuple=True)
                if len(b_idx):  # reset, adaptation jump, refractoriness: at the spikes only
                    at = (b_idx, i_idx)
                    v.index_put_(at, v_reset[at])
                    w.index_put_(at, b_adapt[at], accumulate=True)  # = w + b·z
                    ready.index_put_(at, R[at] + n)
                    spikes.append((alive[b_idx].int().cpu().numpy(),
                                   np.full(len(b_idx), n, dtype=np.int32),
                                   i_idx.int().cpu().numpy()))
            for k in record_state:
                state[k].append((alive, {"v": v, "w": w, "g_e": g_e, "g_i": g_i}[k][:, :state_units]
                                 .detach().clone()))
            if probe is not None and not grad:
                p_steps, t_probe, silent, runaway, t_refrac = probe
                if n * dt < t_probe - 0.5 * dt:
                    probe_count += (zb & exc).sum(1)
                if n + 1 == p_steps and n + 1 < n_steps:
                    activity = probe_count / (net["n_e"][alive] * t_probe) * t_refrac[alive]
                    keep = (activity >= silent) & (activity <= runaway)
                    steps_run[alive[~keep].cpu().numpy()] = n + 1
                    if not keep.all():
                        if not keep.any():
                            break
                        sel = keep.nonzero(as_tuple=True)[0]
                        alive = alive[sel]
                        v, w, g_e, g_i, ready, exc = (x[sel] for x in (v, w, g_e, g_i, ready, exc))
                        work = torch.empty_like(v)
                        graph = graph[sel] if torch.is_tensor(graph) else graph.select(sel)
                        params = [x[sel] for x in params]
                        (C, gL, v_rest, v_T, dT, gL_dT, a, tau_w, b_adapt, tau_ge, tau_gi, E_gi,
                         v_reset, v_cut, scale, lam, excf, R) = params
                        noise = noise[sel]
                        gens = [gens[i] for i in sel.tolist()]
                        probe_count = probe_count[sel]
                        buffer = [None if x is None else (x[0][sel], x[1][sel]) for x in buffer]
        net["v_final"] = (alive, v.detach())
        if grad:
            return torch.stack(dense_z, 1), steps_run, state
        if spikes:
            spikes = tuple(np.concatenate(parts) for parts in zip(*spikes))
        else:
            spikes = (np.zeros(0, np.int32),) * 3
        return spikes, steps_run, state

    @staticmethod
    def _dense(z, W, excf):
        d_e = torch.bmm((z * excf).unsqueeze(1), W).squeeze(1)
        d_i = torch.bmm((z - z * excf).unsqueeze(1), W).squeeze(1)
        return d_e, d_i

    # -- gradients ----------------------------------------------------------------------------
    def run_differentiable(self, params_list: list[dict], seeds: list[int], duration: float,
                           trainable: tuple[str, ...] = TRAINABLE,
                           memory_limit: float = MEMORY_LIMIT, P: dict | None = None,
                           weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """(z, P): spikes (B, steps, N) with surrogate gradients, and the θ tensors {name:
        (B, 1)} of which ``trainable`` require grad (or the given ``P``, already attached to
        a graph). Dense propagation, no early stop; ``weights``: the graph (see ``build``)."""
        bad = [n for n in trainable if n not in TRAINABLE]
        if bad:
            raise UserError(f"rsnn: {bad} cannot be trained by gradient (structural or fixed); "
                            f"trainable: {list(TRAINABLE)}")
        n_steps = last_step(duration, self.spec.dt)
        need = dense_memory_bytes(len(params_list), self.spec.N, n_steps, self.dtype)
        if need > memory_limit:
            raise UserError(f"rsnn: a differentiable run of {len(params_list)} x N={self.spec.N} "
                            f"for {duration:g} s needs ~{need / 2**30:.1f} GiB, over the limit "
                            f"{memory_limit / 2**30:.1f} GiB (fewer starts, a shorter window or "
                            "a smaller N)")
        if P is None:
            P = network.theta_tensors(params_list, self.dtype, self.device)
            for name in trainable:
                P[name].requires_grad_(True)
        net = self.build(params_list, seeds, P=P, grad=True, weights=weights)
        z, _, _ = self.integrate(net, n_steps, grad=True)
        return z, P

    # -- the bank interface -------------------------------------------------------------------
    def run_batch(self, params_list: list[dict], seeds: list[int], indices=None, duration=None,
                  thetas=None, connectivity: bool = False,
                  imported: list[dict] | None = None) -> list[SimulationResult]:
        """One ``SimulationResult`` per element, with the statuses ``Simulator.run`` gives;
        ``imported``: Brian2 graphs to run on (see ``build``)."""
        spec = self.spec
        duration = spec.duration if duration is None else duration
        B = len(params_list)
        indices = list(range(B)) if indices is None else list(indices)
        results = [SimulationResult(index=indices[b], seed=int(seeds[b]), status="failed",
                                    duration=duration, dt=spec.dt,
                                    theta=None if thetas is None else np.asarray(thetas[b]))
                   for b in range(B)]
        start = time.perf_counter()
        try:
            with torch.no_grad():
                net = self.build(params_list, seeds, imported=imported)
                n_steps = last_step(duration, spec.dt)
                t_probe = min(spec.probe, duration)
                t_refrac = torch.tensor([b2mk1.probe(spec, p)[1] for p in params_list],
                                        dtype=torch.float64, device=self.device)
                probe = (last_step(t_probe, spec.dt), t_probe, spec.silent, spec.runaway, t_refrac)
                (elem, step, neuron), steps_run, state = self.integrate(
                    net, n_steps, probe=probe, record_state=spec.record_state,
                    state_units=spec.state_units)
        except Exception as err:  # a failing batch is a status per element, never an exception
            for r in results:
                r.message = f"{type(err).__name__}: {err}"
                r.wall_time = time.perf_counter() - start
            return results
        alive_final, v_final = net["v_final"]
        nan_rows = set(alive_final[~torch.isfinite(v_final).all(1)].tolist())
        elapsed = time.perf_counter() - start
        key = elem.astype(np.int16) if B < 2 ** 15 else elem  # 16 bits: numpy's radix sort
        order = np.argsort(key, kind="stable")  # spikes come by (step, element, neuron)
        elem, step, neuron = elem[order], step[order], neuron[order]
        bounds = np.searchsorted(elem, np.arange(B + 1))
        for b, result in enumerate(results):
            params = params_list[b]
            sl = slice(bounds[b], bounds[b + 1])
            times, ids = step[sl] * spec.dt, neuron[sl].astype(np.int32)
            result.t_end = steps_run[b] * spec.dt
            result.wall_time = result.run_time = elapsed / B
            n_probe, t_ref = b2mk1.probe(spec, params)
            result.status = activity_status(ids, times, n_probe, t_ref, t_probe, spec.dt,
                                             spec.silent, spec.runaway)
            if b in nan_rows:
                result.status, result.message = "failed", "NaN in the network state"
            for pop, (lo, hi) in b2mk1.layout(spec, params).items():
                result.n_units[pop] = hi - lo
                if pop in spec.record:
                    keep = (ids >= lo) & (ids < hi)
                    result.spikes[pop] = (times[keep], ids[keep] - lo)
            for k, rows in state.items():
                result.state[k] = np.stack([x[(a == b).nonzero(as_tuple=True)[0][0]].cpu().numpy()
                                            for a, x in rows if (a == b).any()])
            if connectivity:
                result.connectivity = self.connectivity(net["graph"], b, net["exc"][b])
        return results

    @staticmethod
    def connectivity(graph, b: int, exc: torch.Tensor) -> dict:
        """{"syn_exc" | "syn_inh": (pre, post)} of element b, as ``Simulator.run(connectivity=True)``."""
        if torch.is_tensor(graph):
            pre, post = (graph[b] != 0).nonzero(as_tuple=True)
        else:
            pre, post = graph.synapses[b][:2]
        from_e = exc[pre]
        return {"syn_exc": (pre[from_e].cpu().numpy(), post[from_e].cpu().numpy()),
                "syn_inh": (pre[~from_e].cpu().numpy(), post[~from_e].cpu().numpy())}
