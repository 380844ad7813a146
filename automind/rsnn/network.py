"""MK1's per-element structure and parameters as torch tensors, batched over θ (B, N).

Everything the Brian2 builder draws on the Python side (the E/I split, cluster ids,
igniters) comes from ``simulators.mk1.run_args`` with the seed's numpy generator, exactly as
``Simulator.run`` does, so a torch network and a Brian2 network with the same seed share
them. What Brian2 draws inside its binary (initial v, the graph, the Poisson drive) torch
draws from a per-element ``torch.Generator`` seeded with the same seed: the same
distribution, not the same numbers, and independent of the batch an element runs in.
Per-neuron values are built from θ tensors with ``torch.where``, so they carry gradients.
"""

from __future__ import annotations

import numpy as np
import torch

from ..simulators import mk1 as b2mk1
from .surrogates import connection

#: θ entries that set structure (integers or draws): fixed in gradient fits (spec §2).
STRUCTURAL = ("exc_prop", "n_clusters", "p_igniters")


def element_structure(spec, params: dict, seed: int) -> dict[str, np.ndarray]:
    """E flag, cluster ids and igniter flag of one element, from the seed's numpy generator.

    The drive rates are replaced by 1 Hz before calling ``run_args`` so that igniters can be
    read off ``lambda_ext`` whatever the rates; the generator's draws do not depend on them.
    """
    probe = params | {"E.poisson_rate": 1.0, "I.poisson_rate": 1.0}
    args = b2mk1.run_args(spec, probe, np.random.default_rng(seed))
    exc = args["neurons.exc"].astype(bool)
    return {"exc": exc, "c1": args["neurons.c1"], "c2": args["neurons.c2"],
            "igniter": exc & (args["neurons.lambda_ext"] > 0)}


def theta_tensors(params_list: list[dict], dtype, device) -> dict[str, torch.Tensor]:
    """[{name: SI float}] -> {name: (B, 1) tensor}."""
    return {name: torch.tensor([[float(p[name])] for p in params_list], dtype=dtype, device=device)
            for name in b2mk1.theta_names}


def neuron_arrays(spec, P: dict[str, torch.Tensor], exc: torch.Tensor,
                  igniter: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-neuron (B, N) values: E.* from θ on E neurons, I.* (fixed, or θ for I.Q_*) on I."""
    fixed, quirks = spec.fixed, spec.reference_quirks
    out = {}
    for key in b2mk1.PER_NEURON:
        if key in ("Q_ge", "Q_gi"):
            i_value = P[f"I.{key}"]
        elif key == "delta_T" and quirks:
            i_value = P["E.delta_T"]
        else:
            i_value = torch.as_tensor(fixed[f"I.{key}"], dtype=P["E.C"].dtype, device=exc.device)
        out[key] = torch.where(exc, P[f"E.{key}"], i_value)
    if quirks:
        out["v_cut"] = torch.full_like(out["v_thresh"], b2mk1.FROZEN_V_CUT)
    else:
        out["v_cut"] = out["v_thresh"] + 5 * out["delta_T"]
    dtype = out["C"].dtype
    rate = torch.where(exc, torch.where(igniter, P["E.poisson_rate"], torch.zeros((), dtype=dtype)),
                       P["I.poisson_rate"])
    out["lambda_ext"] = fixed["N_poisson"] * rate * spec.dt
    out["dT_safe"] = out["delta_T"] + 1e-3 * (out["delta_T"] <= 0).to(dtype)
    return out


def in_cluster(c1: torch.Tensor, c2: torch.Tensor, slotwise: bool) -> torch.Tensor:
    """(N, N) bool: pre and post share a cluster (slot by slot under reference quirks)."""
    same = (c1[:, None] == c1[None, :]) | (c2[:, None] == c2[None, :])
    if not slotwise:
        same |= (c1[:, None] == c2[None, :]) | (c2[:, None] == c1[None, :])
    return same


def connection_probability(P: dict, b: int, exc: torch.Tensor, incl: torch.Tensor) -> torch.Tensor:
    """(N, N) p[pre, post] of element b, as the Brian2 builder's ``connect(p=...)``."""
    exc_pre, exc_post = exc[:, None], exc[None, :].to(P["p_e2e"].dtype)
    from_e = exc_post * P["p_e2e"][b] * (1 + (P["R_pe2e"][b] - 1) * incl) \
        + (1 - exc_post) * P["p_e2i"][b]
    from_i = exc_post * P["p_i2e"][b] + (1 - exc_post) * P["p_i2i"][b]
    p = torch.where(exc_pre, from_e, from_i)
    return p * (1 - torch.eye(len(exc), dtype=p.dtype, device=p.device))  # no self-connections


def weights(P: dict, b: int, arrays: dict, exc: torch.Tensor, incl: torch.Tensor) -> torch.Tensor:
    """(N, N) q[pre, post]: Q_ge of the target (× R_Qe2e in-cluster E→E) or Q_gi of the target."""
    exc_post = exc[None, :].to(P["R_Qe2e"].dtype)
    q_e = arrays["Q_ge"][b][None, :] * (1 + (P["R_Qe2e"][b] - 1) * exc_post * incl)
    q_i = arrays["Q_gi"][b][None, :].expand_as(q_e)
    return torch.where(exc[:, None], q_e, q_i)


def _element_graph(spec, P, arrays, b, structure, gen, grad):
    """(N, N) weights of element b; uniforms in float64 whatever the dtype, so float32 and
    float64 runs share a graph; in ``grad`` mode the mask has a surrogate derivative in p."""
    dtype, device = arrays["C"].dtype, arrays["C"].device
    exc = torch.as_tensor(structure["exc"], device=device)
    incl = in_cluster(torch.as_tensor(structure["c1"], device=device),
                      torch.as_tensor(structure["c2"], device=device),
                      spec.reference_quirks).to(dtype)
    u = torch.rand((len(exc), len(exc)), generator=gen, dtype=torch.float64).to(device, dtype)
    p = connection_probability(P, b, exc, incl)
    mask = connection(p, u) if grad else (u < p).to(dtype)
    return mask * weights(P, b, arrays, exc, incl)


def draw_graph(spec, P: dict, arrays: dict, structures: list[dict], generators: list,
               grad: bool) -> torch.Tensor:
    """(B, N, N) weights W[b, pre, post] (0 where unconnected), the graph drawn per element."""
    return torch.stack([_element_graph(spec, P, arrays, b, s, g, grad)
                        for b, (s, g) in enumerate(zip(structures, generators))])


def draw_synapses(spec, P: dict, arrays: dict, structures: list[dict], generators: list,
                  imported: list[dict] | None = None) -> list[tuple]:
    """The same graphs as ``draw_graph`` as synapse lists (pre, post, weight) sorted by pre.

    ``imported``: per element, a Brian2 run's connectivity ({"syn_exc" | "syn_inh": (pre,
    post)}, ``Simulator.run(connectivity=True)``) used instead of drawing; weights follow
    the builder's rule with this element's clusters, so run it with the Brian2 run's seed;
    an element that also holds ``q_exc`` / ``q_inh`` (weights of its syn_exc / syn_inh
    synapses, siemens) runs on those weights instead.
    No uniforms are drawn then, so the drive's stream differs.
    """
    out = []
    for b, (structure, gen) in enumerate(zip(structures, generators)):
        if imported is None:
            out.append(_drawn_synapses(spec, P, arrays, b, structure, gen))
            continue
        device = arrays["C"].device
        exc = torch.as_tensor(structure["exc"], device=device)
        incl = in_cluster(torch.as_tensor(structure["c1"]), torch.as_tensor(structure["c2"]),
                          spec.reference_quirks).to(arrays["C"].dtype).to(device)
        pre = np.concatenate([imported[b][k][0] for k in ("syn_exc", "syn_inh")]).astype(np.int64)
        post = np.concatenate([imported[b][k][1] for k in ("syn_exc", "syn_inh")]).astype(np.int64)
        order = np.lexsort((post, pre))
        pre, post = torch.as_tensor(pre[order], device=device), torch.as_tensor(post[order], device=device)
        if "q_exc" in imported[b]:  # the graph's own weights (a weight fit's result)
            q = np.concatenate([imported[b]["q_exc"], imported[b]["q_inh"]])[order]
            out.append((pre, post, torch.as_tensor(q, dtype=arrays["C"].dtype, device=device)))
        else:
            out.append((pre, post, weights(P, b, arrays, exc, incl)[pre, post]))
    return out


def _drawn_synapses(spec, P, arrays, b, structure, gen):
    """``_element_graph``'s synapses without its (N, N) probability and weight matrices:
    the same uniforms compared block by block (pathway probabilities are scalars except
    in-cluster E→E), weights computed on the synapses only."""
    dtype, device = arrays["C"].dtype, arrays["C"].device
    exc = torch.as_tensor(structure["exc"], device=device)
    N, n_e = len(exc), int(exc.sum())
    u = torch.rand((N, N), generator=gen, dtype=torch.float64).to(device, dtype)
    c1 = torch.as_tensor(structure["c1"], device=device)
    c2 = torch.as_tensor(structure["c2"], device=device)
    E, I = slice(0, n_e), slice(n_e, N)
    incl_ee = in_cluster(c1[E], c2[E], spec.reference_quirks).to(dtype)
    p_ee = P["p_e2e"][b] * (1 + (P["R_pe2e"][b] - 1) * incl_ee)
    mask = torch.empty((N, N), dtype=torch.bool, device=device)
    for rows, cols, p in ((E, E, p_ee), (E, I, P["p_e2i"][b]), (I, E, P["p_i2e"][b]),
                          (I, I, P["p_i2i"][b])):
        torch.lt(u[rows, cols], p, out=mask[rows, cols])
    mask.fill_diagonal_(False)
    pre, post = mask.nonzero(as_tuple=True)  # sorted by (pre, post)
    from_e, to_e = exc[pre], exc[post]
    same = (c1[pre] == c1[post]) | (c2[pre] == c2[post])
    if not spec.reference_quirks:
        same |= (c1[pre] == c2[post]) | (c2[pre] == c1[post])
    q_e = arrays["Q_ge"][b][post] * (1 + (P["R_Qe2e"][b] - 1) * (to_e & same).to(dtype))
    w = torch.where(from_e, q_e, arrays["Q_gi"][b][post])
    return pre, post, w


#: fan-out widths of the padded tables: 2^(k/4) rounded up (≤ 19 % padding, ~9 % typical)
LADDER = torch.unique((2 ** (torch.arange(0, 128) / 4)).ceil().long())


class SparseGraph:
    """Synapses of a batch over rows b·N + pre, targets in a (2, B, N) buffer (g_e increments,
    then g_i): a step costs O(spikes × fan-out). The rows are grouped by fan-out into padded
    tables (one per width of ``LADDER``; padding adds 0 to a spare slot), so a step gathers
    whole rows (``index_select``, near memory speed) and adds them with one ``scatter_add_``
    (on CPU twice as fast as ``index_add_``, the same sequential sums) per width present,
    rather than building an index per synapse. An element's synapses are
    added in an order fixed by its own spikes and fan-outs, so its results do not depend on
    the batch."""

    def __init__(self, synapses: list, exc: torch.Tensor):
        self.synapses, self.exc = synapses, exc
        B, N = exc.shape
        device = exc.device
        rows, targets, values = [], [], []
        for b, (pre, post, w) in enumerate(synapses):
            rows.append(b * N + pre)
            targets.append(torch.where(exc[b][pre], 0, B * N) + b * N + post)
            values.append(w)
        rows = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long, device=device)
        targets = torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long, device=device)
        values = torch.cat(values) if values else torch.zeros(0, device=device)
        fanout = torch.bincount(rows, minlength=B * N)
        rowptr = fanout.cumsum(0) - fanout
        ladder = LADDER.to(device)
        self.none = len(ladder)  # the bucket of rows without synapses
        self.bucket = torch.where(fanout > 0, torch.searchsorted(ladder, fanout), self.none)
        self.position = torch.zeros(B * N, dtype=torch.long, device=device)
        self.tables = {}
        for k in torch.unique(self.bucket).tolist():
            if k == self.none:
                continue
            members = (self.bucket == k).nonzero(as_tuple=True)[0]
            self.position[members] = torch.arange(len(members), device=device)
            j = torch.arange(int(ladder[k]), device=device)[None, :]
            valid = j < fanout[members][:, None]
            src = torch.where(valid, rowptr[members][:, None] + j, 0)
            self.tables[k] = (torch.where(valid, targets[src], 2 * B * N),
                              torch.where(valid, values[src], 0).to(values.dtype))
        self.B, self.N = B, N

    def select(self, keep: torch.Tensor) -> "SparseGraph":
        return SparseGraph([self.synapses[i] for i in keep.tolist()], self.exc[keep])

    def propagate(self, b_idx: torch.Tensor, i_idx: torch.Tensor, like: torch.Tensor):
        """(g_e, g_i) increments (B, N) from the spikes (b_idx, i_idx)."""
        out = torch.zeros(2 * self.B * self.N + 1, dtype=like.dtype, device=like.device)
        if len(b_idx):
            rows = b_idx * self.N + i_idx
            bucket = self.bucket.index_select(0, rows)
            order = torch.argsort(bucket, stable=True)
            position = self.position.index_select(0, rows.index_select(0, order))
            start = 0
            for k, count in enumerate(torch.bincount(bucket, minlength=self.none + 1).tolist()):
                if count and k != self.none:
                    targets, values = self.tables[k]
                    sel = position[start:start + count]
                    out.scatter_add_(0, targets.index_select(0, sel).view(-1),
                                     values.index_select(0, sel).view(-1))
                start += count
        out = out[:-1].view(2, self.B, self.N)
        return out[0], out[1]
