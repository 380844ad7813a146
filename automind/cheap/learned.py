"""Learned classifiers beside the cheap model (spec cheap-forward.md: "report the bank size
where a restriction classifier matches the screen's AUC, and the hybrid (cheap outputs as
inputs)"; ``automind cheap check --learned``).

Gradient boosting (scikit-learn's ``HistGradientBoostingClassifier``, fixed seed) on θ alone —
what a classifier learns of the statuses from a bank of simulations, as a restriction
classifier does — trained on the first k calibration runs for growing k; and on θ together
with the cheap model's status signals (``CheapModel.status_signals``: the hybrid). Both are
scored on the held-out runs as the status classifier is: the AUC of P(ok) for ok runs
against the rest, and per-class recall / precision with ``ok`` called where P(ok) reaches the
threshold that keeps ``recall`` of the calibration ok runs (taken from 5-fold out-of-fold
probabilities, not from the training runs' own, which are over-confident).
"""

from __future__ import annotations

import numpy as np

from .classify import CLASSES, decide
from .regimes import auc
from .screen import class_scores

#: training sizes (calibration runs, first in bank order) of the θ-only classifier
SIZES = (250, 500, 1000, 2000, 4000)
#: the fewest runs of each status a training set needs (5-fold out-of-fold probabilities)
MIN_PER_CLASS = 5


def _model(seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)


def _probabilities(model, x) -> np.ndarray:
    """(n, 3) probabilities in ``CLASSES`` order."""
    out = np.zeros((len(x), len(CLASSES)))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def fit_and_score(x_train, y_train, x_test, y_test, recall: float, seed: int = 0) -> dict | None:
    """Train on (x, y) (y: indices into ``CLASSES``), score on the test runs; None when a
    status has fewer than ``MIN_PER_CLASS`` training runs."""
    from sklearn.model_selection import StratifiedKFold

    if np.bincount(y_train, minlength=len(CLASSES)).min() < MIN_PER_CLASS:
        return None
    ok = CLASSES.index("ok")
    out_of_fold = np.zeros(len(y_train))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    for fit_rows, rest in folds.split(x_train, y_train):
        model = _model(seed).fit(x_train[fit_rows], y_train[fit_rows])
        out_of_fold[rest] = _probabilities(model, x_train[rest])[:, ok]
    threshold = float(np.quantile(out_of_fold[y_train == ok], 1 - recall))
    p = _probabilities(_model(seed).fit(x_train, y_train), x_test)
    return {"n_train": int(len(y_train)), "auc_ok": auc(p[:, ok], y_test == ok)} | \
        class_scores(decide(p, threshold), np.array(CLASSES)[y_test])


def theta_only(theta, status, n_cal: int, recall: float, seed: int = 0) -> list[dict]:
    """θ-only classifiers trained on the first k of the ``n_cal`` calibration runs (k in
    ``SIZES``, and all of them), scored on the runs after them; sizes with too few runs of a
    status are left out."""
    y = _labels(status)
    theta, held = np.asarray(theta, float), slice(n_cal, None)
    sizes = [k for k in SIZES if k < n_cal] + [n_cal]
    scored = [fit_and_score(theta[:k], y[:k], theta[held], y[held], recall, seed) for k in sizes]
    return [s for s in scored if s is not None]


def learned_report(theta, status, signals, n_cal: int, recall: float, cheap_auc_ok: float,
                   seed: int = 0, theta_scores: list[dict] | None = None) -> dict:
    """θ-only classifiers at growing training sizes (``theta_scores`` if already computed by
    :func:`theta_only`: they do not depend on the model) and the hybrid, calibrated on the
    first ``n_cal`` runs and scored on the rest; ``cheap_auc_ok``: the cheap model's own AUC
    of P(ok) on the same held-out runs, which the θ-only classifier is compared against."""
    if theta_scores is None:
        theta_scores = theta_only(theta, status, n_cal, recall, seed)
    y = _labels(status)
    x = np.column_stack([np.asarray(theta, float), np.asarray(signals, float)])
    cal, held = slice(0, n_cal), slice(n_cal, None)
    matched = [s["n_train"] for s in theta_scores if s["auc_ok"] >= cheap_auc_ok]
    return {"cheap_auc_ok": float(cheap_auc_ok), "theta_only": theta_scores,
            "theta_only_matches_cheap_at": matched[0] if matched else None,
            "hybrid": fit_and_score(x[cal], y[cal], x[held], y[held], recall, seed)}


def _labels(status) -> np.ndarray:
    return np.array([CLASSES.index(s) for s in np.asarray(status).astype(str)])
