"""A finished fit's refinement replayed (its generations' folders copied into OUT are reused)
and continued from generation FIRST_NEW to LAST with full Kalman steps (MODE full) or steps
damped after the discrepancy principle (MODE damped: member j's step scaled by
clip((d_j² − 1)/d_j², 0, 1), so a member at the noise level stays, one far away takes the full
step; MODE stay: members within the acceptance do not move, only re-simulated with new seeds;
MODE denoised: each member steps on its residual shrunk towards the linear model of its
neighbours, ``denoised``; MODE pure: on that model's prediction alone):
FIT_RUN OUT FIRST_NEW LAST MODE [WORKERS]. Log coordinates. Prints one JSON row per new generation.
Session 19, target 91 from its 17th generation: full 0.18, 0.19, 0.20; damped 0.205, 0.21,
0.19. Session 20, from its 15th: denoised 0.0925, 0.1525, 0.1425; pure 0.1175, 0.1475, 0.2325
(full 0.078, 0.135, 0.165); pure from the start falls behind (docs/fit.md)."""
import json, sys
from pathlib import Path
import numpy as np


def denoised(u, s, neighbours=100, ridge=1e-3, shrink=True):
    """Each member's residual shrunk towards the prediction at its u of the ridge-regularised
    linear regression of s on u over its ``neighbours`` nearest members: ŝ + λ (s − ŝ),
    λ = max(0, 1 − 1/v), v the regression's mean squared residual (the noise is 1 in whitened
    units); ``shrink=False``: ŝ alone."""
    out = np.empty_like(s)
    for j in range(len(u)):
        near = np.argsort(np.sum((u - u[j]) ** 2, axis=1))[:neighbours]
        u0, s0 = u[near].mean(0), s[near].mean(0)
        du, ds = u[near] - u0, s[near] - s0
        gram = du.T @ du
        penalty = ridge * max(np.trace(gram) / len(gram), 1e-300) * np.eye(len(gram))
        coef = np.linalg.solve(gram + penalty, du.T @ ds)
        v = np.mean((ds - du @ coef) ** 2) * len(near) / max(len(near) - len(gram) - 1, 1)
        predicted = s0 + (u[j] - u0) @ coef
        keep = max(0.0, 1.0 - 1.0 / max(v, 1e-12)) if shrink else 0.0
        out[j] = predicted + keep * (s[j] - predicted)
    return out


def main():
    from automind.fit.refine import Ensemble, kalman_moves
    from automind.fit.space import SearchSpace
    from automind.inference.noise import NoiseModel
    from automind.inference.posterior import load_posterior
    from automind.invariance.consistent import find_consistent_set

    run, out, first, last, mode = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    workers = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    meta = json.loads((run / "fit.json").read_text())
    posterior = load_posterior(json.loads((run / "final/run.json").read_text())["posterior"])
    x = np.array([np.nan if v is None else v for v in meta["target"]["x"]], float)
    seed = meta["settings"]["seed"] + 11
    moves = SearchSpace(posterior.prior, "log")
    target = posterior.prepare_x(x)[0].numpy().astype(np.float64)
    noise = NoiseModel.load(run / "final")
    ens = Ensemble.from_folder(run / "final", moves, target, noise)
    for g in range(1, last + 1):
        rng = np.random.default_rng(seed + g)
        start = ens.restarted(rng)
        residual = start.s
        if g >= first and mode in ("denoised", "pure"):
            residual = denoised(start.u, start.s, shrink=mode == "denoised")
        step = kalman_moves(start.u, residual)
        if g >= first and mode == "damped":
            d2 = start.distance ** 2
            step = step * np.clip((d2 - 1) / d2, 0, 1)[:, None]
        elif g >= first and mode == "stay":  # members within the acceptance do not move
            step = step * (start.distance > 2.0)[:, None]
        theta = moves.to_theta(moves.clipped(start.u + step))
        folder = out / f"g{g}"
        found = find_consistent_set(posterior, x, folder, len(theta), samples=theta, sigma=noise,
                                    seed=seed + 10 * g, threshold=2.0, workers=workers, progress=False,
                                    target="refinement generation")
        moved = Ensemble.from_folder(folder, moves, target, noise)
        ens = start.kept_better(moved)
        if g >= first:
            print(json.dumps({"generation": g, "mode": mode, "yield": found["yield"],
                              "median_distance": round(float(np.median(moved.distance)), 2)}), flush=True)


if __name__ == "__main__":
    main()
