"""Does the output really stay invariant along the set? A high-probability path between the
two most distant consistent configurations, re-simulated at points along it, against two
contrasts re-simulated the same way: the straight line between the same ends and the
fastest-changing (orthogonal) direction from the path's midpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..prior import STANDARDISED_EDGE
from .geometry import global_geometry, high_probability_path, orthogonal_steps, require


def farthest_pair(u: np.ndarray, max_points: int = 1000, seed: int = 0) -> tuple[int, int]:
    """Indices of the two configurations farthest apart (among up to ``max_points``)."""
    u = np.asarray(u, float)
    require(len(u), 2, "a path between configurations")
    pool = np.random.default_rng(seed).permutation(len(u))[:max_points]
    d = np.linalg.norm(u[pool, None] - u[None, pool], axis=-1)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    return int(pool[i]), int(pool[j])


def arc_length(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def check_path(posterior, x, u_set: np.ndarray, features, target: np.ndarray, noise,
               threshold: float, n_check: int = 9, seed: int = 0) -> dict:
    """Re-simulate ``n_check`` points along the high-probability path between the farthest
    pair of ``u_set`` (standardised), along the straight line between them, and along the
    orthogonal uphill direction from the path's midpoint (steps totalling half the path's
    length). ``features(thetas, seeds)`` gives transformed features; distances from ``target``
    under ``noise`` (a NoiseModel, or σ alone: the RMS in noise sd), accepted within
    ``threshold``."""
    from ..inference.noise import NoiseModel

    noise = noise if isinstance(noise, NoiseModel) else NoiseModel(noise)
    prior = posterior.prior
    start, end = farthest_pair(u_set, seed=seed)
    found = high_probability_path(posterior, x, u_set[start], u_set[end])
    path, straight = found["path"], found["straight"]
    picks = np.linspace(0, len(path) - 1, n_check).round().astype(int)
    length = arc_length(path)[-1]
    middle = len(path) // 2
    away = orthogonal_steps(posterior, x, path[middle], path[middle + 1] - path[middle - 1],
                            n_steps=n_check - 1, step=length / (2 * (n_check - 1)))
    lines = {"path": path[picks], "straight": straight[picks], "orthogonal": away}
    seeds = np.random.SeedSequence(seed).generate_state(sum(len(v) for v in lines.values()))
    points = np.clip(np.vstack(list(lines.values())), -STANDARDISED_EDGE, STANDARDISED_EDGE)
    simulated = np.asarray(features(prior.destandardise(points), seeds), float)
    distance = noise.distance(simulated, target)
    report, offset = {}, 0
    for name, line in lines.items():
        d = distance[offset:offset + len(line)]
        offset += len(line)
        accepted = np.isfinite(d) & (d <= threshold)
        report[name] = {"u": line.tolist(), "arc_length": arc_length(line).tolist(),
                        "distance": d.tolist(), "accepted_fraction": float(accepted.mean())}
    report["ends"] = [start, end]
    report["loss"], report["straight_loss"] = found["loss"], found["straight_loss"]
    report["threshold"] = threshold
    report["simulations"] = int(len(points))
    return report


def plot_path_check(report: dict, u_set: np.ndarray, path: Path) -> Path:
    """Left: distance to the target along each line; right: the lines over the set's first
    two principal components."""
    from ..plots import _pyplot

    plt = _pyplot()
    components = global_geometry(u_set)["components"][:, :2]
    centre = u_set.mean(0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"path": ("tab:blue", "-", "high-probability path"),
              "straight": ("tab:grey", "--", "straight line"),
              "orthogonal": ("tab:red", "-", "orthogonal (fastest-changing)")}
    for name, (color, ls, label) in styles.items():
        line = report[name]
        axes[0].plot(line["arc_length"], line["distance"], "o", color=color, ls=ls, label=label)
        xy = (np.asarray(line["u"]) - centre) @ components
        axes[1].plot(xy[:, 0], xy[:, 1], "o", color=color, ls=ls, ms=4, label=label)
    axes[0].axhline(report["threshold"], color="k", lw=0.8, ls=":", label="acceptance threshold")
    axes[0].set(xlabel="distance travelled (prior sd)", ylabel="distance to target (noise sd)",
                title="re-simulated along each line")
    axes[0].legend(fontsize=8)
    xy = (u_set - centre) @ components
    axes[1].scatter(xy[:, 0], xy[:, 1], s=4, color="0.75", zorder=0, label="consistent set")
    axes[1].set(xlabel="PC1 of the consistent set", ylabel="PC2", title="the lines in the set")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def analyse_path(posterior, x, run: str | Path, features, n_check: int = 9, seed: int = 0) -> dict:
    """``check_path`` for a finished `automind invariance` folder (its consistent set, noise
    scale and threshold); writes path.json and geometry_path.png there."""
    import json

    from ..inference.noise import NoiseModel
    from ..io import write_json
    from .consistent import load_consistent_set

    run = Path(run)
    u = np.asarray(load_consistent_set(run)["u"], float)
    noise = NoiseModel.load(run)
    threshold = json.loads((run / "run.json").read_text())["threshold"]
    target = posterior.prepare_x(x)[0].numpy().astype(np.float64)
    report = check_path(posterior, x, u, features, target, noise, threshold, n_check, seed)
    report["figure"] = str(plot_path_check(report, u, run / "geometry_path.png"))
    write_json(run / "path.json", report)
    return report
