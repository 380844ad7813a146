"""Run a chunk of bank jobs on the torch backend: batches of ``[torch] batch`` θ at once.

Called by the execution engines' ``run_chunk`` for specs with ``backend = "torch"``, so a
torch bank is a normal bank: the same jobs (params, seed, index, duration, θ), the same
per-simulation seeds, statuses and feature sets. Each element draws its graph, initial
state and drive from its own seed, so its result does not depend on the batch it ran in.
"""

from __future__ import annotations

_MODELS: dict = {}


def torch_model(spec):
    """The process's warm TorchMK1 for this spec (torch threads set from [torch] threads)."""
    import torch

    from .mk1 import TorchMK1

    key = repr(spec.to_dict())
    model = _MODELS.get(key)
    if model is None:
        settings = spec.torch_settings()
        torch.set_num_threads(settings["threads"])
        model = _MODELS[key] = TorchMK1(spec, device=settings["device"],
                                        dtype=getattr(torch, settings["dtype"]))
    return model


def run_torch_chunk(spec, jobs: list, feature_sets: tuple[str, ...] = ()) -> list:
    """Simulate ``simulators.execution.Job``s in batches; results in job order."""
    model = torch_model(spec)
    batch = spec.torch_settings()["batch"]
    results = []
    by_duration: dict[float, list] = {}
    for job in jobs:
        by_duration.setdefault(float(job.duration), []).append(job)
    for duration, group in by_duration.items():
        for start in range(0, len(group), batch):
            part = group[start:start + batch]
            results += model.run_batch([j.params for j in part], [j.seed for j in part],
                                       indices=[j.index for j in part], duration=duration,
                                       thetas=[j.theta for j in part])
    if feature_sets:
        from ..features.sets import simulation_features

        for result in results:
            result.features = simulation_features(result, list(feature_sets), spec.t_analysis_start)
    order = {job.index: k for k, job in enumerate(jobs)}
    return sorted(results, key=lambda r: order[r.index])
