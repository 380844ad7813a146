"""A calibrated status classifier on the cheap model's outputs (issue #16).

The activity window (``screen.calibrate_window``) cuts one predicted quantity, the probe
activity a = ν_E·t_ref, on both sides. Its upper edge cannot separate runaway from ok runs:
MK1's runaway is a > 0.99, the saturated limit is a_max = t_ref / (n_ref dt) (whole
populations firing on the first Euler step after the refractory period), so a run is runaway
only if it spends a fraction > 0.99 / a_max of the probe window saturated — and a_max ranges
from 1.00 to 1.2 over the prior. Simulated-ok runs predicted saturated (a ≈ a_max) sit
just below the threshold (simulated a = 0.9–0.99) where a_max ≈ 1. So the classifier sees

* ``log10 a`` (what the window cuts),
* ``−log10(1 − a / a_max)``: how close to saturation the predicted probe window is,
* ``log10(a_max − 0.99 + 1e-3)``: how much saturation headroom the threshold leaves,
* m₀ = (μ_V − θ*)/σ_V of the driven E population under the external drive alone (clipped to
  [−60, 10]): simulated-silent runs predicted weakly active are igniters whose rate comes
  from the far Siegert tail, where a small error in μ_V moves the rate by decades — the
  same small predicted activity is less trustworthy the farther below threshold the drive
  leaves the igniters,
* log10 of the drive-only activity (the first step from rest: igniters driven by the
  external input alone, ν·t_ref) over the silent threshold: a finite network whose drive
  yields only a few spikes per probe window stays silent even where the mean field ignites,
* log10 of the activity at the probe window's end (the plateau the run settled on),
* z of the first-step crossing with the network saturated (``moments.first_step_z``): how
  deep into firing on every first free step a saturated network is,
* log10 of the onset time t_on of the driven population from rest
  (``MK1Network.onset_time``) and the time budget (1 − 0.99/a_max) − t_on (clipped to
  ±0.3 s): a network saturated from t_on on is runaway only if the budget is positive, and
  the run from rest's rate dynamics ignite ~10 ms too early (docs/cheap.md, "Onset time"),

each expanded in a hinge basis (x and max(0, x − k) at the calibration bank's 20/40/60/80 %
quantiles k: an additive, piecewise-linear model; docs/cheap.md, "Status classifier"),
standardised, in a multinomial logistic regression (L2, weight 1 as scikit-learn's C = 1)
fitted on a bank's simulated statuses. Decision: ``ok`` when P(ok) reaches the threshold that
keeps ``recall`` of the calibration bank's ok runs, otherwise the likelier of silent and
runaway; undetermined predictions stay undetermined (kept by a screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .solve import RUNAWAY, SILENT

CLASSES = ("silent", "ok", "runaway")
FEATURES = ("log10 activity", "saturation closeness", "log10 headroom", "drive-only m",
            "log10 drive-only activity / silent", "log10 probe-end activity",
            "saturated first-step z", "log10 onset time", "onset budget")
#: quantiles of the calibration features where the hinge basis bends
KNOT_QUANTILES = (0.2, 0.4, 0.6, 0.8)


def features(signals) -> np.ndarray:
    """(n, 9) features from ``CheapModel.status_signals``' (n, 7) columns: the probe activity
    ν_E·t_ref, its saturated limit, the driven population's drive-only m, the drive-only
    activity, the probe-end activity, the saturated first-step z (NaN: continuous time), the
    onset time (NaN: none; taken as 1 s)."""
    a, a_max, m0, a_drive, a_end, z_sat, onset = np.asarray(signals, float).T
    onset = np.clip(np.nan_to_num(onset, nan=1.0), 1e-4, 1.0)
    frac = np.clip(a / a_max, 0.0, 1.0)
    return np.column_stack([np.log10(np.maximum(a, 1e-8)),
                            -np.log10(np.maximum(1.0 - frac, 1e-4)),
                            np.log10(np.maximum(a_max - RUNAWAY, 0.0) + 1e-3),
                            np.clip(np.nan_to_num(m0, nan=-60.0), -60.0, 10.0),
                            np.clip(np.log10(np.maximum(np.nan_to_num(a_drive), 1e-16) / SILENT),
                                    -8.0, 7.0),
                            np.log10(np.maximum(np.nan_to_num(a_end), 1e-8)),
                            np.clip(np.nan_to_num(z_sat, nan=-10.0), -10.0, 10.0),
                            np.log10(onset),
                            np.clip(1.0 - RUNAWAY / a_max - onset, -0.3, 0.3)])


def hinge_basis(x, knots) -> np.ndarray:
    """[x, max(0, x_j − k) for every feature j and knot k of ``knots[j]``]."""
    x = np.asarray(x, float)
    cols = [x] + [np.maximum(x[:, j:j + 1] - np.asarray(k, float)[None], 0.0)
                  for j, k in enumerate(knots)]
    return np.concatenate(cols, axis=1)


@dataclass(frozen=True)
class StatusClassifier:
    mean: tuple
    scale: tuple
    weights: tuple     # (3 classes, basis columns + intercept), rows in CLASSES order
    threshold: float   # P(ok) at or above which a θ is called ok
    recall: float
    knots: tuple       # per feature, the hinge basis's knots

    def probabilities(self, signals) -> np.ndarray:
        x = (hinge_basis(features(signals), self.knots) - np.array(self.mean)) / np.array(self.scale)
        return _softmax(_design(x) @ np.array(self.weights).T)

    def classify(self, pred, signals) -> np.ndarray:
        """Statuses (object array) from a prediction and its ``status_signals``;
        undetermined predictions stay undetermined."""
        said = decide(self.probabilities(signals), self.threshold)
        return np.where(pred.status == "undetermined", "undetermined", said).astype(object)

    @classmethod
    def from_dict(cls, d: dict) -> "StatusClassifier":
        if list(d.get("features", ())) != list(FEATURES):
            raise UserError(f"status classifier: features {d.get('features')} are not {list(FEATURES)}")
        return cls(tuple(d["mean"]), tuple(d["scale"]), tuple(map(tuple, d["weights"])),
                   float(d["threshold"]), float(d["recall"]), tuple(map(tuple, d["knots"])))

    def to_dict(self) -> dict:
        return {"features": list(FEATURES), "classes": list(CLASSES), "mean": list(self.mean),
                "scale": list(self.scale), "weights": [list(r) for r in self.weights],
                "threshold": self.threshold, "recall": self.recall,
                "knots": [list(k) for k in self.knots]}


def decide(p, threshold: float) -> np.ndarray:
    """Statuses (object array) from probabilities (n, 3) in ``CLASSES`` order: ``ok`` where
    P(ok) reaches ``threshold``, otherwise the likelier of silent and runaway."""
    other = np.where(p[:, 0] >= p[:, 2], "silent", "runaway")
    return np.where(p[:, 1] >= threshold, "ok", other).astype(object)


def calibrate_classifier(pred, signals, simulated_status, recall: float = 0.95,
                         penalty: float = 1.0) -> StatusClassifier:
    """Fit the classifier on simulated statuses (rows with a determined prediction)."""
    from scipy.optimize import minimize

    if not 0 < recall <= 1:
        raise UserError(f"recall must be in (0, 1], got {recall}")
    status = np.asarray(simulated_status).astype(str)
    use = np.isin(status, CLASSES) & (pred.status != "undetermined")
    counts = {c: int(np.sum(status[use] == c)) for c in CLASSES}
    if min(counts.values()) < 5 or counts["ok"] < 10:
        raise UserError(f"classifier calibration needs >= 5 runs of each status and >= 10 ok, "
                        f"got {counts}")
    raw = features(np.asarray(signals)[use])
    knots = tuple(tuple(np.unique(np.quantile(raw[:, j], KNOT_QUANTILES)).tolist())
                  for j in range(raw.shape[1]))
    x = hinge_basis(raw, knots)
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    z = _design((x - mean) / scale)
    y = np.zeros((len(z), len(CLASSES)))
    y[np.arange(len(z)), [CLASSES.index(s) for s in status[use]]] = 1.0
    shape = (len(CLASSES), z.shape[1])

    def loss(flat):
        w = flat.reshape(shape)
        logits = z @ w.T
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        reg = w[:, :-1]  # intercepts are not penalised
        value = -np.sum(y * log_p) + 0.5 * penalty * np.sum(reg ** 2)
        grad = (np.exp(log_p) - y).T @ z
        grad[:, :-1] += penalty * reg
        return value, grad.ravel()

    fit = minimize(loss, np.zeros(np.prod(shape)), jac=True, method="L-BFGS-B",
                   options={"maxiter": 2000})
    weights = fit.x.reshape(shape)
    p_ok = _softmax(z @ weights.T)[:, 1]
    threshold = float(np.quantile(p_ok[status[use] == "ok"], 1 - recall))
    return StatusClassifier(tuple(mean), tuple(scale), tuple(map(tuple, weights)), threshold,
                            recall, knots)


def _design(x):
    return np.column_stack([x, np.ones(len(x))])


def _softmax(logits):
    logits = logits - logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)
