"""`automind demo --model brunel`: the amortised method on a laptop, from nothing to a
consistent set (the default demo, MK1 with `automind fit`, is automind/demo_mk1.py).

A reduced Brunel (2000) network (2 parameters: inhibition g and drive ν_ext, four known
regimes) makes an amortised posterior worth looking at within minutes on 2 cores; an
amortised 28-parameter MK1 posterior needs far larger banks (see studies/mk1_recovery).
Steps, each writing into OUT:

1. ``bank/``: training simulations from the prior, with the ``spikes`` features;
2. ``heldout/``: held-out simulations for the diagnostics;
3. ``posterior/``: a trained posterior (with training curve);
4. ``recording.nwb``: a held-out simulation at a known θ written as an NWB file, then read
   back exactly as a user's recording;
5. ``samples/``: posterior samples for it, re-simulated: yield and consistent set;
6. diagnostics on the held-out bank (coverage, SBC);
7. ``report/index.html``: everything above in one page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError, require_new_folder


@dataclass(frozen=True)
class DemoSize:
    N: int
    C_E: int
    duration: float          # s per simulation
    t_analysis_start: float  # s dropped before features
    n_train: int
    n_heldout: int
    max_epochs: int
    n_samples: int           # posterior samples re-simulated
    oversample: int
    diagnose_cases: int


FULL = DemoSize(N=1000, C_E=100, duration=1.0, t_analysis_start=0.1, n_train=2000,
                n_heldout=150, max_epochs=300, n_samples=200, oversample=1, diagnose_cases=100)
# Plain posterior samples (no oversampling): keeping only the most probable ones would raise
# the yield but shrink the consistent set towards the mode, and the point is to find all of it.
QUICK = DemoSize(N=250, C_E=100, duration=0.5, t_analysis_start=0.05, n_train=600,
                 n_heldout=60, max_epochs=300, n_samples=40, oversample=1, diagnose_cases=30)
#: the "recording": Brunel's asynchronous irregular regime (g = 5, ν_ext = 2), the state
#: closest to awake cortex; its seed is not used by any bank simulation
TRUTH = {"g": 5.0, "nu_ext": 2.0}
FEATURES = "spikes"


class _Steps:
    """Numbered progress lines (to stderr) and wall time per step."""

    def __init__(self, total: int, quiet: bool):
        import sys

        self.total, self.quiet, self.stream = total, quiet, sys.stderr
        self.count, self.seconds, self._start, self._name = 0, {}, None, None

    def __call__(self, name: str, text: str) -> None:
        self.finish()
        self.count += 1
        self._name, self._start = name, time.perf_counter()
        if not self.quiet:
            print(f"[{self.count}/{self.total}] {text}", file=self.stream, flush=True)

    def finish(self) -> None:
        if self._name is not None:
            self.seconds[self._name] = round(time.perf_counter() - self._start, 1)
            self._name = None


def demo_spec(size: DemoSize):
    from .simulators.brunel import reduced_spec

    return reduced_spec(size.N, size.C_E, size.duration, size.t_analysis_start)


def run_demo(out: str | Path, quick: bool = False, workers: int | None = None, seed: int = 1,
             progress: bool = True) -> dict:
    """Run the demo into the new folder ``out``; returns the summary (yield, coverage error,
    report path, timings)."""
    from .bank import extend
    from .features.sets import get_feature_set
    from .features.spikedata import SpikeData
    from .inference.figures import training_curve
    from .inference.runs import diagnose_on_bank, validate_samples, write_samples
    from .inference.train import train_on_bank
    from .inference.validate import resimulate
    from .prior import Prior
    from .recordings import read_recording
    from .recordings.write import write_nwb
    from .simulators.execution import default_workers

    out = Path(out)
    require_new_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    size, workers = (QUICK if quick else FULL), workers or default_workers()
    spec, prior = demo_spec(size), Prior.load("brunel")
    truth = np.array([TRUTH[name] for name in prior.names])
    step, started = _Steps(8, quiet=not progress), time.perf_counter()

    step("bank", f"simulating {size.n_train} reduced Brunel networks (N={size.N}, "
                 f"{size.duration:g} s) from the prior on {workers} workers")
    extend(out / "bank", spec, prior, size.n_train, seed, workers=workers, chunk_size=50,
           features=[FEATURES], progress=progress)
    step("heldout", f"simulating {size.n_heldout} held-out networks for the diagnostics")
    extend(out / "heldout", spec, prior, size.n_heldout, seed + 1, workers=workers,
           chunk_size=25, features=[FEATURES], progress=progress)

    step("train", "training the posterior estimator")
    posterior = train_on_bank(out / "bank", FEATURES, max_epochs=size.max_epochs, seed=seed,
                              progress=progress)
    posterior.save(out / "posterior")
    curve = training_curve(posterior.metrics["training_curves"], out / "posterior" / "training_curve.png")

    step("recording", f"writing the target (g={TRUTH['g']:g}, ν_ext={TRUTH['nu_ext']:g}) as "
                      "recording.nwb and reading it back")
    [target_run] = resimulate(spec, prior, truth[None], seed + 1000, FEATURES, workers=1)
    if target_run.status != "ok":
        raise UserError(f"the demo target simulation ended {target_run.status}")
    # the recording starts after the network's onset transient, as a lab recording would
    write_nwb(SpikeData.from_simulation(target_run).window(size.t_analysis_start),
              out / "recording.nwb",
              description=f"automind demo target: reduced Brunel network at {TRUTH}")
    recording = read_recording(out / "recording.nwb")
    x = get_feature_set(FEATURES).compute(recording)

    step("infer", f"sampling the posterior and re-simulating {size.n_samples} samples")
    inferred = write_samples(posterior, x, truth, str(out / "recording.nwb"), out / "samples",
                             size.n_samples, size.oversample, seed,
                             posterior_path=str(out / "posterior"))
    validated = validate_samples(out / "samples", posterior, x, truth, workers=workers)

    step("diagnose", f"calibration on {size.diagnose_cases} held-out simulations")
    diagnostics = diagnose_on_bank(posterior, out / "heldout", size.diagnose_cases, 200, seed,
                                   figure=out / "posterior" / "coverage.png")

    step("geometry", "geometry of the consistent set")
    geometry = _geometry(posterior, x, validated, out / "samples")

    step("report", "writing the report")
    step.finish()
    summary = {"yield": validated["yield"], "n_simulated": validated["n_simulated"],
               "n_accepted": validated["n_accepted"],
               "coverage_max_abs_error": diagnostics["coverage_max_abs_error"],
               "tarp_atc": diagnostics["tarp_atc"], "contraction": diagnostics["contraction"],
               "participation_ratio": geometry.get("participation_ratio"),
               "local_global_angle_deg": geometry.get("local", {}).get("angle_to_global_median_deg"),
               "quick": quick, "truth": TRUTH, "out": str(out),
               "seconds": step.seconds | {"total": round(time.perf_counter() - started, 1)}}
    summary["report"] = str(_report(out, summary, size, posterior, recording, validated,
                                    diagnostics, inferred, curve, geometry))
    return summary



def _geometry(posterior, x, validated: dict, samples_dir: Path) -> dict:
    """The invariance analysis (``analyse_set``) of the consistent set, or why not."""
    from .invariance.analysis import analyse_set
    from .inference.runs import read_samples

    _, samples = read_samples(samples_dir)
    theta = samples[validated["accepted"]]
    consistent = {"theta": theta, "u": posterior.prior.standardise(theta)}
    try:
        return analyse_set(posterior, x, consistent, samples_dir / "geometry", n_local=20)
    except UserError as err:
        return {"message": str(err)}


def _report(out: Path, summary: dict, size: DemoSize, posterior, recording, validated: dict,
            diagnostics: dict, inferred: dict, curve: Path, geometry: dict) -> Path:
    """The demo's HTML report (``out/report/index.html``)."""
    from .features.spikedata import SpikeData
    from .inference.diagnostics import headline
    from .inference.figures import pairplot
    from .inference.runs import read_samples
    from .plots import plot_target_vs_accepted
    from .report import Section, write_report

    figures = out / "report" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    prior, names = posterior.prior, posterior.prior.names
    truth = np.array([TRUTH[n] for n in names])
    accepted, distance = validated["accepted"], validated["distance"]
    order = [k for k in np.argsort(np.where(accepted, distance, np.inf)) if accepted[k]]
    activity = plot_target_vs_accepted(
        recording, [SpikeData.from_simulation(validated["results"][k]).window(size.t_analysis_start)
                    for k in order[:20]], figures / "target_vs_accepted.png")
    _, samples = read_samples(out / "samples")
    consistent = samples[accepted]
    pairs = pairplot(consistent if len(consistent) else samples, names,
                     figures / "consistent_set_pairplot.png", truth=truth,
                     background=samples,
                     labels=("posterior samples", "consistent set"))
    m = posterior.metrics
    mean = consistent.mean(0) if len(consistent) else np.full(len(names), np.nan)
    sd = consistent.std(0) if len(consistent) else np.full(len(names), np.nan)
    numbers = {"yield (accepted / re-simulated)": f"{summary['yield']:.2f} "
                                                   f"({summary['n_accepted']} / {summary['n_simulated']})",
               "max |coverage error| (held-out; marginal and latent)":
                   f"{summary['coverage_max_abs_error']:.3f} (noise level "
                   f"{diagnostics['coverage_noise_95']:.3f})",
               "information (held-out)": f"{diagnostics['information']['mean']:.2f} nats",
               "TARP ATC": f"{summary['tarp_atc']:.3f}",
               "total time": f"{summary['seconds']['total']:.0f} s"}
    numbers |= {f"{n}: truth / consistent set mean ± sd": f"{t:g} / {mu:.2f} ± {s:.2f}"
                for n, t, mu, s in zip(names, truth, mean, sd)}
    rows = [[k] + [f"{v:.3f}" for v in samples[k]] + [f"{distance[k]:.2f}",
                                                      validated["results"][k].seed]
            for k in order[:30]]
    sections = [
        Section("What the demo did", [
            f"Model: Brunel (2000) sparse E/I network reduced to N = {size.N} neurons "
            f"(C_E = {size.C_E}), {size.duration:g} s per simulation, {size.t_analysis_start:g} s "
            "onset transient dropped; parameters g (relative inhibition) and ν_ext (external "
            "drive over threshold rate), uniform prior.",
            f"Bank: {size.n_train} simulations from the prior; {m['n_valid']} valid trained the "
            f"posterior ({posterior.config['estimator']}, features '{FEATURES}'), "
            f"{m['n_invalid']} silent / runaway ones trained the restriction classifier.",
            f"Target: a new simulation at g = {TRUTH['g']:g}, ν_ext = {TRUTH['nu_ext']:g} "
            "(Brunel's asynchronous irregular example point at the published size) written to "
            "recording.nwb and read back like a "
            f"user's recording. {inferred['note'].capitalize()}; every kept sample was "
            "re-simulated with a new seed and accepted when its features lie within "
            f"{validated['threshold']:g} noise sd of the target's (the noise measured by "
            "re-simulating the true θ with new seeds)."]),
        Section("Target and consistent set: activity", [
            "Top: rasters of the target recording and of the best accepted re-simulation. "
            "Bottom: population rates and rate spectra of the target (black) and the accepted "
            "samples (green)."],
            figures=[(activity, "target vs accepted re-simulations"),
                     (Path(validated["figures"][0]), "features of the re-simulated samples "
                      "against the target (accepted highlighted)")]),
        Section("The consistent set", [
            "All posterior samples (grey) and the ones whose re-simulation reproduces the "
            "target (blue); the truth is the red cross. The set is elongated where the "
            "features cannot tell parameters apart."],
            figures=[(pairs, "consistent set against the truth")],
            table=(["sample"] + [f"{p.name} [{p.unit}]" for p in prior.parameters]
                   + ["distance (noise sd)", "seed"], rows)),
        _geometry_section(geometry),
        Section("Calibration on held-out simulations", [
            f"{diagnostics['n_cases']} held-out simulations: how often the truth falls inside "
            "credible regions of each mass — per parameter (SBC) and in the flow's own latent "
            "space (the diagonal is perfect calibration; the grey band is what finite cases "
            "allow) — TARP, the information the posterior holds in nats, and contraction "
            "along its principal directions; simulation-based calibration ranks (flat is "
            "calibrated).", headline(diagnostics) + "."],
            figures=[(Path(f), c) for f, c in zip(diagnostics["figures"],
                                                   ("calibration", "SBC ranks"))],
            table=(["parameter", "contraction (prior sd / posterior sd)", "recovery NRMSE"],
                   [[n, f"{diagnostics['contraction'][n]:.2f}",
                     f"{diagnostics['recovery_nrmse'][n]:.3f}"] for n in names])),
        Section("Training", [f"Validation loss {min(m['best_validation_loss']):.3f} after "
                             f"{m['training_seconds']:.0f} s."],
                figures=[(curve, "training and validation loss per epoch")]),
        Section("Reproduce step by step", [
            f"automind infer {out / 'posterior'} --recording {out / 'recording.nwb'} "
            f"-n {size.n_samples} --oversample {size.oversample} --out SAMPLES",
            "automind validate SAMPLES --json",
            f"automind diagnose {out / 'posterior'} --bank {out / 'heldout'} --json",
            f"Step times (s): {summary['seconds']}"]),
    ]
    return write_report(out / "report", "automind demo: from spikes to a consistent set",
                        sections, numbers)


def _geometry_section(geometry: dict):
    from .report import Section

    if "figures" not in geometry:
        return Section("Geometry of the consistent set", [geometry["message"]])
    local = geometry["local"]
    pc1 = {k: round(v, 2) for k, v in geometry["pc1"].items()}
    return Section("Geometry of the consistent set", [
        f"In prior-standardised coordinates the {geometry['n_configurations']} consistent "
        f"configurations have a participation ratio of {geometry['participation_ratio']:.2f} "
        f"(the effective number of dimensions they spread over); the first principal "
        f"component {pc1} explains {100 * geometry['explained_variance_ratio'][0]:.0f} % of "
        "their variance.",
        "Locally, the posterior's sloppiest direction (smallest curvature of -log q, from its "
        f"Hessian at {local['n']} configurations) lies at a median angle of "
        f"{local['angle_to_global_median_deg']:.0f}° to that global component: small angles "
        "mean the set's local and global invariances agree. Conditional correlations fix "
        "all parameters but two at a consistent configuration (`automind invariance` runs "
        "the same analysis for any posterior and target)."],
        figures=[(Path(f), c) for f, c in zip(geometry["figures"], (
            "consistent set with its global first component and local sloppy directions; "
            "PCA spectrum", "marginal vs conditional correlations",
            "local dimensionality and local-vs-global angles"))])
