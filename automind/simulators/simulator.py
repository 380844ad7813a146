"""Run a model for θ vectors: one simulation with a status, or a batch on local worker processes."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from . import MODELS
from .engine import CompiledModel, RunFailed, RunTimedOut
from .spec import SimulatorSpec

STATUSES = ("ok", "silent", "runaway", "timeout", "failed")


@dataclass
class SimulationResult:
    """One simulation's output. Spike ids are relative to their population (0..n-1)."""

    index: int
    seed: int
    status: str
    duration: float                      # requested biological time, s
    t_end: float = 0.0                   # biological time actually simulated, s
    wall_time: float = 0.0               # s, whole simulation including overhead
    run_time: float = 0.0                # s, the compiled binary alone
    message: str = ""
    theta: np.ndarray | None = None
    spikes: dict = field(default_factory=dict)   # pop -> (times float64 s, ids int32)
    n_units: dict = field(default_factory=dict)  # pop -> number of neurons
    state: dict = field(default_factory=dict)    # var -> (steps, units) array, SI (record.state)
    connectivity: dict = field(default_factory=dict)  # synapses -> (pre, post), on request
    features: dict = field(default_factory=dict)      # feature set -> raw vector, on request
    dt: float = 0.0

    def rate(self, population: str = "E") -> float:
        """Mean firing rate (Hz) of a population over the simulated time."""
        if population not in self.spikes or self.t_end <= 0:
            return float("nan")
        return len(self.spikes[population][0]) / (self.n_units[population] * self.t_end)


def activity_status(spike_ids, spike_times, n_probe: int, t_refrac: float, window: float,
                    dt: float, silent: float, runaway: float) -> str:
    """The early-stop criterion (mirrors CONTROL_CPP): mean rate × t_refrac in [0, window)."""
    in_window = (spike_ids < n_probe) & (spike_times < window - 0.5 * dt)
    activity = np.count_nonzero(in_window) / (n_probe * window) * t_refrac
    if activity < silent:
        return "silent"
    if activity > runaway:
        return "runaway"
    return "ok"


class Simulator:
    """A simulator spec bound to its compiled binary; ``run(theta_si, seed)`` never raises for θ.

    ``explicit_graph=True``: the binary that runs on a given graph and weights (``run(...,
    graph=...)``, models with ``graph_matrix``) instead of drawing them."""

    def __init__(self, spec: SimulatorSpec, compiled: CompiledModel | None = None,
                 explicit_graph: bool = False):
        if spec.backend != "brian2":
            raise UserError(f"Simulator runs the Brian2 backend; spec {spec.name!r} has backend "
                            f"{spec.backend!r} (use automind.rsnn.TorchMK1 or simulate())")
        self.spec = spec
        self.model = MODELS[spec.model]
        self.in_python = getattr(self.model, "backend", "brian2") != "brian2"
        self.compiled = None if self.in_python else (
            compiled or CompiledModel.for_spec(spec, explicit_graph))

    def run_args(self, params: dict, seed: int, duration: float) -> dict:
        spec = self.spec
        n_probe, t_refrac = self.model.probe(spec, params)
        args = self.model.run_args(spec, params, np.random.default_rng(seed))
        args |= {"ctl.t_stop": duration, "ctl.t_probe": min(spec.probe, duration),
                 "ctl.n_probe": n_probe, "ctl.t_refrac_probe": t_refrac,
                 "ctl.silent_threshold": spec.silent, "ctl.runaway_threshold": spec.runaway}
        return args

    def run(self, params: dict, seed: int, index: int = 0, duration: float | None = None,
            timeout: float | None = None, theta=None, connectivity: bool = False,
            graph: dict | None = None) -> SimulationResult:
        """Simulate one θ given as {name: SI value}; failures become statuses (a graph that
        does not fit the simulator or θ raises ``UserError``).

        ``connectivity=True`` also returns each synapse pathway's (pre, post) indices;
        ``graph`` (explicit-graph simulators only): the synapses and weights to run on
        ({"syn_exc" | "syn_inh": (pre, post), "q_exc" | "q_inh": siemens}).
        """
        spec = self.spec
        duration = spec.duration if duration is None else duration
        result = SimulationResult(index=index, seed=seed, status="failed", duration=duration,
                                  theta=None if theta is None else np.asarray(theta), dt=spec.dt)
        if (graph is not None) != bool(getattr(self.compiled, "explicit_graph", False)):
            raise UserError("a graph runs on an explicit-graph simulator "
                            "(Simulator(spec, explicit_graph=True)), which needs one")
        W = None if graph is None else self.model.graph_matrix(spec, params, graph)
        start = time.perf_counter()
        try:
            if duration > spec.max_duration:
                raise UserError(f"duration {duration} s exceeds the compiled max_duration")
            if self.in_python:
                return self._run_in_python(result, params, seed, duration, start)
            raw = self.compiled.run(self.run_args(params, seed, duration), seed,
                                    timeout or spec.timeout, connectivity, W)
            result.connectivity = raw.connectivity
            result.run_time = raw.binary_seconds
            result.t_end = raw.steps * spec.dt
            result.state = raw.state
            n_probe, t_refrac = self.model.probe(spec, params)
            result.status = activity_status(raw.spike_ids, raw.spike_times, n_probe, t_refrac,
                                            min(spec.probe, duration), spec.dt, spec.silent,
                                            spec.runaway)
            steps_requested = int(round(duration / spec.dt))
            if raw.steps < steps_requested and result.status == "ok":
                raise RunFailed(f"stopped after {raw.steps} of {steps_requested} steps "
                                "without an early-stop reason")
            for pop, (lo, hi) in self.model.layout(spec, params).items():
                result.n_units[pop] = hi - lo
                if pop in spec.record:
                    keep = (raw.spike_ids >= lo) & (raw.spike_ids < hi)
                    result.spikes[pop] = (raw.spike_times[keep], raw.spike_ids[keep] - lo)
        except RunTimedOut as err:
            result.status, result.message = "timeout", str(err)
        except (RunFailed, UserError) as err:
            result.status, result.message = "failed", str(err)
        except Exception as err:  # a failing θ never stops a batch; keep the evidence
            result.status = "failed"
            result.message = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"
        result.wall_time = time.perf_counter() - start
        return result


    def run_many(self, jobs: list) -> list[SimulationResult]:
        """Run jobs (``execution.Job``) in order; a Python model with ``run_batch`` integrates
        jobs of equal duration together (same results as one by one)."""
        one_by_one = lambda: [self.run(job.params, job.seed, job.index, job.duration,  # noqa: E731
                                       theta=job.theta) for job in jobs]
        if not (self.in_python and hasattr(self.model, "run_batch") and len(jobs) > 1
                and len({job.duration for job in jobs}) == 1):
            return one_by_one()
        start = time.perf_counter()
        duration = jobs[0].duration
        try:
            outs = self.model.run_batch(self.spec, [job.params for job in jobs],
                                        [job.seed for job in jobs], duration)
        except Exception:  # fall back to one by one: each failure becomes its own status
            return one_by_one()
        each = (time.perf_counter() - start) / len(jobs)
        results = []
        for job, out in zip(jobs, outs):
            result = SimulationResult(index=job.index, seed=job.seed, status=out["status"],
                                      duration=duration, t_end=out["t_end"], wall_time=each,
                                      run_time=each, message=out["message"],
                                      theta=None if job.theta is None else np.asarray(job.theta),
                                      state=out["state"], dt=self.spec.dt)
            result.n_units = {pop: hi - lo for pop, (lo, hi) in
                              self.model.layout(self.spec, job.params).items()}
            results.append(result)
        return results

    def _run_in_python(self, result, params, seed, duration, start) -> SimulationResult:
        out = self.model.run(self.spec, params, seed, duration)
        result.state, result.status, result.message = out["state"], out["status"], out["message"]
        result.t_end = out["t_end"]
        result.run_time = time.perf_counter() - start
        result.n_units = {pop: hi - lo for pop, (lo, hi) in self.model.layout(self.spec, params).items()}
        result.wall_time = time.perf_counter() - start
        return result


def simulate(simulator: str = "mk1", prior: str | None = None, n: int | None = None, theta=None,
             seed: int = 0, duration: float | None = None, N: int | None = None,
             dt: float | None = None, workers: int | None = None,
             reference_quirks: bool | None = None,
             backend: str | None = None) -> list[SimulationResult]:
    """Simulate ``n`` θ drawn from the prior (or the given θ rows), in index order.

    θ are in the prior's units. Each simulation's seed derives from ``seed`` and its index;
    the same call gives the same spikes.
    """
    from ..prior import Prior
    from .execution import make_jobs, simulate_jobs

    spec = SimulatorSpec.load(simulator)
    if reference_quirks is not None:
        spec = spec.with_overrides(reference_quirks=bool(reference_quirks))
    if backend is not None:
        spec = spec.with_overrides(backend=backend)
    spec = spec.with_overrides(duration=duration, N=N, dt=dt)
    prior_obj = Prior.load(prior or spec.prior)
    check_prior_fits(spec, prior_obj)
    if theta is None:
        if n is None or n < 1:
            raise UserError("give n >= 1 simulations or explicit θ")
        thetas = prior_obj.sample_indexed(seed, range(n))  # the same θ a bank with this seed holds
    else:
        thetas = prior_obj.validate(theta)
    if spec.backend == "torch":  # the torch MK1 backend runs without a compiled binary
        compiled = ""
    else:  # Brian2, or a model run in Python (its Simulator has no binary)
        sim = Simulator(spec)
        compiled = str(sim.compiled.directory) if sim.compiled else ""
    jobs = make_jobs(prior_obj, thetas, spec.duration, seed=seed)
    return simulate_jobs(spec, compiled, jobs, workers or 1)


def check_prior_fits(spec: SimulatorSpec, prior) -> None:
    """The prior must name every parameter the spec's model reads."""
    missing = [name for name in MODELS[spec.model].theta_names if name not in prior.simulator_names]
    if missing:
        raise UserError(f"prior {prior.name!r} lacks parameters {missing} needed by the "
                        f"{spec.model} model")
