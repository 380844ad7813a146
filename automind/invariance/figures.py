"""Figures of a consistent set's geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plots import _pyplot


def plot_directions(u: np.ndarray, names: list[str], components: np.ndarray,
                    points: np.ndarray, sloppy: np.ndarray, path: Path,
                    spectrum: np.ndarray | None = None) -> Path:
    """The consistent set (standardised) in the plane of the two parameters that load most
    on its first principal component, with that component through the set's mean (global)
    and the local sloppy direction at each of ``points`` (short segments); the PCA
    spectrum beside it."""
    plt = _pyplot()
    i, j = (np.argsort(-np.abs(components[:, 0]))[:2] if u.shape[1] > 1 else (0, 0))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), gridspec_kw={"width_ratios": [1.3, 1]})
    ax = axes[0]
    ax.plot(u[:, i], u[:, j], ".", ms=3, color="tab:blue", alpha=0.6, label="consistent set")
    centre, spread = u.mean(0), 2 * u.std(0).max()
    pc = components[:, 0]
    ax.plot(*[[centre[k] - spread * pc[k], centre[k] + spread * pc[k]] for k in (i, j)],
            color="k", lw=1.5, label="global PC 1")
    length = 0.15 * spread
    for point, direction in zip(points, sloppy):
        ax.plot(*[[point[k] - length * direction[k], point[k] + length * direction[k]]
                  for k in (i, j)], color="tab:orange", lw=2)
    ax.plot([], [], color="tab:orange", lw=2, label="local sloppy direction (Hessian)")
    ax.set(xlabel=f"{names[i]} (prior sd)", ylabel=f"{names[j]} (prior sd)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(frameon=False, fontsize=8)
    if spectrum is not None:
        axes[1].bar(np.arange(1, len(spectrum) + 1), spectrum, color="tab:blue")
        axes[1].set(xlabel="principal component", ylabel="explained variance ratio",
                    title="global PCA of the consistent set",
                    xticks=np.arange(1, len(spectrum) + 1))
    else:
        axes[1].axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_correlations(matrices: dict[str, np.ndarray], names: list[str], path: Path) -> Path:
    """Side-by-side correlation matrices (e.g. marginal vs conditional), -1 blue to +1 red."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.6 * len(matrices) + 0.8, 4.4),
                             squeeze=False)
    size = 7 if len(names) <= 12 else 5
    for ax, (title, matrix) in zip(axes[0], matrices.items()):
        image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=size)
        ax.set_yticks(range(len(names)), names, fontsize=size)
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="correlation")
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_local_dimensionality(local_dims: np.ndarray, angles: np.ndarray, global_pr: float,
                              path: Path) -> Path:
    """Histograms of the local dimensionality and of the local-vs-global subspace angle."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    axes[0].hist(local_dims, bins=20, color="tab:orange")
    axes[0].axvline(global_pr, color="k", lw=1.5, label=f"global ({global_pr:.2f})")
    axes[0].set(xlabel="local dimensionality (participation ratio of the local covariance)",
                ylabel="configurations")
    axes[0].legend(frameon=False, fontsize=8)
    axes[1].hist(angles, bins=18, range=(0, 90), color="tab:purple")
    axes[1].set(xlabel="largest principal angle, local sloppy vs global subspace (°)",
                ylabel="configurations")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_cheap_alignment(report: dict, path: Path) -> Path:
    """Histograms of |cos| (iso-rate normal vs the posterior's stiffest direction), of the
    posterior's curvature along the normal over its mean curvature and of the consistent
    set's variance along it over its mean variance, with a random direction's expectation
    marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    variance = np.array(report["set_variance_over_mean"], float)
    panels = [  # values, histogram range, a random direction's mean, label
        (report["stiff_cosine"], (0, 1), report["random_direction_cosine"],
         "|cos| predicted iso-rate normal vs posterior's stiffest direction"),
        (report["curvature_over_mean"], None, 1.0,
         "posterior curvature along the normal / mean curvature"),
        (np.log10(np.where(variance > 0, variance, np.nan)), None, 0.0,
         "log10 consistent set's variance along the normal / mean variance")]
    for ax, (values, limits, null, label) in zip(axes, panels):
        values = np.array(values, float)
        ax.hist(values[np.isfinite(values)], bins=20, range=limits, color="tab:green")
        ax.axvline(null, color="k", lw=1.5, label="random direction (mean)")
        ax.set(xlabel=label, ylabel="configurations")
        ax.legend(frameon=False, fontsize=8)
    fig.suptitle(f"cheap model: {report['n_predicted']} of {report['n']} configurations predicted",
                 fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_marginals(sets: dict[str, np.ndarray], names: list[str], report: dict, path: Path,
                   max_parameters: int = 8) -> Path:
    """Marginal histograms (standardised) of the most separating parameters, one colour
    per set."""
    plt = _pyplot()
    first = next(iter(report["pairs"].values()))
    order = sorted(range(len(names)), key=lambda i: -first["separation"][names[i]])[:max_parameters]
    cols = min(4, len(order))
    rows = -(-len(order) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False)
    for ax, i in zip(axes.ravel(), order):
        for label, u in sets.items():
            ax.hist(u[:, i], bins=30, range=(-1.8, 1.8), density=True, alpha=0.5, label=label)
        ax.set_title(f"{names[i]} (overlap {first['overlap'][names[i]]:.2f})", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(order):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.supxlabel("parameter (prior sd from the prior centre)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_local_comparison(report: dict, path: Path) -> Path:
    """Local dimensionality per dataset (box plots) with each set's global participation ratio."""
    plt = _pyplot()
    labels = list(report["local_dimensionality"])
    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 2.5, 3.8))
    data = [np.asarray(report["local_dimensionality"][label], float) for label in labels]
    ax.boxplot([d[np.isfinite(d)] for d in data], showfliers=False)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.plot(range(1, len(labels) + 1), [report["participation_ratio"][l] for l in labels], "kD",
            label="global participation ratio")
    ax.set(ylabel="local dimensionality")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
