"""``automind cheap check BANK``: the cheap model's statuses and rates against a Brian2 bank.

Calibrates the screen window on the first part of the bank and scores everything on the
rest (held out), for the table and for the analytic transfer function (spec §4).
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import UserError


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def check_bank(bank_path, table=None, recall: float = 0.95, calibration: float = 0.5) -> dict:
    """Scores of the cheap model on a bank; ``table`` as in ``CheapModel.for_spec``."""
    from ..bank.bank import Bank
    from ..prior import Prior
    from ..simulators.spec import SimulatorSpec
    from .screen import CheapModel, calibrate_window, scores

    bank = Bank(bank_path)
    rows = bank.table()
    if len(rows["index"]) < 20:
        raise UserError(f"bank {bank_path} holds {len(rows['index'])} simulations; "
                        "checking needs at least 20")
    spec = SimulatorSpec.from_plain(bank.meta["simulator"])
    prior = Prior.from_dict(bank.meta["prior"])
    done = np.isin(rows["status"], ("ok", "silent", "runaway"))
    theta, status = rows["theta"][done], rows["status"][done].astype(str)
    rate_e = rows["rate_E"][done]
    n_cal = int(round(calibration * len(theta)))
    out = {"bank": str(bank_path), "n": int(len(theta)), "calibration": n_cal,
           "held_out": int(len(theta) - n_cal), "recall_target": recall, "models": {}}
    for name, which in ((("table", table),) if table != "analytic" else ()) + (("analytic", "analytic"),):
        model = CheapModel.for_spec(spec, prior, which)
        start = time.process_time()
        pred = model.predict(theta)
        cpu = time.process_time() - start
        t_ref = model.t_refrac(theta)
        window = calibrate_window(_take(pred, slice(0, n_cal)), t_ref[:n_cal], status[:n_cal], recall)
        held = slice(n_cal, None)
        result = scores(_take(pred, held), t_ref[held], status[held], window)
        ok = (status[held] == "ok") & (pred.status[held] != "undetermined")
        sim_rate, cheap_rate = rate_e[held][ok], pred.rate_E[held][ok]
        result["ok_rate"] = {
            "spearman": spearman(cheap_rate, sim_rate),
            "median_abs_dlog10": float(np.median(np.abs(np.log10(np.maximum(cheap_rate, 1e-3))
                                                        - np.log10(np.maximum(sim_rate, 1e-3)))))
            if ok.any() else float("nan"), "n": int(ok.sum())}
        result["default_thresholds"] = scores(_take(pred, held), t_ref[held], status[held],
                                              type(window)())
        result["cpu_seconds"] = cpu
        result["predictions_per_cpu_second"] = len(theta) / max(cpu, 1e-9)
        result["table"] = getattr(model.table, "key", "analytic")
        out["models"][name] = result
    return out


def _take(pred, index):
    from dataclasses import fields, replace

    values = {f.name: getattr(pred, f.name)[index] for f in fields(pred)
              if f.name not in ("populations", "flags")}
    return replace(pred, **values, flags={k: v[index] for k, v in pred.flags.items()})
