"""The folder-level steps behind `automind infer`, `validate` and `diagnose`, shared by the
CLI and the demo: each reads and writes the same files whoever calls it.

- ``write_samples``: SAMPLES/samples.csv (θ with units, log-prob), samples.json, pairplot.png
- ``validate_samples``: SAMPLES/consistent_set.csv, validation.json, feature and raster figures
- ``diagnose_on_bank``: calibration (coverage, contraction, nats) / SBC figures and the
  diagnostics report, on a held-out bank or on its runs nearest a target (``nearest_cases``)
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import atomic_write_text, write_json


def write_theta_table(path: Path, prior, rows, extra_names: list[str]) -> None:
    """CSV of (sample number, θ with units in the header, extra columns) rows."""
    handle = io.StringIO(newline="")
    table = csv.writer(handle)
    table.writerow(["sample"] + [f"{p.name} [{p.unit}]" for p in prior.parameters] + extra_names)
    for k, theta, extra in rows:
        table.writerow([k] + [f"{v:.8g}" for v in theta] + list(extra))
    atomic_write_text(path, handle.getvalue())


def read_samples(folder: Path) -> tuple[dict, np.ndarray]:
    """(samples.json metadata, θ rows) of a samples folder written by ``write_samples``."""
    meta_file = Path(folder) / "samples.json"
    if not meta_file.is_file():
        raise UserError(f"{folder} is not a samples folder from `automind infer`")
    meta = json.loads(meta_file.read_text())
    samples = np.genfromtxt(Path(folder) / "samples.csv", delimiter=",", skip_header=1)
    return meta, np.atleast_2d(samples)[:, 1:-1]


def write_samples(posterior, x, truth, target: str, out: Path, n: int, oversample: int = 1,
                  seed: int = 0, posterior_path: str | None = None) -> dict:
    """Draw n·oversample samples for raw features x, keep the n most probable, write them."""
    from .figures import pairplot

    drawn = posterior.sample(n * oversample, x, seed=seed)
    log_prob = posterior.log_prob(drawn, x)
    keep = np.argsort(-log_prob, kind="stable")[:n]
    samples, log_prob = drawn[keep], log_prob[keep]
    out.mkdir(parents=True, exist_ok=True)
    prior = posterior.prior
    write_theta_table(out / "samples.csv", prior,
                      ((k, row, [f"{lp:.6g}"]) for k, (row, lp) in enumerate(zip(samples, log_prob))),
                      ["log_prob"])
    meta = {"posterior": posterior_path, "target": target, "n": n, "oversample": oversample,
            "seed": seed, "x": np.asarray(x).tolist(),
            "truth": None if truth is None else np.asarray(truth).tolist(),
            "feature_set": posterior.features.get("set"),
            "note": (f"drew {n * oversample} samples and kept the {n} with the highest "
                     "posterior log-probability") if oversample > 1 else "plain samples"}
    write_json(out / "samples.json", meta, sort_keys=False)
    figure = pairplot(samples, prior.names, out / "pairplot.png", truth=truth,
                      limits=[(lo, hi) if np.isfinite([lo, hi]).all() else (col.min(), col.max())
                              for lo, hi, col in zip(prior.low, prior.high, samples.T)])
    return {"samples": str(out / "samples.csv"), "n": n, "oversample": oversample,
            "note": meta["note"], "figure": str(figure)}


def validate_samples(folder: Path, posterior, x, truth=None, threshold: float = 2.0,
                     workers: int = 1, dask: str | None = None, limit: int | None = None) -> dict:
    """Re-simulate the samples of ``folder`` against raw target features x; write the
    consistent set, validation.json and figures. Returns the summary and the simulations."""
    from ..features.spikedata import SpikeData
    from ..plots import plot_spikes
    from .figures import feature_comparison
    from .validate import validate

    _, samples = read_samples(folder)
    samples = samples[:limit] if limit else samples
    report = validate(posterior, samples, x, truth=truth, threshold=threshold, workers=workers,
                      dask=dask)
    results = report.pop("results")
    accepted = np.array(report["accepted"])
    write_theta_table(folder / "consistent_set.csv", posterior.prior,
                      ((k, samples[k], [f"{report['distance'][k]:.4g}", report["seeds"][k]])
                       for k in np.flatnonzero(accepted)), ["distance", "seed"])
    names = [posterior.features["names"][c] for c in posterior.config["feature_columns"]]
    figures = [str(feature_comparison(report, names, folder / "validation_features.png"))]
    if accepted.any():
        best = results[int(np.nanargmin(np.where(accepted, report["distance"], np.inf)))]
        figures.append(str(plot_spikes(SpikeData.from_simulation(best),
                                       folder / "validation_best_raster.png",
                                       title=f"best accepted sample {best.index}")))
    summary = {k: report[k] for k in ("yield", "n_simulated", "n_accepted", "threshold",
                                       "noise_reference")}
    summary |= {"consistent_set": str(folder / "consistent_set.csv"), "figures": figures}
    write_json(folder / "validation.json", report | summary, sort_keys=False)
    return summary | {"results": results, "samples": samples, "accepted": accepted,
                      "distance": np.array(report["distance"])}


def feature_distances(inputs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RMS over features of (inputs − target), each feature in its robust sd over ``inputs``
    (1.4826·MAD, the sd where that is 0): (distances, scale). ``inputs`` (n, k) and ``target``
    (k,) in one space, e.g. a posterior's transformed input."""
    scale = 1.4826 * np.median(np.abs(inputs - np.median(inputs, 0)), 0)
    scale = np.where(scale > 0, scale, np.maximum(inputs.std(0), 1e-6))
    return np.sqrt(np.mean(((inputs - target) / scale) ** 2, axis=1)), scale


def nearest_cases(posterior, x, x_target, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of raw features ``x`` nearest ``x_target`` in the posterior's own input
    (its transforms and columns; ``feature_distances``): (rows, distances), nearest first.
    Choosing held-out cases by their x keeps an exact posterior's coverage exact (it is
    calibrated at every x), so these measure calibration where the target is."""
    inputs = posterior.prepare_x(x).numpy().astype(np.float64)
    target = posterior.prepare_x(x_target).numpy()[0].astype(np.float64)
    distance, _ = feature_distances(inputs, target)
    rows = np.argsort(distance, kind="stable")[:k]
    return rows, distance[rows]


def diagnose_on_bank(posterior, bank_path, cases: int = 300, n_samples: int = 200,
                     seed: int = 0, figure: Path | None = None, posterior_path=None,
                     near=None) -> dict:
    """Calibration and recovery on the valid simulations of a held-out bank, with figures;
    with ``near`` (a target's raw features) on the ``cases`` of them nearest it."""
    from ..bank import Bank
    from .diagnostics import diagnose
    from .figures import coverage_plot, sbc_histograms

    bank = Bank(bank_path)
    if bank.parameter_names != posterior.prior.names:
        raise UserError(f"bank {bank_path} has parameters {bank.parameter_names}, but the "
                        f"posterior infers {posterior.prior.names}")
    data = bank.arrays(features=posterior.features.get("set"), status="ok")
    usable = posterior.conditionable(data["x"])
    theta, x = data["theta"][usable], data["x"][usable]
    if near is None:
        theta, x = theta[:cases], x[:cases]
    if len(theta) < 10:
        raise UserError(f"bank {bank_path} has only {len(theta)} usable held-out simulations")
    if near is not None:
        rows, distance = nearest_cases(posterior, x, near, cases)
        theta, x = theta[rows], x[rows]
    report = diagnose(posterior, theta, x, n_samples=n_samples, seed=seed)
    if near is not None:
        report["near"] = {"cases": int(len(rows)), "of": int(usable.sum()),
                          "distance_median": float(np.median(distance)),
                          "distance_max": float(distance[-1]),
                          "rows": data["index"][usable][rows].tolist()}
    figure = figure or Path(posterior_path) / ("coverage.png" if near is None
                                               else "coverage_near.png")
    coverage = coverage_plot(report, figure)
    sbc = sbc_histograms(report["sbc_ranks"], n_samples, posterior.prior.names,
                         Path(coverage).with_name("sbc_ranks.png"))
    report["figure"] = str(coverage)
    report["figures"] = [str(coverage), str(sbc)]
    return report
