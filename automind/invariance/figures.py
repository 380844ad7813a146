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
