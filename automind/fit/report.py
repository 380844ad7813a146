"""The fit's HTML report: target vs accepted activity, the rounds, the consistent set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: configurations re-simulated (with their own seeds) for the activity figure: the accepted
#: ones closest to the target, else the closest re-simulated ones
SHOWN = 4


def rounds_figure(rounds: list[dict], path: Path) -> Path:
    """Per round: simulations, valid fraction and information (nats) of its region."""
    from ..plots import _pyplot

    plt = _pyplot()
    labels = [f"{'P' if e['stage'] == 'probe' else 'T'}{e['round']}" for e in rounds]
    nats = [e.get("nats", e.get("posterior_nats", np.nan)) for e in rounds]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    axes[0].bar(labels, [e["simulations"] for e in rounds], color="tab:blue")
    axes[0].set(title="simulations", xlabel="round (P probe, T truncated)")
    axes[1].bar(labels, [e["valid_fraction"] for e in rounds], color="tab:green")
    axes[1].set(title="valid (ok) fraction", ylim=(0, 1), xlabel="round")
    axes[2].plot(labels, nats, "o-", color="k")
    axes[2].set(title="information vs the prior (nats)", xlabel="round")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def refinement_sections(summary: dict, figures: Path, threshold: float) -> list:
    """The refinement generations: yield and median distance per generation."""
    from ..plots import _pyplot
    from ..report import Section

    rows = summary["refinement"]
    if not rows:
        return []
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    generations = [0] + [r["round"] for r in rows]
    axes[0].plot(generations, [summary["posterior_yield"]] + [r["yield"] for r in rows], "o-")
    axes[0].set(title="yield", xlabel="generation (0: posterior samples)", ylim=(0, 1))
    axes[1].plot(generations[1:], [r["median_distance"] for r in rows], "o-", color="k")
    axes[1].axhline(threshold, color="tab:red", lw=1, ls="--")
    axes[1].set(title="median distance (noise sd)", xlabel="generation", yscale="log")
    fig.tight_layout()
    path = figures / "refinement.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    table = [[r["round"], r["simulations"], f"{r['valid_fraction']:.3f}", f"{r['yield']:.3f}",
              f"{r['median_distance']:.2f}", f"{r['improved_fraction']:.2f}"] for r in rows]
    return [Section("Refinement", [
        "The posterior samples, moved onto the consistent set by ensemble-Kalman steps (each "
        "member steps along the regression of features on parameters across the ensemble), "
        "re-simulated every generation; a member keeps its move only when it came closer."],
        figures=[(path, "yield and median distance per generation")],
        table=(["generation", "simulations", "valid", "yield", "median distance",
                "moves kept"], table))]


def misfit_sections(summary: dict) -> list:
    """The features the closest re-simulations still miss (``fit.misfit``)."""
    from ..report import Section

    misfit = summary.get("closest_misfit")
    if not misfit or not misfit["closest"]:
        return []
    return [Section("What the closest configurations miss", [
        "A posterior predictive check: per feature, the median over the re-simulations nearest "
        "to the target of z = (simulated − target) / noise sd (negative: the model lies below "
        f"the recording). {misfit['description'][0].upper() + misfit['description'][1:]}."],
        table=(["feature", "median z", "median |z|"],
               [[f["name"], f"{f['median_z']:+.2f}", f"{f['median_abs_z']:.2f}"]
                for f in misfit["features"]]))]


def write_fit_report(run, posterior, summary: dict) -> Path:
    """``RUN/report/index.html``."""
    from ..features.sets import units_seen
    from ..features.spikedata import SpikeData
    from ..inference.figures import pairplot
    from ..inference.targets import read_target
    from ..invariance.consistent import load_consistent_set
    from ..plots import plot_target_vs_accepted
    from ..report import Section, write_report
    from ..simulators.engine import CompiledModel
    from ..simulators.execution import make_jobs, simulate_jobs
    from .misfit import closest_configurations, shown_label

    figures = run.out / "report" / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    consistent = load_consistent_set(summary["consistent_set_folder"])
    samples = np.load(run.out / "final" / "samples.npy")
    names = run.prior.names
    spec = run.spec.with_overrides(duration=run.duration)
    # the accepted configurations closest to the target; with fewer, the closest re-simulated
    best = closest_configurations(summary, SHOWN)
    shown = []
    if len(best["theta"]):
        results = simulate_jobs(spec, str(CompiledModel.for_spec(spec).directory),
                                make_jobs(run.prior, best["theta"], spec.duration,
                                          seeds=best["seed"]), run.workers, run.dask)
        start = spec.t_analysis_start
        shown = [units_seen(run.fs.name, SpikeData.from_simulation(r).window(start))
                 for r in results if r.t_end > start]
    source = run.target.get("source")  # the label; read from where the recording is now
    target = read_target(run.recording_path, **run.recording_options) if source else None
    sections = []
    if target is not None:
        window = run.target.get("window_s")
        if window:  # the window the fit compared with, not the whole recording
            target = target.window(*window)
        label = shown_label(best["accepted"])
        activity = plot_target_vs_accepted(target, shown, figures / "target_vs_accepted.png",
                                           sample_label=label)
        sections.append(Section("Target and closest configurations", [
            f"The target ({source}" + (f", its window {window[0]:g}-{window[1]:g} s that the fit "
                                       "compared with" if window else "") +
            f") beside the {len(shown)} configurations closest to it ({label}; noise sd "
            + ", ".join(f"{d:.2f}" for d in best["distance"]) + "), re-simulated with their own "
            "seeds: rasters, population rates and spectra."],
            figures=[(activity, f"target vs {label} re-simulations")]))
    truth = run.truth
    pairs = pairplot(consistent["theta"] if len(consistent["theta"]) else samples, names,
                     figures / "consistent_set_pairplot.png", truth=truth, background=samples,
                     labels=("posterior samples", "consistent set"))
    rounds = rounds_figure(summary["rounds"], figures / "rounds.png")
    rows = [[("probe " if e["stage"] == "probe" else "truncated ") + str(e["round"])
             + (" (degenerate: not used)" if e.get("degenerate") else "")
             + (f" (+{e['screened']} draws screened by the cheap model)" if e.get("screened")
                else ""),
             e["simulations"], f"{e['duration_s']:g}", f"{e['valid_fraction']:.3f}",
             f"{e.get('near_fraction', float('nan')):.3f}",
             f"{e.get('nats', e.get('proposal_nats', float('nan'))):.2f}",
             f"{e.get('posterior_nats', float('nan')):.2f}"] for e in summary["rounds"]]
    sections += [
        Section("The rounds", [
            "Probe rounds run short simulations and learn where the model comes near the "
            "target's rate and ISI CV; truncated rounds run full-length simulations from the "
            "prior truncated to that region and then to the latest posterior's highest-probability "
            "region. Information: −ln of the prior mass a region keeps (probe, proposal), and "
            "KL(posterior at the target ‖ prior) estimated from posterior draws."],
            figures=[(rounds, "simulations, valid fraction and information per round")],
            table=(["round", "simulations", "duration (s)", "valid", "near the target",
                    "region / proposal nats", "posterior nats"], rows)),
        *refinement_sections(summary, figures, run.settings.threshold),
        Section("The consistent set", [
            f"{summary['n_consistent']} of {summary['n_simulated_final']} "
            + ("refined samples (the last generation)" if summary["refinement"] else
               "posterior samples")
            + f" reproduce the target within {run.settings.threshold:g} noise sd "
            f"(yield {summary['yield']:.2f}; the posterior's own samples: "
            f"{summary['posterior_yield']:.2f})."
            + (f" The consistent set: the {summary['set_size']} distinct configurations "
               "accepted from the final validation on"
               + (", exploration included." if summary.get("exploration") else ".")
               if summary["refinement"] else "")
            + (f" The truth's own re-simulations were accepted "
               f"{summary['truth_resimulations_accepted']:.0%} of the time."
               if "truth_resimulations_accepted" in summary else "")],
            figures=[(pairs, "consistent set" + (" against the truth" if truth is not None else ""))]),
        *misfit_sections(summary),
        Section("Reproduce", [f"automind fit {source} --out {run.out} --budget "
                              f"{run.settings.budget} --features {run.settings.features} "
                              f"(the same command resumes an interrupted run); settings in "
                              f"{run.out / 'fit.json'}"]),
    ]
    numbers = {"yield": f"{summary['yield']:.3f}", "consistent configurations": summary["set_size"],
               "simulations used": summary["simulations"], "budget": summary["budget"],
               "posterior information (nats)": f"{summary['nats']:.2f}",
               "probe region (nats)": f"{summary['probe_region_nats']:.2f}"}
    if "set_sd_over_prior_sd" in summary:
        numbers["set spread / prior spread (median)"] = f"{summary['set_sd_over_prior_sd']:.2f}"
    if "truth_in_set_5_95" in summary:
        numbers["truth inside the set's 5–95 % range"] = \
            f"{summary['truth_in_set_5_95']} of {len(run.prior.names)} parameters"
    return write_report(run.out / "report", "automind fit: consistent configurations for a recording",
                        sections, numbers)
