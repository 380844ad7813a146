"""``CheapModel``: predictions for θ of a prior, the status screen and its calibration.

    model = CheapModel.for_spec(SimulatorSpec.load("mk1"))
    pred = model.predict(theta)              # θ rows in the prior's units
    keep = model.screen(theta, window=...)   # which θ to simulate
    resp = model.rate_response(theta)        # linear response: d log10 ν / dθ (prior units)
    grad = model.rate_gradient(theta)        # the same by differences of ``predict``

The screen keeps θ whose predicted E activity ν_E·t_ref lies in a window calibrated on a
bank (:func:`calibrate_window`: the window that keeps a given fraction of the bank's ``ok``
runs), plus every ``undetermined`` θ — the screen never drops what it cannot predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .solve import RUNAWAY, SILENT, Protocol, solve


def theta_to_si(prior, theta: np.ndarray) -> dict:
    """Validated θ rows (prior units) → {name: SI array}, discreteness applied, constants added."""
    theta = prior.validate(theta)
    params = {}
    for j, p in enumerate(prior.parameters):
        v = theta[:, j]
        params[p.name] = (np.floor(v) if p.discrete == "floor" else v) * p.si_factor
    for c in prior.constants:
        params[c.name] = np.full(len(theta), c.value * c.si_factor)
    return params


@dataclass(frozen=True)
class Window:
    """Keep θ with predicted ν_E·t_ref in [low, high] (log-activity window)."""

    low: float = SILENT
    high: float = RUNAWAY
    recall: float | None = None  # the ok-recall it was calibrated for, if any

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "recall": self.recall}


class CheapModel:
    """A simulator spec's reduction bound to a table (or the analytic baseline)."""

    def __init__(self, spec, prior, table, slow_inhibition: bool = False):
        from ..simulators.simulator import check_prior_fits

        check_prior_fits(spec, prior)
        if slow_inhibition and spec.model != "mk1":
            raise UserError(f"cheap: slow inhibition needs conductance synapses (mk1), not "
                            f"{spec.model!r}")
        self.spec, self.prior, self.table = spec, prior, table
        self.slow_inhibition = slow_inhibition
        from .networks import for_spec  # raises a UserError for models without a reduction

        for_spec(spec, theta_to_si(prior, (prior.low + prior.high)[None] / 2), table)

    @classmethod
    def for_spec(cls, spec, prior=None, table=None, slow_inhibition: bool = False) -> "CheapModel":
        """``table``: a :class:`table.Table`, a folder, ``"analytic"``, or None for the built
        table in the cache (full grid first, then the reduced one). ``slow_inhibition``: blend
        the rates with the slow, granular inhibition limit (``inhibition.py``; MK1 only)."""
        from ..prior import Prior
        from .baseline import AnalyticPhi
        from .table import Table, default_table

        prior = prior or Prior.load(spec.prior)
        if table is None:
            table = default_table()
        elif isinstance(table, str) and table == "analytic":
            table = AnalyticPhi()
        elif not hasattr(table, "lookup"):
            table = Table(table)
        return cls(spec, prior, table, slow_inhibition)

    def network(self, theta):
        from .networks import for_spec

        net = for_spec(self.spec, theta_to_si(self.prior, theta), self.table)
        net.slow_inhibition = self.slow_inhibition
        return net

    def predict(self, theta, batch: int = 4096, status_only: bool = False):
        """Solve every θ row; returns a :class:`solve.Prediction` (batched for memory).
        ``status_only``: the probe window only (what the screen needs; ~5× faster)."""
        theta = self.prior.validate(theta)
        protocol = Protocol.of_spec(self.spec)
        parts = [solve(self.network(theta[i:i + batch]), protocol, status_only=status_only)
                 for i in range(0, len(theta), batch)]
        return _concat(parts)

    def screen(self, theta, window: Window | None = None):
        """(keep mask, prediction): θ to simulate under ``window`` (default: the early-stop
        thresholds themselves)."""
        window = window or Window()
        pred = self.predict(theta, status_only=True)
        return keep_mask(pred, self.t_refrac(theta), window), pred

    def t_refrac(self, theta) -> np.ndarray:
        return np.asarray(self.network(self.prior.validate(theta)).t_refrac_probe, float)

    def status_signals(self, theta, pred) -> np.ndarray:
        """(n, 7) what the status classifier (``classify.py``) reads: the predicted probe
        activity ν_E·t_ref; its saturated limit t_ref / (n_ref dt) (1 in continuous time);
        m = (μ_V − θ*)/σ_V of the first population under the external drive alone; the
        activity of that drive alone (status rate of the first step from rest × t_ref); the
        activity at the probe window's end; the first-step crossing z of the first population
        saturated at the probe end's adaptation (NaN without a time step); the onset time of
        the driven population from rest (s; NaN for models without one)."""
        net = self.network(self.prior.validate(theta))
        t_ref = np.asarray(net.t_refrac_probe, float)
        zero = np.zeros_like(net.max_rate)
        with np.errstate(all="ignore"):
            drive_rates = net.evaluate(zero, zero, cv=False)[0]
            drive_only = net.status_rate(drive_rates) * t_ref
        z_sat = (net.saturated_step_z(pred.flags["probe_end_w"])[:, 0]
                 if hasattr(net, "saturated_step_z") else np.full(len(t_ref), np.nan))
        onset = (net.onset_time(drive_rates) if hasattr(net, "onset_time")
                 else np.full(len(t_ref), np.nan))
        return np.column_stack([probe_activity(pred, t_ref), net.max_rate[:, 0] * t_ref,
                                np.asarray(net.drive_only_m(), float)[:, 0], drive_only,
                                pred.flags["probe_end_rate_E"] * t_ref, z_sat, onset])

    def rate_gradient(self, theta, step: float = 1e-3) -> np.ndarray:
        """d log10 ν_E / dθ (prior units), central differences of ``step`` × prior width;
        NaN where a side is not ``ok``."""
        theta = self.prior.validate(theta)
        n, d = theta.shape
        rows = [theta] + [self._nudged(theta, j, sign, step) for sign in (1, -1) for j in range(d)]
        stacked = np.concatenate(rows)
        pred = self.predict(stacked)
        log_rate = np.log10(np.maximum(pred.rate_E, 1e-30)).reshape(2 * d + 1, n)
        ok = (pred.status == "ok").reshape(2 * d + 1, n)
        span = (np.concatenate(rows[1:d + 1]) - np.concatenate(rows[d + 1:])).reshape(d, n, d)
        span = np.stack([span[j, :, j] for j in range(d)])  # (d, n)
        grad = (log_rate[1:d + 1] - log_rate[d + 1:]) / np.where(span > 0, span, np.nan)
        grad[~(ok[1:d + 1] & ok[d + 1:])] = np.nan
        return grad.T

    def rate_response(self, theta, step: float = 1e-3) -> dict:
        """Linear response at the predicted equilibrium (spec cheap-forward.md, invariance):
        dν/dθ = (I − ∂Φ/∂ν)⁻¹ ∂Φ/∂θ, Φ the populations' self-consistent map with adaptation
        at its adiabatic value, both Jacobians by central differences (``step`` × the prior
        width in θ, 10⁻³ relative in ν) at the equilibrium polished by the fixed-point solver.
        Returns ``rate_E`` (n, d): d log10 ν_E / dθ (prior units, as ``rate_gradient``, whose
        differences re-solve the whole model), and ``rates`` (n, P, d): d log10 ν_p / dθ per
        population. NaN rows where the prediction is not ``ok`` and asynchronous, or the
        equilibrium does not converge (a bursting network has no equilibrium to respond)."""
        from .solve import _map, fixed_point, rate_jacobian

        theta = self.prior.validate(theta)
        n, d = theta.shape
        pred = self.predict(theta)
        net = self.network(theta)
        nu, converged, _ = fixed_point(net, pred.rates)
        usable = converged & (pred.status == "ok") & (pred.regime == "async") & (nu > 0).all(1)
        rows = np.arange(n)
        P = nu.shape[1]
        d_nu = rate_jacobian(lambda x: _map(net, x, rows), nu, 1e-9)  # ∂Φ/∂ν (n, P, P)
        d_theta = np.zeros((n, P, d))  # ∂Φ/∂θ at fixed ν; and the status rate's own weights
        d_weights = np.zeros((n, d))
        for j in range(d):
            sides = []
            for sign in (1, -1):
                shifted = self._nudged(theta, j, sign, step)
                other = self.network(shifted)
                sides.append((shifted[:, j], _map(other, nu, rows), other.status_rate(nu)))
            (t_up, phi_up, r_up), (t_down, phi_down, r_down) = sides
            span = np.where(t_up > t_down, t_up - t_down, np.nan)
            d_theta[:, :, j] = (phi_up - phi_down) / span[:, None]
            d_weights[:, j] = (r_up - r_down) / span
        with np.errstate(all="ignore"):
            response = np.linalg.solve(np.eye(P) - d_nu, d_theta)  # dν/dθ (n, P, d)
            rate_e = net.status_rate(nu)
            d_rate_e = np.einsum("np,npd->nd", net.excitatory_weights, response) + d_weights
            out = {"rate_E": d_rate_e / (rate_e[:, None] * np.log(10)),
                   "rates": response / (nu[:, :, None] * np.log(10))}
        for value in out.values():
            value[~usable] = np.nan
        return out

    def _nudged(self, theta: np.ndarray, j: int, sign: int, step: float) -> np.ndarray:
        """θ rows with parameter j moved by sign × step × its prior width, clipped to the prior."""
        low, high = self.prior.low[j], self.prior.high[j]
        shifted = theta.copy()
        shifted[:, j] = np.clip(theta[:, j] + sign * step * (high - low), low, high)
        return shifted


#: the format of a status classifier saved by ``automind cheap check --save-classifier``
CLASSIFIER_FORMAT = "automind-cheap-classifier"
#: 2: the model's runs start from rest with synapses and membranes (session 35), which moved
#: the signals a version-1 classifier was calibrated on
CLASSIFIER_VERSION = 2


class BankScreen:
    """What ``automind simulate --screen cheap[:low=A,high=B,table=T]`` uses: keep θ whose predicted
    probe activity ν_E·t_ref lies in [A, B] (default: the early-stop thresholds) or is
    undetermined; with ``classifier=FILE`` (saved by ``cheap check --save-classifier``), keep θ
    the calibrated status classifier calls ok (or undetermined) instead."""

    def __init__(self, model: CheapModel, window: Window, classifier=None):
        self.model, self.window, self.classifier = model, window, classifier

    @classmethod
    def parse(cls, text: str, spec, prior, table=None) -> "BankScreen":
        kind, _, options = text.partition(":")
        if kind != "cheap":
            raise UserError(f"--screen {text!r}: unknown screen {kind!r}; available: cheap")
        values, classifier = {}, None
        for item in filter(None, options.split(",")):
            key, _, value = item.partition("=")
            if key.strip() == "table":  # a table folder, or 'analytic'
                table = value.strip()
                continue
            if key.strip() == "classifier":
                classifier = value.strip()
                continue
            try:
                values[key.strip()] = float(value)
            except ValueError:
                raise UserError(f"--screen {text!r}: {item!r} is not key=number") from None
        unknown = set(values) - {"low", "high"}
        if unknown:
            raise UserError(f"--screen {text!r}: unknown option {sorted(unknown)[0]!r}; "
                            "available: low, high (activity ν_E·t_ref), table, classifier")
        if classifier is not None and values:
            raise UserError(f"--screen {text!r}: classifier= replaces the low/high window; "
                            "give one or the other")
        window = Window(values.get("low", SILENT), values.get("high", RUNAWAY))
        if not 0 <= window.low < window.high:
            raise UserError(f"--screen {text!r}: need 0 <= low < high")
        model = CheapModel.for_spec(spec, prior, table)
        return cls(model, window, None if classifier is None else
                   load_classifier(classifier, table_key(model.table)))

    def keep(self, theta) -> np.ndarray:
        if self.classifier is None:
            return self.model.screen(np.atleast_2d(theta), self.window)[0]
        theta = self.model.prior.validate(theta)
        pred = self.model.predict(theta, status_only=True)
        said = self.classifier.classify(pred, self.model.status_signals(theta, pred))
        return np.isin(said, ("ok", "undetermined"))

    def identity(self) -> dict:
        """Recorded in bank.json: which table and window (or classifier) decided."""
        out = {"kind": "cheap", "table": table_key(self.model.table)}
        if self.classifier is None:
            return out | {"window": {"low": self.window.low, "high": self.window.high}}
        return out | {"classifier": self.classifier.to_dict()}


def table_key(table) -> str:
    """How a table is named in screens and saved classifiers ("analytic" for analytic Φ)."""
    return getattr(table, "key", "analytic")


def save_classifier(path: Path, classifier: dict, table: str, source: dict) -> None:
    """A calibrated status classifier (``StatusClassifier.to_dict()``) as JSON, with the table
    it was calibrated with and where (``source``); refuses to overwrite."""
    import json

    from ..io import atomic_write_bytes

    path = Path(path)
    if path.exists():
        raise UserError(f"{path} exists; choose a new --save-classifier file")
    record = {"format": CLASSIFIER_FORMAT, "version": CLASSIFIER_VERSION, "table": table,
              "calibrated_on": source, "classifier": classifier}
    atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())


def load_classifier(path, table: str):
    """The classifier saved at ``path``; a UserError unless it was calibrated with ``table``."""
    import json

    from .classify import StatusClassifier

    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"--screen classifier={path}: cannot read it ({error})") from None
    if not isinstance(record, dict) or record.get("format") != CLASSIFIER_FORMAT:
        raise UserError(f"--screen classifier={path}: not a saved status classifier (make one "
                        "with automind cheap check BANK --save-classifier FILE)")
    if record.get("version") != CLASSIFIER_VERSION:
        raise UserError(f"--screen classifier={path}: calibrated with version "
                        f"{record.get('version')} of the cheap model, this is version "
                        f"{CLASSIFIER_VERSION}; recalibrate with automind cheap check BANK "
                        "--save-classifier FILE")
    if record.get("table") != table:
        raise UserError(f"--screen classifier={path}: calibrated with table "
                        f"{record.get('table')}, not {table}; give its table= or recalibrate")
    try:
        return StatusClassifier.from_dict(record["classifier"])
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"--screen classifier={path}: malformed classifier ({error})") from None


class RateWindowScreen:
    """A target-rate window for ``automind fit``'s first probe round (``cheap_screen``): keep θ
    predicted ``ok`` whose probe-window rate is within ``half_width`` decades of the target
    rate, or undetermined. ``units``: the rate the target's ``rate_mean`` measures — "all"
    neurons' mean (a recording, ``mk1_compact``) or the "E" population's (``population``)."""

    def __init__(self, model: CheapModel, target_rate: float, half_width: float,
                 units: str = "all"):
        if not (np.isfinite(target_rate) and target_rate > 0):
            raise UserError(f"cheap screen: the target's rate must be > 0 Hz, got {target_rate}")
        if units not in ("all", "E"):
            raise UserError(f"cheap screen: units must be 'all' or 'E', got {units!r}")
        self.model, self.target_rate, self.half_width = model, float(target_rate), float(half_width)
        self.units = units

    @classmethod
    def for_spec(cls, spec, prior, target_rate, half_width, table=None,
                 units: str = "all") -> "RateWindowScreen":
        return cls(CheapModel.for_spec(spec, prior, table), target_rate, half_width, units)

    def keep(self, theta) -> np.ndarray:
        pred = self.model.predict(np.atleast_2d(theta), status_only=True)
        rate = pred.rate_E if self.units == "E" else pred.flags["rate_units"]
        distance = np.abs(np.log10(np.maximum(rate, 1e-30)) - np.log10(self.target_rate))
        return (pred.status == "undetermined") | ((pred.status == "ok") & (distance <= self.half_width))

    def identity(self) -> dict:
        return {"kind": "cheap-rate-window", "table": table_key(self.model.table),
                "target_rate": self.target_rate, "half_width_decades": self.half_width,
                "units": self.units}


def probe_activity(pred, t_refrac) -> np.ndarray:
    """Predicted ν_E · t_ref over the probe window: what the early stop measures."""
    return pred.flags["probe_rate_E"] * np.asarray(t_refrac, float)


def classify(pred, t_refrac, window: Window) -> np.ndarray:
    """Statuses under the window's thresholds (undetermined stays undetermined)."""
    activity = probe_activity(pred, t_refrac)
    status = np.where(activity < window.low, "silent",
                      np.where(activity > window.high, "runaway", "ok")).astype(object)
    return np.where(pred.status == "undetermined", "undetermined", status)


def keep_mask(pred, t_refrac, window: Window) -> np.ndarray:
    """θ to simulate: predicted ok under the window, or undetermined."""
    return np.isin(classify(pred, t_refrac, window), ("ok", "undetermined"))


def calibrate_window(pred, t_refrac, simulated_status, recall: float = 0.95) -> Window:
    """Status thresholds recalibrated on a bank (spec §2): the window of predicted probe
    activity that keeps ``recall`` of the simulated ``ok`` runs, cutting equal quantiles of
    them on both sides (undetermined predictions are always kept)."""
    if not 0 < recall <= 1:
        raise UserError(f"recall must be in (0, 1], got {recall}")
    ok = (np.asarray(simulated_status) == "ok") & (pred.status != "undetermined")
    if ok.sum() < 10:
        raise UserError(f"calibration needs >= 10 ok runs with a prediction, got {int(ok.sum())}")
    activity = np.log10(np.maximum(probe_activity(pred, t_refrac)[ok], 1e-30))
    tail = (1 - recall) / 2
    low, high = np.quantile(activity, [tail, 1 - tail])
    return Window(float(10 ** low), float(10 ** high), recall)


def scores(pred, t_refrac, simulated_status, window: Window) -> dict:
    """Per-class recall/precision of the statuses under ``window`` vs the simulated ones, and
    the screen's ok-recall, precision (ok among kept) and kept fraction."""
    out = label_scores(pred, classify(pred, t_refrac, window), simulated_status)
    return {"n": out.pop("n"), "window": window.to_dict()} | out


def class_scores(said_all, simulated_status) -> dict:
    """Per status (silent, ok, runaway): runs simulated so, recall and precision of ``said_all``."""
    sim = np.asarray(simulated_status)
    out = {}
    for cls in ("silent", "ok", "runaway"):
        truth, said = sim == cls, said_all == cls
        out[cls] = {"n": int(truth.sum()),
                    "recall": float((truth & said).sum() / max(truth.sum(), 1)),
                    "precision": float((truth & said).sum() / max(said.sum(), 1))}
    return out


def label_scores(pred, said_all, simulated_status) -> dict:
    """Per-class recall/precision of predicted statuses ``said_all`` vs the simulated ones,
    and the screen (keep what is said ok or undetermined): ok-recall, precision, kept."""
    sim = np.asarray(simulated_status)
    out = {"n": int(len(sim))} | class_scores(said_all, sim)
    keep = np.isin(said_all, ("ok", "undetermined"))
    ok = sim == "ok"
    out["screen"] = {"kept": float(keep.mean()),
                     "ok_recall": float((keep & ok).sum() / max(ok.sum(), 1)),
                     "precision": float((keep & ok).sum() / max(keep.sum(), 1)),
                     "unscreened_precision": float(ok.mean())}
    out["undetermined"] = float((pred.status == "undetermined").mean())
    out["extrapolated"] = float(np.mean(pred.extrapolated))
    return out


def _concat(parts):
    from dataclasses import fields, replace

    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    values = {}
    for f in fields(first):
        if f.name == "populations":
            continue
        if f.name == "flags":
            values[f.name] = {k: np.concatenate([p.flags[k] for p in parts]) for k in first.flags}
        else:
            values[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
    return replace(first, **values)
