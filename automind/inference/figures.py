"""Figures of inference: training curves, pairplots, coverage curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plots import _pyplot


def training_curve(curves: list, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, curve in enumerate(curves):
        curve = np.asarray(curve)
        ax.plot(curve[:, 0], color=f"C{k}", lw=1, label=f"train {k + 1}" if len(curves) > 1 else "train")
        ax.plot(curve[:, 1], color=f"C{k}", lw=1, ls="--",
                label=f"validation {k + 1}" if len(curves) > 1 else "validation")
    ax.set(xlabel="epoch", ylabel="-log q(θ | x)", title="training curve (best epoch kept)")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def pairplot(samples: np.ndarray, names: list[str], path: Path, truth=None, limits=None,
             max_dims: int = 12, background: np.ndarray | None = None,
             labels: tuple[str, str] = ("posterior samples", "")) -> Path:
    """Marginals on the diagonal, pairwise scatter below (first ``max_dims`` parameters);
    ``background`` samples (e.g. all posterior samples behind a consistent set) in grey.
    A column shares one parameter's range, so only the outer panels carry tick labels
    (tight_layout and tick labels on 78 panels took ~20 s)."""
    plt = _pyplot()
    d = min(samples.shape[1], max_dims)
    spans = [limits[i] if limits is not None else _span(samples, background, truth, i)
             for i in range(d)]
    fig, axes = plt.subplots(d, d, figsize=(1.6 * d + 1, 1.6 * d + 1), squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                fig.delaxes(ax)
                continue
            if i == j:
                if background is not None:
                    ax.hist(background[:, i], bins=40, color="0.75", range=spans[i], density=True)
                ax.hist(samples[:, i], bins=40, color="tab:blue", alpha=0.8, range=spans[i],
                        density=background is not None)
                if truth is not None:
                    ax.axvline(truth[i], color="tab:red", lw=1)
                ax.set_yticks([])
            else:
                if background is not None:
                    ax.plot(background[:, j], background[:, i], ".", ms=1, color="0.75")
                ax.plot(samples[:, j], samples[:, i], ".", ms=1 if background is None else 3,
                        alpha=0.3 if background is None else 0.8, color="tab:blue")
                if truth is not None:
                    ax.plot(truth[j], truth[i], "x", color="tab:red", ms=6)
                ax.set_ylim(spans[i])
                if j == 0:
                    ax.set_ylabel(names[i], fontsize=7)
                else:
                    ax.set_yticklabels([])
            ax.set_xlim(spans[j])
            ax.locator_params(nbins=3)
            ax.tick_params(labelsize=6)
            if i == d - 1:
                ax.set_xlabel(names[j], fontsize=7)
            else:
                ax.set_xticklabels([])
    if background is not None:
        handles = [plt.Line2D([], [], ls="", marker="o", color="0.75", label=labels[0]),
                   plt.Line2D([], [], ls="", marker="o", color="tab:blue", label=labels[1])]
        if truth is not None:
            handles.append(plt.Line2D([], [], ls="", marker="x", color="tab:red", label="truth"))
        fig.legend(handles=handles, loc="upper right", frameon=False, fontsize=8)
    margin = 0.5 / (1.6 * d + 1)  # half an inch for the outer labels
    fig.subplots_adjust(left=margin + 0.02, bottom=margin + 0.02, right=0.99, top=0.99,
                        wspace=0.08, hspace=0.08)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _span(samples, background, truth, i: int) -> tuple[float, float]:
    """One parameter's plotted range: every point shown, 3 % padding."""
    values = [samples[:, i]] + ([background[:, i]] if background is not None else []) \
        + ([np.atleast_1d(truth[i])] if truth is not None else [])
    values = np.concatenate(values)
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    pad = 0.03 * (high - low) or 0.5 * max(abs(low), 1e-12)
    return low - pad, high + pad


def coverage_plot(report: dict, path: Path, max_parameters: int = 28) -> Path:
    """Calibration at a glance (a ``diagnose`` report): left, coverage curves — latent
    space and marginal per parameter (the headline), TARP, and the θ-space HPD curve kept
    for reference — with the band an exactly calibrated posterior stays in (95 %) for this
    many cases; right, contraction along the posterior's principal directions and the
    information in nats."""
    plt = _pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.5))
    grid = np.asarray(report["marginal_coverage"]["nominal"])
    band = report["marginal_coverage"]["noise_95_one_parameter"]
    ax.fill_between(grid, np.clip(grid - band, 0, 1), np.clip(grid + band, 0, 1), color="0.9",
                    label=f"95 % band, calibrated ({report['n_cases']} cases)")
    ax.plot([0, 1], [0, 1], color="gray", ls="--", lw=1)
    for k, curve in enumerate(list(report["marginal_coverage"]["empirical"].values())[:max_parameters]):
        ax.plot(grid, curve, color="tab:green", lw=0.6, alpha=0.5,
                label="marginal (SBC), per parameter" if k == 0 else None)
    latent = report.get("latent_coverage")
    if latent:
        ax.plot(latent["nominal"], latent["empirical"], color="tab:blue", lw=2,
                label=f"flow latent space (error {latent['max_abs_error']:.2f})")
    tarp = report["tarp"]
    ax.plot(tarp["nominal"], tarp["empirical"], color="tab:orange", lw=1.5,
            label=f"TARP (ATC {tarp['atc']:+.2f})")
    hpd = report["hpd_coverage"]
    ax.plot(hpd["nominal"], hpd["empirical"], color="0.4", lw=1, ls=":",
            label="θ-space HPD (not the headline)")
    ax.set(xlabel="credibility level", ylabel="empirical coverage", xlim=(0, 1), ylim=(0, 1),
           title=f"coverage error {report['coverage_max_abs_error']:.2f} "
                 f"(noise level {report['coverage_noise_95']:.2f})")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    spectrum = np.asarray(report["principal_contraction"]["spectrum"])
    bx.bar(np.arange(1, len(spectrum) + 1), spectrum, color="tab:purple")
    bx.xaxis.get_major_locator().set_params(integer=True)
    bx.axhline(1, color="k", lw=0.8)
    info = report["information"]
    note = f"information {info['mean']:.2f} ± {info['standard_error']:.2f} nats; " \
           f"shuffled x {info['shuffled']:.2f}"
    if info.get("validity") is not None:
        note += f"; validity {info['validity']:.2f}"
    bx.set(xlabel="principal direction of the posterior (strongest first)",
           ylabel="prior sd / posterior sd", title=note)
    bx.title.set_fontsize(8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def feature_comparison(report: dict, names: list[str], path: Path) -> Path:
    """Target features vs those of accepted and rejected re-simulations (transformed space)."""
    plt = _pyplot()
    features = np.asarray(report["features"], dtype=float)
    accepted = np.asarray(report["accepted"], dtype=bool)
    fig, ax = plt.subplots(figsize=(max(6, 0.25 * len(names) + 2), 4))
    k = np.arange(features.shape[1])
    for row in features[~accepted][:100]:
        ax.plot(k, row, color="0.8", lw=0.5)
    for row in features[accepted][:100]:
        ax.plot(k, row, color="tab:blue", lw=0.6, alpha=0.6)
    ax.plot(k, report["target"], color="k", lw=1.8, label="target")
    ax.plot([], [], color="tab:blue", label=f"accepted ({accepted.sum()})")
    ax.plot([], [], color="0.8", label=f"rejected ({(~accepted).sum()})")
    if len(names) <= 40:
        ax.set_xticks(k, names, rotation=90, fontsize=6)
    ax.set(ylabel="feature (transformed)", title=f"yield {report['yield']:.2f}")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def sbc_histograms(ranks: np.ndarray, n_samples: int, names: list[str], path: Path,
                   max_dims: int = 12) -> Path:
    """Histograms of SBC ranks per parameter; uniform when calibrated (band: ±2 sd)."""
    plt = _pyplot()
    ranks = np.asarray(ranks)
    d = min(ranks.shape[1], max_dims)
    cols = min(d, 4)
    rows = int(np.ceil(d / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    bins = 10
    expected = len(ranks) / bins
    for k, ax in enumerate(axes.ravel()):
        if k >= d:
            ax.axis("off")
            continue
        ax.hist(ranks[:, k], bins=bins, range=(0, n_samples), color="tab:blue", alpha=0.8)
        ax.axhspan(expected - 2 * np.sqrt(expected), expected + 2 * np.sqrt(expected),
                   color="0.85", zorder=0)
        ax.set_title(names[k], fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle("SBC ranks", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
