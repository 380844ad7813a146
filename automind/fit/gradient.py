"""``automind fit --method gradient``: θ fitted by gradient descent through the torch MK1
(``rsnn.fit.fit_theta``) from K batched starts, every result re-simulated in Brian2 and
accepted within ``--threshold`` of the target (spec rsnn.md §5a) as validate accepts: the
whitened distance under the noise model (σ and the features' shrunk correlation,
``inference/noise.py``) restricted to the columns the recording has (folders whose
noise.json has no correlation keep the RMS of z).

Loss: d² = mean ((t(x) − t(x*))/σ)² over the set's differentiable features the recording
has, plus optional terms (``gradient_loss``). σ is the SBI method's per-feature noise scale:
the sd of each transformed feature over NOISE_REPEATS (32) Brian2 re-simulations of the
reference θ (the truth of a bank target, else the first start), floored as validate.
The yield is accepted / starts: a start that failed (NaN loss or gradient) counts as not
accepted. Resumable like the SBI method; the layout matches it::

    RUN/fit.json            method "gradient", settings, target (a resumed run must match)
    RUN/starts.npy          the K starts (prior, or posterior samples at the target; with
                        --screen the K of RUN/screen/draws.npy with the lowest d² on one
                        forward run each, screen.npz)
    RUN/final/noise.json    σ and R from the Brian2 noise repeats at the reference
    RUN/gradient/fits.npz   fitted θ, loss curves, statuses, θ per step (theta_path) and the steps
                        averaged into each fit (window); fits.csv (samples.csv format);
                        checkpoint.npz while a fit runs (every CHECKPOINT_STEPS steps)
    RUN/gauss_newton/       with --gauss-newton S: refined.npz (θ, starts, d² per step, JᵀJ / m),
                        fits.csv; checkpoint.npz while it runs (``rsnn.refine``)
    RUN/final/              samples.npy (the fits), resim.npz, consistent.npz, consistent_set.csv
    RUN/compare.json        with --compare: HPD level of each fit under a posterior, and the
                        posterior's training-bank reference (gradient_compare)
    RUN/summary.json
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import json_floats, save_npy, save_npz, write_json
from ..progress import sayer
from .plan import NOISE_REPEATS
from .record import record_run

#: feature sets whose columns the torch features reproduce (spike statistics on all units,
#: PSD bands of the E population)
SUPPORTED_SETS = ("spikes", "mk1_compact")
#: what a gradient fit moves: θ, or the per-synapse weights of each start's realised graph
FIT_MODES = ("theta", "weights")
#: a fit's state (θ or weights) is saved every this many steps (gradient/checkpoint.npz) and
#: resumed from; as often as the progress line, since a step of the study's size (B 10, N 500,
#: 2.6 s) takes ~40 s
CHECKPOINT_STEPS = 10
#: Brian2 runs per fit (θ, or a weights fit's graph: the acceptance check's and new seeds)
#: whose median d picks the best start
BEST_SEEDS = 4


@dataclass(frozen=True)
class GradientSettings:
    """Everything that decides a gradient fit's result (recorded in fit.json)."""

    features: str = "mk1_compact"
    starts: int = 8
    steps: int = 100
    lr: float = 0.05
    seed: int = 0
    threshold: float = 2.0
    loss: tuple = ()                    # extra terms: rate_quantiles, fano_curve
    fit_features: tuple | None = None   # d²'s features (None: every differentiable one)
    band: tuple | None = None           # (F1, F2) Hz: −log10 band power of the E rate
    rate_range: tuple | None = None     # (LO, HI) Hz: hinge on the E rate (needed by band)
    starts_from: str | None = None      # posterior folder: starts are its samples at the target
    dtype: str = "float64"
    memory_limit_gib: float = 4.0
    fit: str = "theta"                  # "theta", or "weights": each start's per-synapse weights
    recurrent_grad: float = 1.0         # gradient factor per synaptic hop (θ fits; 0: detached)
    screen: int = 0                     # draws run forward once; the `starts` lowest-d² fitted
    gauss_newton: int = 0               # derivative-free Gauss–Newton steps after the gradient's
    gauss_newton_step: float = 0.3      # their central differences' half-width, prior sd
    gauss_newton_seeds: int = 1         # seeds each step's residuals are averaged over

    def __post_init__(self):
        from .gradient_loss import check_terms

        checks = [(self.starts >= 1, "starts must be >= 1"),
                  (self.steps >= 0 and self.gauss_newton >= 0,
                   "steps and --gauss-newton must be >= 0"),
                  (self.steps + self.gauss_newton >= 1, "--steps 0 needs --gauss-newton S >= 1"),
                  (self.gauss_newton_seeds >= 1, "--gauss-newton-seeds must be >= 1"),
                  (0 < self.gauss_newton_step <= 1,
                   "--gauss-newton-step must be in (0, 1] prior sd"),
                  (not (self.gauss_newton and self.fit == "weights"),
                   "--gauss-newton moves θ; a weights fit (--fit weights) leaves θ at its start"),
                  (self.lr > 0, "lr must be > 0"), (self.threshold > 0, "threshold must be > 0"),
                  (self.dtype in ("float32", "float64"), "dtype must be float32 or float64"),
                  (self.memory_limit_gib > 0, "memory limit must be > 0 GiB"),
                  (0 <= self.recurrent_grad <= 1, "--recurrent-grad must be in [0, 1]"),
                  (self.screen == 0 or self.screen >= self.starts,
                   f"--screen must be 0 or at least --starts ({self.starts})"),
                  (self.fit in FIT_MODES, f"--fit must be one of {FIT_MODES}, got {self.fit!r}")]
        for ok, message in checks:
            if not ok:
                raise UserError(f"gradient fit: {message}")
        check_terms(self.loss, self.band, self.rate_range)

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("loss", "band", "rate_range", "fit_features"):
            out[key] = None if out[key] is None else [v for v in out[key]]
        if self.fit == "theta":  # as before the weights mode, so older run folders resume
            del out["fit"]
        if self.recurrent_grad == 1.0:  # likewise
            del out["recurrent_grad"]
        if not self.screen:
            del out["screen"]
        if not self.gauss_newton:  # likewise (its step and seeds mean nothing without it)
            del out["gauss_newton"], out["gauss_newton_step"], out["gauss_newton_seeds"]
        elif self.gauss_newton_seeds == 1:  # likewise
            del out["gauss_newton_seeds"]
        return out


def _say(progress: bool, text: str) -> None:
    sayer(progress, "fit (gradient): ")(text)


def _transformed(fs, results) -> np.ndarray:
    return fs.transform(np.array([r.features[fs.name] for r in results], dtype=np.float64))


def noise_sigma(spec, prior, fs, reference, target: np.ndarray, seed: int, workers: int) -> dict:
    """The sbi method's noise model (σ and the features' shrunk correlation) over
    NOISE_REPEATS Brian2 runs of ``reference``."""
    from ..features.bursts import feature_quanta
    from ..inference.noise import NoiseModel
    from ..inference.validate import ok_runs, resimulate

    runs = resimulate(spec, prior, np.repeat(np.asarray(reference, float)[None], NOISE_REPEATS, 0),
                      seed, fs.name, workers)
    with warnings.catch_warnings():  # a feature no run defines: NaN, then σ = inf (ignored)
        warnings.simplefilter("ignore", RuntimeWarning)
        noise = NoiseModel.from_runs(_transformed(fs, ok_runs(runs)), target,
                                     quantum=feature_quanta(
                                         fs.names, spec.duration - spec.t_analysis_start))
    return noise.to_dict() | {"sigma": json_floats(noise.sigma),
                              "statuses": [r.status for r in runs]}


def score(features: np.ndarray, status, target, noise, threshold: float) -> dict:
    """validate's d and acceptance for transformed feature rows (``noise``: a NoiseModel of
    these columns, or σ alone for the RMS of z)."""
    from ..inference.noise import NoiseModel

    noise = noise if isinstance(noise, NoiseModel) else NoiseModel(noise)
    distance = noise.distance(features, target)
    accepted = (np.asarray(status) == "ok") & np.isfinite(distance) & (distance <= threshold)
    return {"distance": distance, "accepted": accepted}


class GradientFit:
    """One gradient-fit run folder (see the module docstring)."""

    def __init__(self, out, spec, prior, settings: GradientSettings, recording, x, truth,
                 workers: int = 1, progress: bool = True, start_theta=None,
                 recording_options: dict | None = None, device: str = "cpu"):
        from ..features.sets import get_feature_set
        from ..rsnn.fit import DIFFERENTIABLE

        self.out, self.spec, self.prior, self.settings = Path(out), spec, prior, settings
        self.recording, self.x = recording, np.asarray(x, float)
        self.truth, self.workers, self.progress = truth, workers, progress
        self.device = device  # where the torch networks run (not a setting: results match)
        self.recording_options = recording_options or {}
        self.start_theta = None if start_theta is None else prior.validate(start_theta)
        self.fs = get_feature_set(settings.features)
        self.t_target = self.fs.transform(self.x[None])[0]
        chosen = self.fs.names if settings.fit_features is None else settings.fit_features
        unknown = [n for n in chosen if n not in self.fs.names]
        if unknown:
            raise UserError(f"gradient fit: {unknown} are not features of {self.fs.name}")
        self.fitted = [n for k, n in enumerate(self.fs.names) if n in chosen
                       and n in DIFFERENTIABLE and np.isfinite(self.t_target[k])]
        # scored as validate on the columns the recording has (the posterior's columns)
        self.columns = np.isfinite(self.t_target)
        if not self.fitted:
            raise UserError(f"gradient fit: no differentiable feature of {self.fs.name} is defined "
                            f"for {recording}; differentiable: {sorted(DIFFERENTIABLE)}")

    def starts(self, x_posterior=None) -> np.ndarray:
        """The K starts (starts.npy); with ``screen``, the draws to screen (screen/draws.npy)."""
        s = self.settings
        file = self.out / ("screen/draws.npy" if s.screen else "starts.npy")
        if not file.is_file():
            n = s.screen or s.starts
            if self.start_theta is not None:
                theta = self.start_theta
            elif s.starts_from:
                from ..inference.posterior import load_posterior

                posterior = load_posterior(s.starts_from)
                if list(posterior.prior.names) != list(self.prior.names):
                    raise UserError(f"{s.starts_from} has parameters {list(posterior.prior.names)}, "
                                    f"the fit's prior {list(self.prior.names)}")
                theta = posterior.sample(n, x_posterior(posterior), seed=s.seed)
            else:
                theta = self.prior.sample(n, seed=s.seed)
            file.parent.mkdir(parents=True, exist_ok=True)
            save_npy(file, self.prior.validate(theta))
        return np.load(file)

    def screen(self, draws: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """``screen``: each draw run forward once in torch (no gradient, batches of K), and the
        K with the lowest d² kept as the starts (starts.npy; d² and the choice in
        screen/screen.npz): a fit seldom leaves the regime its start is in (one network burst
        per window where the target has two; docs/fit.md)."""
        import time

        import torch

        from ..rsnn.fit import Loss
        from ..simulators.execution import simulation_seed

        s, file = self.settings, self.out / "starts.npy"
        if not s.screen:
            return draws
        if not file.is_file():
            _, target, scale = self._terms(sigma)
            loss = Loss(self.spec, self.prior, target, scale, [], dtype=getattr(torch, s.dtype),
                        device=self.device, recurrent_grad=s.recurrent_grad)
            _say(self.progress, f"screening {len(draws)} draws (one forward run each) for the "
                                f"{s.starts} starts with the lowest d²")
            t0 = time.perf_counter()
            d2 = []
            for i in range(0, len(draws), s.starts):
                batch = draws[i:i + s.starts]
                seeds = [simulation_seed(s.seed + 9, i + k) for k in range(len(batch))]
                with warnings.catch_warnings():  # a feature a run leaves undefined: NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    d2.append(np.nanmean(loss.residuals(batch, seeds) ** 2, 1))
            d2 = np.concatenate(d2)
            kept = np.argsort(np.where(np.isfinite(d2), d2, np.inf), kind="stable")[:s.starts]
            save_npz(self.out / "screen" / "screen.npz", d2=d2, kept=kept,
                     seconds=time.perf_counter() - t0)
            save_npy(file, draws[kept])
        return np.load(file)

    def _terms(self, sigma: np.ndarray) -> tuple[list, dict, dict]:
        """The fitted features σ defines, their targets and scales (d²'s terms)."""
        index = {n: self.fs.names.index(n) for n in self.fitted}
        use = [n for n in self.fitted if np.isfinite(sigma[index[n]])]
        return (use, {n: float(self.t_target[index[n]]) for n in use},
                {n: float(sigma[index[n]]) for n in use})

    def noise(self, starts: np.ndarray) -> np.ndarray:
        file = self.out / "final" / "noise.json"
        if not file.is_file():
            reference = self.truth if self.truth is not None else starts[0]
            _say(self.progress, f"noise scale: {NOISE_REPEATS} Brian2 runs of the "
                                f"{'truth' if self.truth is not None else 'first start'}")
            found = noise_sigma(self.spec, self.prior, self.fs, reference, self.t_target,
                                self.settings.seed + 1, self.workers)
            file.parent.mkdir(parents=True, exist_ok=True)
            write_json(file, found | {"reference": "truth" if self.truth is not None else "first start",
                                      "theta": np.asarray(reference, float).tolist()})
        sigma = np.array([np.inf if v is None else v for v in json.loads(file.read_text())["sigma"]])
        usable = [n for n in self.fitted if np.isfinite(sigma[self.fs.names.index(n)])]
        if not usable:
            raise UserError("gradient fit: the noise reference's Brian2 runs define none of the "
                            f"differentiable features {self.fitted} (silent or runaway?); start "
                            "from a posterior (--starts-from) or fit a bank target")
        return sigma

    def gradient(self, starts: np.ndarray, sigma: np.ndarray) -> dict:
        import torch

        from ..inference.targets import read_target
        from ..rsnn.fit import fit_theta
        from .gradient_loss import make_extra

        file = self.out / "gradient" / "fits.npz"
        if not self.settings.steps:  # --steps 0 --gauss-newton S: the starts, as they are
            K = len(starts)
            return {"theta": starts, "loss": np.zeros((0, K)), "status": np.array(["ok"] * K),
                    "messages": np.array([""] * K), "seconds": 0.0,
                    "fitted": np.array(self._terms(sigma)[0])}
        if not file.is_file():
            s = self.settings
            use, target, scale = self._terms(sigma)
            window = self.spec.duration - self.spec.t_analysis_start
            extra = None
            if s.loss or s.band:
                data = read_target(str(self.recording), **self.recording_options)
                extra = make_extra(s.loss, s.band, s.rate_range, data,
                                   int(round(window / 1e-3)))
            _say(self.progress, f"{len(starts)} starts x {s.steps} steps on {use}"
                                + (" (per-synapse weights)" if s.fit == "weights" else ""))
            def report(step, losses):
                if (step + 1) % 10 == 0 or step + 1 == s.steps:
                    live = losses[np.isfinite(losses)]
                    _say(self.progress, f"step {step + 1}/{s.steps}: median loss "
                                        f"{np.median(live) if len(live) else float('nan'):.3g} "
                                        f"({len(live)} starts running)")
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # one core per process, as the simulation workers
            file.parent.mkdir(parents=True, exist_ok=True)
            checkpoint = file.parent / "checkpoint.npz"
            try:
                if s.fit == "weights":
                    from .gradient_weights import run_weight_fit

                    result = run_weight_fit(self, starts, target, scale, extra, report,
                                            checkpoint, CHECKPOINT_STEPS)
                    result.theta = starts  # θ stays at the starts
                else:
                    result = fit_theta(self.spec, self.prior, target, scale, starts,
                                       steps=s.steps, lr=s.lr, seed=s.seed + 3,
                                       dtype=getattr(torch, s.dtype), extra=extra,
                                       memory_limit=s.memory_limit_gib * 2 ** 30, progress=report,
                                       recurrent_grad=s.recurrent_grad,
                                       checkpoint=checkpoint, checkpoint_every=CHECKPOINT_STEPS,
                                       device=self.device)
            finally:
                torch.set_num_threads(threads)
            from ..inference.runs import write_theta_table

            paths = {} if getattr(result, "path", None) is None else {
                "theta_path": result.path, "window": result.window}
            final_loss = [_final_loss({"loss": result.loss} | paths, k)
                          for k in range(len(starts))]
            write_theta_table(file.parent / "fits.csv", self.prior,
                              ((k, row, [result.status[k], f"{final_loss[k]:.4g}"])
                               for k, row in enumerate(result.theta)), ["status", "loss"])
            save_npz(file, theta=result.theta, loss=result.loss, status=np.array(result.status),
                     messages=np.array(result.messages), seconds=result.seconds,
                     fitted=np.array(use), **paths)
            checkpoint.unlink(missing_ok=True)
        with np.load(file) as data:
            return {k: data[k] for k in data.files}

    def refine(self, fits: dict, sigma: np.ndarray) -> dict:
        """``gauss_newton`` derivative-free steps from each ok fit (``rsnn.refine``;
        gauss_newton/refined.npz, fits.csv, a checkpoint after every step): the fits with θ and
        status replaced, the refinement's d² curve (``refine_d2``) and time added."""
        import torch

        from ..inference.noise import NoiseModel
        from ..inference.runs import write_theta_table
        from ..rsnn.fit import Loss
        from ..rsnn.refine import refine_theta

        s = self.settings
        if not s.gauss_newton:
            return fits
        file = self.out / "gauss_newton" / "refined.npz"
        if not file.is_file():
            _, target, scale = self._terms(sigma)
            # the steps whiten by the acceptance noise's correlation over the fitted features
            noise = NoiseModel.load(self.out / "final").select(
                [self.fs.names.index(n) for n in target])
            loss = Loss(self.spec, self.prior, target, scale, [], dtype=getattr(torch, s.dtype),
                        device=self.device)
            ok = np.flatnonzero(fits["status"].astype(str) == "ok")
            _say(self.progress, f"refining {len(ok)} fits: {s.gauss_newton} Gauss–Newton steps on "
                                f"forward runs ({2 * len(self.prior.names) + 1} × "
                                f"{s.gauss_newton_seeds} seed(s) per fit and step)")

            def report(step, d2):
                live = d2[np.isfinite(d2)]
                _say(self.progress, f"Gauss–Newton step {step + 1}/{s.gauss_newton}: median d² "
                                    f"{np.median(live) if len(live) else float('nan'):.3g}")

            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # one core per process, as the gradient stage
            file.parent.mkdir(parents=True, exist_ok=True)
            try:
                result = refine_theta(loss.residuals, self.prior, fits["theta"][ok],
                                      s.gauss_newton, s.gauss_newton_step, seed=s.seed + 11,
                                      progress=report,
                                      checkpoint=file.parent / "checkpoint.npz",
                                      correlation=noise.correlation, seeds=s.gauss_newton_seeds)
            finally:
                torch.set_num_threads(threads)
            K = len(fits["theta"])
            theta, status = fits["theta"].copy(), fits["status"].astype("U8").copy()
            messages = fits["messages"].astype("U200").copy()
            d2 = np.full((s.gauss_newton, K), np.nan)
            theta[ok], status[ok], d2[:, ok] = result.theta, result.status, result.d2
            messages[ok] = result.messages
            write_theta_table(file.parent / "fits.csv", self.prior,
                              ((k, row, [status[k], f"{_final_loss({'refine_d2': d2}, k):.4g}"])
                               for k, row in enumerate(theta)), ["status", "d2"])
            jtj = np.full((K,) + result.jtj.shape[1:], np.nan)
            jtj[ok] = result.jtj
            save_npz(file, theta=theta, status=status, messages=messages, d2=d2, jtj=jtj,
                     seconds=result.seconds, start=fits["theta"])
            (file.parent / "checkpoint.npz").unlink(missing_ok=True)
        with np.load(file) as data:
            refined = {k: data[k] for k in data.files}
        return fits | {"theta": refined["theta"], "status": refined["status"],
                       "messages": refined["messages"], "refine_d2": refined["d2"],
                       "refine_seconds": float(refined["seconds"])}

    def final(self, fits: dict, sigma: np.ndarray) -> dict:
        """Brian2 re-simulation of every fitted θ (of every fitted graph in the weights mode),
        scored as validate."""
        from ..inference.noise import NoiseModel
        from ..inference.runs import write_theta_table

        folder = self.out / "final"
        if not (folder / "resim.npz").is_file() or self._torch_resimulated(folder / "resim.npz"):
            theta, status = fits["theta"], fits["status"].astype(str)
            ok = np.flatnonzero(status == "ok")
            K = len(theta)
            features = np.full((K, len(self.fs.names)), np.nan)
            sim_status, seeds = status.astype("U8").copy(), np.full(K, -1)
            checks = {k: np.full(K, np.nan) for k in ("rate_E", "band_share", "band_share_start")}
            if len(ok):
                results = self._brian2(ok, "fitted", theta)
                features[ok] = _transformed(self.fs, results)
                sim_status[ok] = [r.status for r in results]
                seeds[ok] = [r.seed for r in results]
                checks["rate_E"][ok], checks["band_share"][ok] = self._activity(results)
                if self.settings.band:  # the band's share at the starts, on the same seeds
                    starts = np.load(self.out / "starts.npy")
                    checks["band_share_start"][ok] = self._activity(
                        self._brian2(ok, "start", starts))[1]
            c = self.columns
            noise = NoiseModel.load(folder).select(c)  # older folders: σ alone, the RMS
            scored = score(features[:, c], sim_status, self.t_target[c], noise,
                           self.settings.threshold)
            checks["distance_seeds"] = self._distance_seeds(theta, ok, scored["distance"], noise)
            save_npy(folder / "samples.npy", theta)
            save_npz(folder / "resim.npz", status=sim_status, features=features, seed=seeds,
                     distance=scored["distance"], accepted=scored["accepted"],
                     engine=np.array("brian2"), **checks)
        with np.load(folder / "resim.npz") as data:
            resim = {k: data[k] for k in data.files}
        theta, keep = fits["theta"], resim["accepted"]
        save_npz(folder / "consistent.npz", theta=theta[keep], u=self.prior.standardise(theta[keep]),
                 features=resim["features"][keep], seed=resim["seed"][keep],
                 distance=resim["distance"][keep], index=np.flatnonzero(keep),
                 names=np.array(self.prior.names))
        write_theta_table(folder / "consistent_set.csv", self.prior,
                          ((int(k), theta[k], [f"{resim['distance'][k]:.4g}", int(resim["seed"][k])])
                           for k in np.flatnonzero(keep)), ["distance", "seed"])
        status = resim["status"].astype(str)
        flagged = self._degenerate(resim)
        found = {"n_simulated": int((status != "failed").sum()), "n_starts": int(len(theta)),
                 "n_consistent": int(keep.sum()), "yield": float(keep.mean()),
                 "threshold": self.settings.threshold,
                 "by_status": {str(v): int((status == v).sum()) for v in np.unique(status)},
                 "n_degenerate": None if flagged is None else int(flagged.sum()),
                 "best_start": _best_start(resim),
                 "consistent_set": str(folder / "consistent_set.csv")}
        write_json(folder / "consistent.json", found)
        if found["n_degenerate"]:
            _say(self.progress, f"{found['n_degenerate']} of {len(theta)} fits are degenerate (E "
                                "silent, or the band's share of the power did not rise): the loss "
                                "was lowered without reaching the recording (docs/rsnn.md)")
        return found | {"distance": resim["distance"], "accepted": keep, "status": status,
                        "distance_seeds": resim.get("distance_seeds"),
                        "degenerate": flagged, "rate_E": resim.get("rate_E"),
                        "band_share": resim.get("band_share"),
                        "band_share_start": resim.get("band_share_start")}

    def _brian2(self, ok: np.ndarray, which: str, theta: np.ndarray) -> list:
        """Brian2 runs of the starts ``ok`` at ``theta`` (the fitted θ or the starts; in the
        weights mode ``which`` graph, "fitted" or "start"), with the check's seeds (the same
        for both, so the two differ only by the fit)."""
        from ..inference.validate import resimulate

        what = "graphs" if self.settings.fit == "weights" else "θ"
        _say(self.progress, f"re-simulating {len(ok)} {which} {what} in Brian2")
        if self.settings.fit == "weights":
            from .gradient_weights import resimulate_fitted

            return resimulate_fitted(self, ok, which)
        return resimulate(self.spec, self.prior, theta[ok], self.settings.seed + 2, self.fs.name,
                          self.workers)

    def _distance_seeds(self, theta, ok, distance, noise) -> np.ndarray:
        """(K, BEST_SEEDS) validate distances of each fit: the acceptance check's, then
        BEST_SEEDS − 1 Brian2 runs on new seeds (NaN for failed starts)."""
        from ..inference.validate import resimulate

        out = np.full((len(theta), BEST_SEEDS), np.nan)
        out[:, 0] = distance
        if len(ok) and BEST_SEEDS > 1:
            more = BEST_SEEDS - 1
            _say(self.progress, f"{more} more Brian2 runs of each fit on new seeds (the best start)")
            repeated = np.repeat(ok, more)
            if self.settings.fit == "weights":  # each fitted graph, new seeds
                from .gradient_weights import resimulate_fitted

                results = resimulate_fitted(self, repeated, seed_offset=5)
            else:
                results = resimulate(self.spec, self.prior, theta[repeated],
                                     self.settings.seed + 5, self.fs.name, self.workers)
            c = self.columns
            scored = score(_transformed(self.fs, results)[:, c], [r.status for r in results],
                           self.t_target[c], noise, self.settings.threshold)
            out[ok, 1:] = scored["distance"].reshape(len(ok), more)
        return out

    def _activity(self, results) -> tuple[np.ndarray, np.ndarray]:
        from .gradient_degenerate import activity

        rows = [activity(r, self.spec.t_analysis_start, self.settings.band) for r in results]
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])

    def _degenerate(self, resim: dict):
        """The degenerate flag per start (None for a check made before the flag existed)."""
        from .gradient_degenerate import degenerate

        if "rate_E" not in resim:
            return None
        if self.settings.band:
            return degenerate(resim["rate_E"], resim["band_share"], resim["band_share_start"])
        return degenerate(resim["rate_E"])

    def _torch_resimulated(self, file) -> bool:
        """A weight fit's check from before weight fits were re-simulated in Brian2 (torch
        runs, no ``engine`` entry): redone on resuming."""
        with np.load(file) as data:
            return self.settings.fit == "weights" and "engine" not in data.files


def _best_start(resim: dict) -> int | None:
    """The fit with the lowest median distance over its BEST_SEEDS Brian2 runs (None before
    these existed, or when no fit has a finite median)."""
    if "distance_seeds" not in resim:
        return None
    with warnings.catch_warnings():  # failed starts: all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(resim["distance_seeds"], 1)
    return int(np.nanargmin(median)) if np.isfinite(median).any() else None


def _final_loss(fits: dict, k: int) -> float:
    """Start k's loss where its θ was taken: the mean over the stretch of steps averaged into
    it (θ fits, ``rsnn.fit.best_window``; refined fits, the last half of the refinement's
    iterates), else over its last 10 steps (weight fits, older runs); NaN for a start that
    failed throughout."""
    from ..rsnn.fit import polyak_tail
    from ..rsnn.refine import averaged

    if fits.get("refine_d2") is not None:  # refined: d² over the iterates averaged into θ
        curve = fits["refine_d2"][-averaged(len(fits["refine_d2"])):, k]
    elif fits.get("window") is not None:
        start = int(fits["window"][k])
        curve = fits["loss"][start:start + polyak_tail(len(fits["loss"])), k]
    else:
        curve = fits["loss"][-10:, k]
    finite = curve[np.isfinite(curve)]
    return float(finite.mean()) if len(finite) else float("nan")


def _fit_row(k: int, names, fits: dict, found: dict) -> dict:
    """One start in summary.json: θ, its status, final loss (``_final_loss``), and
    its Brian2 re-simulation (E rate, the band's share of the power at the fit and its start,
    the degenerate flag; None in runs checked before these existed)."""
    def value(key):
        return None if found.get(key) is None else json_floats([found[key][k]])[0]

    return {"start": k, "theta": dict(zip(names, np.round(fits["theta"][k], 6).tolist())),
            "status": str(fits["status"][k]), "brian2_status": found["status"][k],
            "final_loss": json_floats([_final_loss(fits, k)])[0],
            "brian2_distance": json_floats([found["distance"][k]])[0],
            "accepted": bool(found["accepted"][k]), "brian2_rate_E": value("rate_E"),
            "brian2_distances": None if found.get("distance_seeds") is None else
            json_floats(found["distance_seeds"][k]),
            "band_share": value("band_share"), "band_share_start": value("band_share_start"),
            "degenerate": None if found["degenerate"] is None else bool(found["degenerate"][k])}


def fit_gradient(recording, out, simulator="mk1", prior=None, workers: int | None = None,
                 progress: bool = True, spec_overrides: dict | None = None, truth=None,
                 compare_with=None, start_theta=None, recording_options: dict | None = None,
                 device: str = "cpu", **settings) -> dict:
    """Fit θ by gradient descent to a recording (file or BANK:INDEX); see the module
    docstring. ``settings``: the fields of ``GradientSettings``; ``start_theta``: explicit
    starts (prior units) instead of prior samples; ``device``: where the torch networks run
    ("cpu", "cuda"; checked before anything is written). Returns the summary (also
    summary.json)."""
    import torch

    from ..prior import Prior
    from ..rsnn.mk1 import check_device, check_dt, dense_memory_bytes, last_step
    from ..simulators import SimulatorSpec
    from ..simulators.simulator import check_prior_fits
    from .target import target_of

    s = GradientSettings(**settings)
    check_device(device)
    if s.fit == "weights" and compare_with is not None:
        raise UserError("--compare needs --fit theta: a weight fit leaves θ at its start, so its "
                        "HPD level under a posterior would be the start's, not the fit's")
    if s.features not in SUPPORTED_SETS:
        raise UserError(f"gradient fit: feature set {s.features} is not supported (the torch "
                        f"features reproduce {list(SUPPORTED_SETS)})")
    spec = simulator if isinstance(simulator, SimulatorSpec) else SimulatorSpec.load(simulator)
    spec = spec.with_overrides(**(spec_overrides or {}))
    if spec.backend != "brian2":  # torch fits, Brian2 judges: the spec as Brian2 runs it
        spec = spec.with_overrides(backend="brian2", torch={})
    check_dt(spec.dt)
    prior_obj = prior if isinstance(prior, Prior) else Prior.load(prior or spec.prior)
    check_prior_fits(spec, prior_obj)
    if isinstance(start_theta, dict):  # a θ table: the prior's columns
        missing = [n for n in prior_obj.names if n not in start_theta["names"]]
        if missing or not len(start_theta["rows"]):
            raise UserError(f"--start-theta: the table has no rows or lacks {missing}")
        start_theta = start_theta["rows"][:, [start_theta["names"].index(n) for n in prior_obj.names]]
    if s.screen and start_theta is not None:
        raise UserError("--screen draws the starts it screens (prior, or --starts-from); "
                        "--start-theta gives them: use one or the other")
    K = s.starts if start_theta is None else len(np.atleast_2d(start_theta))
    need = dense_memory_bytes(K, spec.N, last_step(spec.duration, spec.dt), getattr(torch, s.dtype))
    need += 5 * 8 * K * spec.N ** 2 if s.fit == "weights" else 0  # S, its grad, ExpAdam's m, v
    if s.steps and need > s.memory_limit_gib * 2 ** 30:  # refinement runs hold no graph
        raise UserError(f"gradient fit: {K} starts x N={spec.N} for {spec.duration:g} s need "
                        f"~{need / 2**30:.1f} GiB of autograd memory, over the limit "
                        f"{s.memory_limit_gib:g} GiB (fewer --starts, a smaller --N, or raise "
                        "--memory-limit)")
    options = recording_options or {}
    # the whole recording (its extra losses read it whole too); the sbi method can window it
    x, target, bank_truth, _ = target_of(recording, s.features, window="whole", **options)
    truth = bank_truth if truth is None else prior_obj.validate(truth)[0]
    run = GradientFit(out, spec, prior_obj, s, recording, x, truth, workers or 1, progress,
                      start_theta, options, device)
    record = {"format": "automind-fit", "version": 1, "method": "gradient",
              "settings": s.to_dict() | {"starts": K}, "simulator": spec.to_dict(),
              "prior": prior_obj.to_dict(),
              "target": {"source": str(recording), "x": json_floats(x)} | target,
              "truth": None if truth is None else np.asarray(truth).tolist(),
              "start_theta": None if start_theta is None else run.start_theta.tolist()}
    record_run(run.out, record)
    from .gradient_compare import posterior_x

    draws = run.starts(lambda posterior: posterior_x(posterior, recording, options))
    sigma = run.noise(draws)  # its reference without a truth: the first start (or draw)
    starts = run.screen(draws, sigma)
    fits = run.refine(run.gradient(starts, sigma), sigma)
    found = run.final(fits, sigma)
    status = fits["status"].astype(str)
    summary = {"run": str(run.out), "method": "gradient", "yield": found["yield"],
               "n_consistent": found["n_consistent"], "n_starts": found["n_starts"],
               "n_failed": int((status == "failed").sum()), "n_degenerate": found["n_degenerate"],
               "n_simulated_final": found["n_simulated"],
               # BEST_SEEDS runs per fit; --band: the starts too (the band's share there)
               "simulations": found["n_simulated"] * (
                   (1 if found["distance_seeds"] is None else BEST_SEEDS)
                   + (1 if s.band and found["band_share_start"] is not None else 0))
               + NOISE_REPEATS,
               "best_start": found["best_start"],
               "fit_seconds": float(fits["seconds"]) + fits.get("refine_seconds", 0.0),
               "device": device,
               "fitted_features": fits["fitted"].tolist(), "consistent_set": found["consistent_set"],
               "fits": [_fit_row(k, prior_obj.names, fits, found) for k in range(len(status))]}
    if s.screen:
        with np.load(run.out / "screen" / "screen.npz") as screened:
            summary["screen"] = {"draws": s.screen, "seconds": float(screened["seconds"]),
                                 "kept": screened["kept"].tolist(),
                                 "kept_d2": json_floats(screened["d2"][screened["kept"]]),
                                 "median_d2": json_floats([np.nanmedian(screened["d2"])])[0]}
    if s.gauss_newton:
        d2 = fits["refine_d2"]
        with warnings.catch_warnings():  # a start that failed throughout: all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            summary["gauss_newton"] = {"steps": s.gauss_newton, "step_sd": s.gauss_newton_step,
                                 "seeds": s.gauss_newton_seeds,
                                 "seconds": fits["refine_seconds"],
                                 "median_d2_first": json_floats([np.nanmedian(d2[0])])[0],
                                 "median_d2_final": json_floats([np.nanmedian(
                                     [_final_loss(fits, k) for k in range(d2.shape[1])])])[0]}
    if s.fit == "weights":
        from .gradient_weights import weights_summary

        weights_summary(summary, run.out)
    if compare_with is not None:
        from .gradient_compare import compare

        summary["compare"] = compare(run, compare_with, fits, found)
    write_json(run.out / "summary.json", summary, sort_keys=False)
    return summary
