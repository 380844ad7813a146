"""The fit's last stage: move the final posterior samples onto the consistent set.

The acceptance (``automind validate``) asks a configuration to reproduce every feature to
within simulation noise at once; for MK1 at N = 500 that fixes the mean rate to ~0.5 %. An NPE
posterior learnt from a few thousand simulations in 28 dimensions is far wider than that set
(`docs/fit.md`), so almost none of its samples is accepted although the truth's own
re-simulations are. Refinement spends the last simulations on the samples themselves:

each generation moves every member of the ensemble by one step of ensemble Kalman inversion
(Iglesias, Law & Stuart 2013), the derivative-free Gauss–Newton step whose Jacobian is the
ensemble's own regression of features on parameters: in standardised coordinates u (over the
prior box; log-scaled for decade-spanning parameters with ``space="log"``, ``fit/space.py``) and
whitened feature residuals s (``NoiseModel.whiten``: z = (x − x_target)/σ decorrelated by the
noise's feature correlation R, so |s|²/k = d² and the noise is the identity there),

    u ← u + C_us (C_ss + α I)⁻¹ (0 − s),

re-simulates the moved members and keeps, per member, whichever of the old and the moved
configuration came closer (members that were never valid restart from a valid one). With
``step="adaptive"`` each member's step is scaled like a trust region: halved (down to
``MIN_STEP``) after a move that did not come closer, doubled (up to the full step) after one
that did; the full Gauss–Newton step overshoots where the features respond steeply and
nonlinearly (a rhythm's spectrum, a cliff into runaway), and a member whose move failed would
otherwise try the same step again from the same place. ``step="select"`` adds selection to
the adaptive steps, as a sequential Monte Carlo sampler resamples (Del Moral, Doucet & Jasra
2012 keep the better half): before each move the farther half of the members restarts from
copies of the nearest quarter (``SELECTED``, ``REPLACED``), and every member steps on its
residual plus one draw of the simulation noise (EKI's perturbed observations; Iglesias, Law &
Stuart 2013), so copies of one member take different steps: members far from a narrow
region stop spending simulations on linear steps that do not reach it. Selection trades
spread for yield: on the stiff toy of tests/test_fit_refine.py it lands 0.76 of the 7th
generation's members against 0.22 (6 seeds), but the landed members' spread along a direction
the features ignore falls from 0.53 to 0.16. On MK1 target 767 it closed the ensemble around
a cluster that stayed at 2.55 noise sd (yield 0; adaptive steps 0.015; docs/fit.md).
``step="hold"``: members kept at an accepted configuration (the closer of old and moved was
within the threshold) do not move (they are re-simulated with new seeds), the others take full
steps. Where the consistent set is thinner than the steps' local linear model resolves, full
steps move accepted members off it (MK1 target 91:
of the members accepted in generations 15 and 16, 29 % and 37 % were accepted again after
their next step); holding them trades distinct configurations for yield: on the stiff toy the
7th generation lands 0.23 against 0.16 with half as many distinct landed configurations, on
91 generations 18–20 reach 0.23, 0.27, 0.27 against 0.18, 0.19, 0.20 — but holding from the
start ends generation 17 at 0.14 against 0.165 (docs/fit.md): an option, not the default. Moves
follow the ensemble's spread, so the ensemble is the posterior's samples pulled onto the set of
configurations that reproduce the target rather than a cloud around one optimum; but it is not
a fair sample of that set: on MK1 it contracts to 0.27–0.52 of the posterior's spread in 7
generations and holds the truth inside its central 90 % on 7–17 of 28 parameters
(studies/mk1_targets; the fit reports this as ``truth_in_set_5_95``).

Generation K is a consistent-set folder ``RUN/refine/gK`` (its samples are the moved members;
resumable chunk by chunk like any consistent-set run); the ensemble after each generation is
rebuilt from the folders, so an interrupted fit resumes exactly.

The **consistent set** is ``RUN/refine/set``: every configuration accepted from the final
validation on, each simulated once and accepted. The last generation alone would drop what
earlier ones found: members already consistent are moved again and many moves leave the set
(TC11 DIV 7: 32 consistent in the 5th generation of 60, 117 distinct ones over the final
validation and the 5 generations). The **yield** stays the last generation's acceptance rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

#: Kalman gain regularisation α (noise variances): 1 = the simulation noise itself
ALPHA = 1.0
#: refinement stops after the first generation with this yield: the ensemble then reproduces
#: the target, and further generations mostly re-simulate its members (the MK1 demo passes it
#: in 5 generations, studies/mk1_targets' 767 and 267 in 8 and 9; 15 levels at 0.88, 91 at 0.2)
REFINE_UNTIL = 0.9
#: the smallest step scale of an adaptive member (``step="adaptive"``)
MIN_STEP = 1 / 16
#: how members step: the full Kalman step, a per-member scale adapted to its last move,
#: adaptive steps after selection (the farther members restart from copies of the nearer), or
#: full steps for members outside the acceptance only ("hold": accepted members stay and are
#: re-simulated)
STEPS = ("full", "adaptive", "select", "hold")
ADAPTIVE = ("adaptive", "select")
#: with ``step="select"``: the share of members nearest the target that is copied, and the
#: share farthest from it that restarts from those copies
SELECTED, REPLACED = 0.25, 0.5
#: members whose covariance gives a member's gain (MK1 target 0: yield 0.37 after 4
#: generations of 400 with 100 neighbours, 0.07 with the whole ensemble; docs/fit.md)
NEIGHBOURS = 100


def kalman_moves(u: np.ndarray, s: np.ndarray, alpha: float = ALPHA,
                 neighbours: int | None = NEIGHBOURS) -> np.ndarray:
    """One ensemble-Kalman-inversion step for every member: −C_us (C_ss + αI)⁻¹ s_j, with the
    covariances of the member's ``neighbours`` nearest members in u (localised: the linear
    model is fitted where the member is; all members when None or when there are fewer)."""
    if neighbours is None or len(u) <= neighbours:
        return -s @ _gain(u, s, alpha).T
    steps = np.empty_like(u)
    for j in range(len(u)):
        near = np.argsort(np.sum((u - u[j]) ** 2, axis=1))[:neighbours]
        steps[j] = -_gain(u[near], s[near], alpha) @ s[j]
    return steps


def _gain(u: np.ndarray, s: np.ndarray, alpha: float) -> np.ndarray:
    """The Kalman gain C_us (C_ss + αI)⁻¹ of an ensemble, (d, k)."""
    du, ds = u - u.mean(0), s - s.mean(0)
    c_us, c_ss = du.T @ ds / (len(u) - 1), ds.T @ ds / (len(u) - 1)
    return np.linalg.solve(c_ss + alpha * np.eye(len(c_ss)), c_us.T).T


class NothingToRefine(UserError):
    """Fewer than two members simulate validly: there is no ensemble to move."""


@dataclass
class Ensemble:
    """Members in search coordinates (``fit.space``) with their simulations' residuals."""

    u: np.ndarray         # (n, d)
    s: np.ndarray         # (n, k) whitened residuals (NoiseModel.whiten); NaN where one is missing
    distance: np.ndarray  # RMS of s; inf where not ok
    status: np.ndarray
    step: np.ndarray | None = None  # per-member step scale (None: the full step, 1)

    def __post_init__(self):
        if self.step is None:
            self.step = np.ones(len(self.u))

    @classmethod
    def from_folder(cls, folder, space, target: np.ndarray, noise) -> "Ensemble":
        """The members of a finished consistent-set folder (samples and their re-simulations),
        in ``space``'s coordinates (``fit.space.SearchSpace``)."""
        from ..invariance.consistent import load_chunks

        chunks = load_chunks(folder)
        theta = np.load(Path(folder) / "samples.npy")[chunks["index"]]
        ok = chunks["status"] == "ok"
        distance = np.where(ok, np.nan_to_num(chunks["distance"], nan=np.inf), np.inf)
        return cls(space.to_u(theta), noise.whiten(chunks["features"] - target), distance,
                   chunks["status"])

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.distance) & np.all(np.isfinite(self.s), axis=1)

    def restarted(self, rng: np.random.Generator) -> "Ensemble":
        """Members without a valid simulation replaced by (copies of) valid ones."""
        valid = self.valid
        if valid.sum() < 2:
            raise NothingToRefine("refinement: fewer than 2 members of the final ensemble have a valid "
                            "simulation with every feature; there is nothing to move")
        pick = np.where(valid, np.arange(len(valid)), rng.choice(np.flatnonzero(valid), len(valid)))
        return self.take(pick)

    def take(self, rows) -> "Ensemble":
        return Ensemble(self.u[rows], self.s[rows], self.distance[rows], self.status[rows],
                        self.step[rows])

    def selected(self) -> "Ensemble":
        """The ``REPLACED`` share of members farthest from the target replaced by copies of the
        ``SELECTED`` share nearest it (each copied equally often; ties by index)."""
        n = len(self.u)
        order = np.argsort(np.where(self.valid, self.distance, np.inf), kind="stable")
        pick = np.arange(n)
        far = order[n - int(round(REPLACED * n)):]
        pick[far] = np.resize(order[:max(1, int(round(SELECTED * n)))], len(far))
        return self.take(pick)

    def kept_better(self, moved: "Ensemble", adapt: bool = False) -> "Ensemble":
        """Per member, the closer of itself and its moved version; with ``adapt`` the step
        scale doubled (at most 1) where the move came closer, halved (at least MIN_STEP)
        where it did not."""
        better = moved.distance < self.distance
        step = self.step
        if adapt:
            step = np.where(better, np.minimum(1.0, 2 * step), np.maximum(MIN_STEP, step / 2))
        return Ensemble(np.where(better[:, None], moved.u, self.u),
                        np.where(better[:, None], moved.s, self.s),
                        np.where(better, moved.distance, self.distance),
                        np.where(better, moved.status, self.status), step)


def proposals(ensemble: Ensemble, space, seed: int, alpha: float = ALPHA, select: bool = False,
              hold_within: float | None = None):
    """The next generation's configurations (prior units; moves clipped into the prior box)
    and the ensemble they were moved from (invalid members restarted; with ``select``, the far
    half restarted from the near quarter and each residual perturbed by one noise draw); each
    member moves by its step scale times its Kalman step; with ``hold_within``, members at
    that distance or nearer do not move."""
    rng = np.random.default_rng(seed)
    start = ensemble.restarted(rng)
    if select:
        start = start.selected()
    residual = start.s + rng.standard_normal(start.s.shape) if select else start.s
    scale = start.step if hold_within is None else start.step * (start.distance > hold_within)
    u = start.u + scale[:, None] * kalman_moves(start.u, residual, alpha)
    return space.to_theta(space.clipped(u)), start


def refine(posterior, x_target, out, start_folder, generations: int, seed: int = 0,
           threshold: float = 2.0, workers: int = 1, dask: str | None = None,
           progress: bool = True, posterior_path: str | None = None,
           alpha: float = ALPHA, step: str = "full", space: str = "prior",
           until: float | None = None) -> tuple[list[dict], dict]:
    """Run ``generations`` refinement generations from the finished consistent-set folder
    ``start_folder`` (its noise scale is kept), or fewer: none after the first whose yield
    reaches ``until`` (None: all); ``step``: one of ``STEPS``; ``space``: where
    members move (``fit.space.SPACES``). Returns one row per
    generation and the last generation's consistent-set summary, its ``consistent_set`` and
    ``set_size`` replaced by the pooled set's (``out/set``, ``pooled_set``)."""
    from ..inference.noise import NoiseModel
    from ..invariance.consistent import find_consistent_set
    from .space import SearchSpace

    out, start_folder = Path(out), Path(start_folder)
    prior = posterior.prior
    moves = SearchSpace(prior, space)
    target = posterior.prepare_x(x_target)[0].numpy().astype(np.float64)
    noise = NoiseModel.load(start_folder)
    ensemble = Ensemble.from_folder(start_folder, moves, target, noise)
    rows, found = [], None
    for g in range(1, generations + 1):
        theta, start = proposals(ensemble, moves, seed + g, alpha, select=step == "select",
                                 hold_within=threshold if step == "hold" else None)
        folder = out / f"g{g}"
        found = find_consistent_set(posterior, x_target, folder, len(theta), samples=theta,
                                    sigma=noise, seed=seed + 10 * g, threshold=threshold,
                                    workers=workers, dask=dask, progress=progress,
                                    target="refinement generation", posterior_path=posterior_path)
        moved = Ensemble.from_folder(folder, moves, target, noise)
        ensemble = start.kept_better(moved, adapt=step in ADAPTIVE)
        rows.append({"stage": "refine", "round": g, "simulations": found["n_simulated"],
                     "valid_fraction": float(np.mean(moved.status == "ok")),
                     "yield": found["yield"], "n_consistent": found["n_consistent"],
                     "median_distance": float(np.median(moved.distance)),
                     "improved_fraction": float(np.mean(moved.distance < start.distance))}
                    | ({"median_step": float(np.median(start.step))} if step in ADAPTIVE else {}))
        if until is not None and found["yield"] >= until:
            break
    folders = [start_folder] + [out / f"g{row['round']}" for row in rows]
    return rows, found | pooled_set(folders, out / "set", prior, posterior_path)


def pooled_set(folders, out: Path, prior, posterior_path: str | None = None) -> dict:
    """The accepted configurations of consistent-set ``folders``, distinct θ once (the first
    time accepted), written to ``out`` as a consistent set (with the first folder's noise
    model and target, ``write_pooled_record``); its csv and size."""
    from ..invariance.consistent import load_consistent_set, write_pooled_record, write_set

    found = [load_consistent_set(folder) for folder in folders]  # each folder's accepted rows
    theta, features, seeds, distance = (np.concatenate([f[k] for f in found])
                                        for k in ("theta", "features", "seed", "distance"))
    _, first = np.unique(theta, axis=0, return_index=True)
    keep = np.sort(first)
    out.mkdir(parents=True, exist_ok=True)
    write_set(out, prior, theta[keep], features[keep], seeds[keep], distance[keep],
              np.arange(len(keep)))
    write_pooled_record(out, folders, posterior_path)
    return {"consistent_set": str(out / "consistent_set.csv"), "set_size": int(len(keep)),
            "last_generation": str(folders[-1])}
