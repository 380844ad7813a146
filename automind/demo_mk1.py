"""`automind demo` (the default): fit MK1 to a held-out MK1 recording with `automind fit`.

The job users come for — which MK1 circuits could have produced this recording? — on a
recording whose answer is known. Steps, each writing into OUT:

1. ``pool/``: a few prior draws simulated at the demo's size; the target is the first one,
   in index order, that the written rule of ``studies/fit_targets.py`` accepts (status ok,
   the E population firing at 1-30 Hz in both halves of the analysed window within a factor
   2; asynchronous or synchronous);
2. ``recording.nwb``: that draw re-simulated with its pool seed (the same spikes), written
   from the end of the onset transient as NWB and read back like a user's recording;
3. ``fit/``: ``automind fit`` on that file (probe rounds, truncated rounds, final
   validation, refinement; the fit never sees the pool), with its own report
   ``fit/report/index.html``;
4. ``index.html`` and ``demo.json``: what was drawn, what the fit found, and a link to the
   fit's report.
"""

from __future__ import annotations

import html
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import UserError, require_new_folder

FEATURES = "mk1_compact"


@dataclass(frozen=True)
class MK1DemoSize:
    N: int
    duration: float          # s per simulation (and of the recording, with the transient)
    t_analysis_start: float  # s dropped before features
    pool: int                # prior draws to choose the target from
    budget: int              # simulations the fit may spend
    probe_rounds: int
    probe_fraction: float    # share of the budget spent on probes
    rounds: int
    refine: int
    final_samples: int | None


# Sizes chosen by measurement (README "The demo"): MK1 at a reduced N and 3 s runs, so that
# the whole demo fits in 20 minutes on 2 cores.
FULL = MK1DemoSize(N=300, duration=3.0, t_analysis_start=0.5, pool=100, budget=6000,
                   probe_rounds=2, probe_fraction=0.25, rounds=3, refine=6, final_samples=300)
# CI sizes, as studies/mk1_targets --quick: one truncated round, the smallest budget the
# fit's plan accepts for it.
QUICK = MK1DemoSize(N=200, duration=2.6, t_analysis_start=0.5, pool=60, budget=500,
                    probe_rounds=1, probe_fraction=0.35, rounds=1, refine=1, final_samples=None)
#: the selection rule (automind/studies/fit_targets.py): the first network with sustained E
#: activity at 1-30 Hz, asynchronous or synchronous, whichever comes first in index order
RULE = {"asynchronous": 1, "synchronous": 1, "rate_low": 1.0, "rate_high": 30.0,
        "async_corr": 0.05, "sync_corr": 0.1, "min_bursts": 3, "sustained": 0.5}


def demo_spec(size: MK1DemoSize):
    from .simulators import SimulatorSpec

    return SimulatorSpec.load("mk1").with_overrides(N=size.N, duration=size.duration,
                                                    t_analysis_start=size.t_analysis_start)


def run_mk1_demo(out: str | Path, quick: bool = False, workers: int | None = None, seed: int = 1,
                 progress: bool = True) -> dict:
    """Run the MK1 demo into the new folder ``out``; returns the summary (the drawn target,
    the fit's yield, the truth's re-simulations, report path, timings)."""
    from .demo import _Steps
    from .fit import fit
    from .io import write_json
    from .prior import Prior
    from .simulators.execution import default_workers

    out = Path(out)
    require_new_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    size, workers = (QUICK if quick else FULL), workers or default_workers()
    spec = demo_spec(size)
    prior = Prior.load(spec.prior)
    step, started = _Steps(4, quiet=not progress), time.perf_counter()

    step("pool", f"simulating {size.pool} MK1 networks (N={size.N}, {size.duration:g} s) from "
                 f"the prior to draw the target from, on {workers} workers")
    target = draw_target(out / "pool", spec, prior, size.pool, seed, workers, progress)

    step("recording", f"writing prior draw {target['pool_index']} (mean rate "
                      f"{target['pool_E_rate_mean']:.2f} Hz per E neuron) as recording.nwb and reading it back")
    target |= write_recording(spec, prior, target, seed, out / "recording.nwb")
    write_json(out / "target.json", target, sort_keys=False)

    step("fit", f"automind fit: budget {size.budget} simulations, {size.probe_rounds} probe "
                f"rounds, {size.rounds} truncated rounds, up to {size.refine} refinement "
                "generations")
    fitted = fit(out / "recording.nwb", out / "fit", simulator=spec, features=FEATURES,
                 budget=size.budget, workers=workers, progress=progress,
                 truth=np.array(target["theta"]), seed=seed, probe_rounds=size.probe_rounds,
                 probe_fraction=size.probe_fraction, rounds=size.rounds, refine=size.refine,
                 final_samples=size.final_samples)

    step("summary", "writing the summary")
    summary = {"model": "mk1", "quick": quick, "out": str(out), "size": asdict(size),
               "workers": workers, "target": target,
               "truth": dict(zip(prior.names, target["theta"]))} | _fit_numbers(fitted)
    step.finish()
    summary["seconds"] = step.seconds | {"total": round(time.perf_counter() - started, 1)}
    summary["fit_seconds"] = summary["seconds"]["fit"]
    write_json(out / "demo.json", summary, sort_keys=False)
    summary["index"] = str(_index_page(out, summary))
    return summary


def draw_target(folder: Path, spec, prior, n: int, seed: int, workers: int, progress: bool) -> dict:
    """The pool bank and the first draw the selection rule accepts."""
    from .bank import Bank, extend
    from .studies.fit_targets import RULE_FEATURES, e_halves, select_targets

    extend(folder, spec, prior, n, seed, workers=min(workers, n), chunk_size=25,
           features=[FEATURES, RULE_FEATURES], keep_spikes=True, progress=progress)
    bank = Bank(folder)
    data = bank.arrays(features=FEATURES)
    rule_data, names = bank.arrays(features=RULE_FEATURES), bank.feature_sets[RULE_FEATURES]["names"]
    chosen = select_targets(rule_data, names, RULE | {"duration_analysed": spec.duration
                                                      - spec.t_analysis_start},
                            e_halves(bank, rule_data, spec.t_analysis_start))
    if not chosen:
        raise UserError(f"none of the {n} prior draws keeps its E population firing at "
                        f"{RULE['rate_low']:g}-{RULE['rate_high']:g} Hz; try another --seed")
    index, kind = min(chosen)
    row = np.flatnonzero(data["index"] == index)[0]
    status, all_names = data["status"], list(bank.feature_sets[FEATURES]["names"])
    return {"pool_index": int(index), "kind": kind, "theta": data["theta"][row].tolist(),
            "pool_rate_mean": float(data["x"][row, all_names.index("rate_mean")]),
            "pool_E_rate_mean": float(rule_data["x"][row, list(names).index("rate_mean")]),
            "pool_isi_cv_mean": float(data["x"][row, all_names.index("isi_cv_mean")]),
            "pool_status_counts": {s: int((status == s).sum()) for s in np.unique(status)},
            "rule": RULE}


def write_recording(spec, prior, target: dict, seed: int, path: Path) -> dict:
    """Re-simulate the target with its pool seed, write it as NWB, read it back: its facts."""
    from .features.sets import get_feature_set
    from .recordings import read_recording
    from .studies.fit_targets import write_target

    index = target["pool_index"]
    result = write_target(spec, prior, np.array(target["theta"]), seed, index, path,
                          f"automind demo target: MK1 prior draw {index} (N={spec.N}), a "
                          "held-out recording with a known θ")
    if result.status != "ok":  # the pool run was ok: the same seed must give the same run
        raise UserError(f"re-simulating the target ended {result.status}, its pool run ok")
    recording = read_recording(path)
    fs = get_feature_set(FEATURES)
    x = fs.compute(recording)
    return {"recording": str(path), "recording_duration_s": float(recording.duration),
            "recording_n_spikes": int(recording.n_spikes),
            "recording_rate_mean": float(x[fs.names.index("rate_mean")]),
            "recording_isi_cv_mean": float(x[fs.names.index("isi_cv_mean")])}


def _fit_numbers(fitted: dict) -> dict:
    keys = ("yield", "n_consistent", "n_simulated_final", "posterior_yield", "simulations",
            "budget", "nats", "probe_region_nats", "truth_resimulations_accepted",
            "truth_in_90pct_intervals", "truth_log_ratio_nats", "misspecified",
            "set_sd_over_prior_sd", "truth_in_set_5_95", "truth_outside_set_5_95")
    return {k: fitted.get(k) for k in keys} | {
        "refinement_yields": [r["yield"] for r in fitted["refinement"]],
        "fit_run": fitted["run"], "report": fitted.get("report")}


def _index_page(out: Path, s: dict) -> Path:
    """``out/index.html``: the drawn target, the fit's headline numbers, a link to its report."""
    from .io import atomic_write_text

    t, inside = s["target"], s["truth_in_set_5_95"]
    rows = {"target": f"MK1 prior draw {t['pool_index']} of {s['size']['pool']} ({t['kind']}), "
                      f"N = {s['size']['N']}, {s['size']['duration']:g} s",
            "target mean rate / ISI CV (read back)": f"{t['recording_rate_mean']:.2f} Hz / "
                                                     f"{t['recording_isi_cv_mean']:.2f}",
            "yield (consistent / re-simulated)": f"{s['yield']:.3f} ({s['n_consistent']} / "
                                                 f"{s['n_simulated_final']})",
            "yield per refinement generation":
                ", ".join(f"{y:.3f}" for y in s["refinement_yields"]),
            "posterior samples' own yield": f"{s['posterior_yield']:.3f}",
            "truth's re-simulations accepted": _fraction(s["truth_resimulations_accepted"]),
            "truth inside the posterior's marginal 90 % intervals":
                f"{s['truth_in_90pct_intervals']} of {len(s['truth'])} parameters",
            "truth inside the consistent set's 5-95 % range":
                "fewer than 10 configurations" if inside is None else
                f"{inside} of {len(s['truth'])} parameters",
            "simulations used / budget": f"{s['simulations']} / {s['budget']}",
            "total time": f"{s['seconds']['total']:.0f} s on {s['workers']} workers"}
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows.items())
    link = Path(s["report"]).resolve().relative_to(out.resolve()) if s.get("report") else None
    page = out / "index.html"
    atomic_write_text(page, "<!doctype html><meta charset='utf-8'><title>automind demo</title>"
                            "<h1>automind demo: MK1 fitted to a held-out MK1 recording</h1>"
                            f"<table>{table}</table>"
                            + (f"<p>The fit's report: <a href='{html.escape(str(link))}'>"
                               f"{html.escape(str(link))}</a></p>" if link else "")
                            + "<p>The drawn θ: target.json; the fit run: fit/ "
                              "(summary.json, fit.json); this summary: demo.json.</p>")
    return page


def _fraction(value) -> str:
    return "not measured" if value is None else f"{value:.0%}"
