"""Figures of a training run: the training curve, and population rates per layer and trial."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import pd, tasks


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curve_figure(result: dict, path: Path) -> Path:
    """Training loss per step (one line per parameter set), held-out loss, and the held-out
    task score (WTA index, or XOR patterns correct)."""
    plt = _pyplot()
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = [c["step"] for c in result["curve"]]
    loss = np.array([c["loss"] for c in result["curve"]])
    for k in range(loss.shape[1]):
        ax_loss.plot(steps, loss[:, k], lw=0.8, alpha=0.6, label="train" if k == 0 else None)
    ev_steps = [e["step"] for e in result["evaluations"]]
    ev_loss = np.array([e["loss"] for e in result["evaluations"]])
    ax_loss.plot(ev_steps, ev_loss.mean(1), "k.-", label="held-out (mean)")
    ax_loss.set(xlabel="step", ylabel="loss", yscale="log", title=f"{result['task']}: loss")
    ax_loss.legend(fontsize=8)
    if result["task"] == "wta":
        score = [e["wta_index"][0] for e in result["evaluations"]]
        ax_score.plot(ev_steps, score, "o-")
        ax_score.axhline(0.75, color="grey", ls=":", label="success 0.75")
        ax_score.set(ylabel="WTA index (held-out)", ylim=(-1.05, 1.05))
        ax_score.legend(fontsize=8)
    else:
        score = np.array([e["correct_patterns"] for e in result["evaluations"]])
        for k in range(score.shape[1]):
            ax_score.plot(ev_steps, score[:, k] + 0.03 * k, "o-", ms=3, label=f"seed {k}")
        ax_score.set(ylabel="patterns correct (of 4)", ylim=(-0.2, 4.4))
        ax_score.legend(fontsize=7)
    ax_score.set(xlabel="step", title=f"held-out score ({result['seconds']:.0f} s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rates_figure(circuit, task_obj, config, path: Path, trials: int = 2) -> Path:
    """Rates of every population (rows: layers; columns: circuit columns; E solid, I dashed)
    in ``trials`` held-out trials (one colour each), with the targets on the readouts."""
    import torch

    if config.task == "wta":
        b = task_obj.held_out
        pick = [int(np.argmax(b.labels == w)) for w in (0, 1)][:trials]
        inputs = b.inputs[:, pick][:, None]
        targets = b.targets[:, pick]
    else:
        pick = [1, 3][:trials]  # one XOR-true, one XOR-false pattern
        inputs, _ = task_obj._all_patterns()
        inputs = inputs[:, :1, pick]
        targets = np.broadcast_to(tasks.XOR_TARGETS[pick], (inputs.shape[0], len(pick)))[..., None]
    with torch.no_grad():
        rates = circuit(torch.tensor(inputs, dtype=torch.float32),
                        config.dt, config.method, settle=config.settle)[:, 0].numpy()
    t = np.arange(1, rates.shape[0] + 1) * config.dt
    plt = _pyplot()
    n_col = len(circuit.spec.columns)
    fig, axes = plt.subplots(4, n_col, figsize=(3.6 * n_col, 7.5), sharex=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, column in enumerate(circuit.spec.columns):
        for layer in range(4):
            ax = axes[layer, c]
            for k in range(len(pick)):
                for e_or_i, style in ((0, "-"), (1, "--")):
                    pop = 8 * c + 2 * layer + e_or_i
                    ax.plot(t, rates[:, k, pop], style, color=colours[k % 10], lw=1)
                readout = list(circuit.spec.readout)
                pop_e = 8 * c + 2 * layer
                if pop_e in readout:
                    ax.plot(t, targets[:, k, readout.index(pop_e)], ":", color=colours[k % 10],
                            lw=1.5)
            ax.set_title(f"{column}: {pd.LAYERS[layer]} (E -, I --)", fontsize=9)
            if c == 0:
                ax.set_ylabel("rate (Hz)")
        axes[-1, c].set_xlabel("time (s)")
    label = "trial colours: held-out trials; dotted: target" if config.task == "wta" else \
        "blue: XOR-true pattern (0,1); orange: XOR-false (1,1); dotted: target"
    fig.suptitle(f"{config.task}: population rates after training ({label})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
