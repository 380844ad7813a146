"""``automind fit --method gradient --fit weights``: the per-synapse weights of each start's
realised graph fitted with exponentiated Adam (``rsnn.weights``), θ fixed at the start.

Each start k's graph is the torch builder's graph for its θ and the graph seed
``simulation_seed(seed + 4, k)``. The fitted networks are re-simulated in Brian2 on their
fitted graphs: the MK1 binary's explicit-graph variant (``Simulator(spec,
explicit_graph=True)``: the builder's equations and schedule, its synapses and per-synapse
weights read at run time, one binary for every graph of its size), with new seeds, and
scored as the θ mode's fits. Written beside the θ mode's files::

    RUN/gradient/weights.npz   per start: synapses (pre, post, E flag), start and fitted
                               weights (S), concatenated; ``offsets`` separate the starts
"""

from __future__ import annotations

import numpy as np

from ..io import save_npz
from ..simulators.execution import simulation_seed

#: how the fitted networks are re-simulated (summary.json "resimulated_with")
RESIMULATOR = "Brian2 (the MK1 binary on each fitted graph's synapses and weights)"
GRAPH_SEED_OFFSET = 4


def graph_seeds(seed: int, K: int) -> list[int]:
    return [simulation_seed(seed + GRAPH_SEED_OFFSET, k) for k in range(K)]


def save_graphs(path, start: list[dict], fitted: list[dict]) -> None:
    """Start and fitted graphs of every start into one .npz."""
    pre, post, exc, q0, q1, offsets = [], [], [], [], [], [0]
    for g0, g1 in zip(start, fitted):
        for key, flag in (("exc", True), ("inh", False)):
            pre.append(np.asarray(g0[f"syn_{key}"][0], np.int64))
            post.append(np.asarray(g0[f"syn_{key}"][1], np.int64))
            exc.append(np.full(len(pre[-1]), flag))
            q0.append(np.asarray(g0[f"q_{key}"], float))
            q1.append(np.asarray(g1[f"q_{key}"], float))
        offsets.append(offsets[-1] + sum(len(x) for x in pre[-2:]))
    save_npz(path, pre=np.concatenate(pre), post=np.concatenate(post), exc=np.concatenate(exc),
             start=np.concatenate(q0), fitted=np.concatenate(q1), offsets=np.array(offsets))


def load_graphs(path, which: str = "fitted") -> list[dict]:
    """The graphs (connectivity dicts with weights) of ``save_graphs``' file."""
    with np.load(path) as data:
        d = {k: data[k] for k in data.files}
    out = []
    for lo, hi in zip(d["offsets"][:-1], d["offsets"][1:]):
        sl = slice(lo, hi)
        pre, post, exc, q = d["pre"][sl], d["post"][sl], d["exc"][sl], d[which][sl]
        out.append({"syn_exc": (pre[exc], post[exc]), "syn_inh": (pre[~exc], post[~exc]),
                    "q_exc": q[exc], "q_inh": q[~exc]})
    return out


def weight_changes(path) -> list[dict]:
    """Per start: the mean fitted/start weight ratio of E and I synapses, and whether any
    weight changed sign or a zero moved (never, by construction; recorded as a check)."""
    with np.load(path) as data:
        d = {k: data[k] for k in data.files}
    rows = []
    for lo, hi in zip(d["offsets"][:-1], d["offsets"][1:]):
        q0, q1, exc = d["start"][lo:hi], d["fitted"][lo:hi], d["exc"][lo:hi]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = q1 / q0
        rows.append({"n_synapses": int(hi - lo),
                     "mean_ratio_exc": float(np.nanmean(ratio[exc])) if exc.any() else None,
                     "mean_ratio_inh": float(np.nanmean(ratio[~exc])) if (~exc).any() else None,
                     "sign_flips": int(np.sum((q1 < 0) | ((q0 == 0) != (q1 == 0))))})
    return rows


def run_weight_fit(run, starts: np.ndarray, target: dict, scale: dict, extra, report,
                   checkpoint=None, checkpoint_every: int = 500):
    """The gradient stage of a weight fit: realise each start's graph, fit its weights, save
    the graphs; returns (``rsnn.weights.WeightFitResult``, θ rows = the starts). The state is
    saved to ``checkpoint`` every ``checkpoint_every`` steps and resumed from it."""
    import torch

    from ..rsnn.weights import fit_weights, realise

    s = run.settings
    params_list = [run.prior.to_simulator(row) for row in starts]
    graphs = realise(run.spec, params_list, graph_seeds(s.seed, len(starts)))
    result = fit_weights(run.spec, run.prior, params_list, graphs, target, scale, steps=s.steps,
                         lr=s.lr, seed=s.seed + 3, dtype=getattr(torch, s.dtype), extra=extra,
                         memory_limit=s.memory_limit_gib * 2 ** 30, progress=report,
                         checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                         device=run.device)
    save_graphs(run.out / "gradient" / "weights.npz", result.start, result.fitted)
    return result


def resimulate_fitted(run, ok, which: str = "fitted", seed_offset: int = 2) -> list:
    """The fitted networks ``ok`` (start indices, repeats allowed; ``which="start"``: their
    start graphs) re-simulated in Brian2 on their graphs, with new seeds
    (``simulation_seed(seed + seed_offset, i)`` for the i-th, as the θ mode's runs) and the
    run's feature set."""
    from ..features.sets import simulation_features
    from ..simulators.simulator import Simulator

    graphs = load_graphs(run.out / "gradient" / "weights.npz", which)
    theta = np.load(run.out / "starts.npy")
    simulator = Simulator(run.spec, explicit_graph=True)
    results = []
    for i, k in enumerate(ok):
        result = simulator.run(run.prior.to_simulator(theta[k]),
                               simulation_seed(run.settings.seed + seed_offset, i), index=int(k),
                               theta=theta[k], graph=graphs[k])
        result.features = simulation_features(result, [run.fs.name], run.spec.t_analysis_start)
        results.append(result)
    return results


def weights_summary(summary: dict, out) -> None:
    """Mark a weight fit's summary: the re-simulator and each start's weight changes."""
    summary["fit"], summary["resimulated_with"] = "weights", RESIMULATOR
    for row, change in zip(summary["fits"], weight_changes(out / "gradient" / "weights.npz")):
        row["weights"] = change
