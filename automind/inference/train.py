"""Training neural posterior estimators (sbi 0.27 estimators, our own loop).

We use sbi's estimator builders and their ``loss`` (sbi's documented low-level interface)
in our own loop rather than ``NPE.train``: the same loop then serves in-memory arrays and
banks, and θ is trained in the unconstrained space of the prior box.

Invalid simulations (status not ok, or NaN/inf features) are not dropped silently: they
train a restriction classifier p(valid | θ) used at sampling time (``restriction=True``,
the default), and the counts are recorded in the artifact's metrics. Its acceptance
threshold is calibrated so that at most ``allowed_false_negatives`` of the θ that gave
valid simulations would be rejected (as sbi's ``RestrictionEstimator`` does): a fixed
p > 0.5 would reject everything when valid runs are a small minority of the prior.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..provenance import package_versions
from .posterior import (Posterior, build_estimator, make_classifier, resolve_embedding)
from .transforms import BoxToUnconstrained

ESTIMATORS = ("nsf", "maf", "zuko_nsf", "zuko_maf", "mdn")


def _fit(loss_fn, module: nn.Module, train_batches, val_batches, lr: float, max_epochs: int,
         patience: int, progress: bool, desc: str) -> tuple[list, float]:
    """Adam on ``module`` with early stopping on validation batches (the best epoch is kept).

    ``train_batches(epoch)`` and ``val_batches()`` yield batches; ``loss_fn(batch)`` returns
    (mean loss, rows). In-memory index batches and streamed bank batches both use this loop.
    """
    from tqdm.auto import tqdm

    parameters = list(module.parameters())
    optimizer = torch.optim.Adam(parameters, lr=lr)
    best, best_state, stale, curve = math.inf, None, 0, []
    bar = tqdm(range(max_epochs), desc=desc, unit="epoch", disable=not progress)
    for epoch in bar:
        module.train()
        total, seen = 0.0, 0
        for batch in train_batches(epoch):
            optimizer.zero_grad()
            loss, rows = loss_fn(batch)
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, 5.0)
            optimizer.step()
            total, seen = total + float(loss.detach()) * rows, seen + rows
        module.eval()
        with torch.no_grad():
            pairs = [(float(loss) * rows, rows) for loss, rows in map(loss_fn, val_batches())]
        val = sum(p[0] for p in pairs) / max(sum(p[1] for p in pairs), 1)
        curve.append((total / max(seen, 1), val))
        bar.set_postfix(train=f"{curve[-1][0]:.3f}", val=f"{val:.3f}")
        if val < best - 1e-4:
            best, stale = val, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            stale += 1
            if stale >= patience:
                break
    bar.close()
    module.load_state_dict(best_state)
    return curve, best


def _index_batches(n: int, batch_size: int, validation_fraction: float,
                   generator: torch.Generator):
    """(train_batches, val_batches) of row indices: a random validation split, reshuffled
    training rows each epoch."""
    order = torch.randperm(n, generator=generator)
    n_val = max(1, int(round(validation_fraction * n)))
    val_idx, train_idx = order[:n_val], order[n_val:]

    def train_batches(epoch):
        shuffled = train_idx[torch.randperm(len(train_idx), generator=generator)]
        return (shuffled[s:s + batch_size] for s in range(0, len(shuffled), batch_size))

    def val_batches():
        return (val_idx[s:s + 4096] for s in range(0, n_val, 4096))

    return train_batches, val_batches


def train(theta, x, prior, estimator: str = "zuko_maf", embedding: str = "auto", ensemble: int = 1,
          valid=None, restriction: bool = True, feature_info: dict | None = None,
          hidden_features: int = 64, num_transforms: int = 5, batch_size: int = 256,
          learning_rate: float = 5e-4, max_epochs: int = 300, patience: int = 20,
          validation_fraction: float = 0.1, seed: int = 0, progress: bool = True,
          allowed_false_negatives: float = 0.1, provenance: dict | None = None) -> Posterior:
    """Train p(θ | x) on simulations (θ in prior units, x raw features).

    ``valid``: optional boolean mask of usable simulations (e.g. status == ok); rows with
    NaN/inf features are invalid too. ``feature_info``: {"set", "version", "names",
    "transforms"} of the features (identity transforms by default).
    """
    theta = prior.validate(theta)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if len(x) != len(theta):
        raise UserError(f"θ has {len(theta)} rows but x has {len(x)}")
    if estimator not in ESTIMATORS:
        raise UserError(f"unknown estimator {estimator!r}; use one of {', '.join(ESTIMATORS)}")
    feature_info = feature_info or {"set": None, "version": None,
                                    "names": [f"x{k}" for k in range(x.shape[1])],
                                    "transforms": ["none"] * x.shape[1]}
    if len(feature_info["names"]) != x.shape[1]:
        raise UserError(f"x has {x.shape[1]} columns but the feature set names "
                        f"{len(feature_info['names'])}")
    status_ok = np.ones(len(x), bool) if valid is None else np.asarray(valid, bool)
    # Features missing in most simulations (e.g. a 1 s Fano factor of 0.5 s runs) would
    # invalidate everything: condition on the columns present in at least half of them.
    present = np.isfinite(x[status_ok]).mean(0) >= 0.5 if status_ok.any() else np.ones(x.shape[1], bool)
    columns = np.flatnonzero(present)
    if not len(columns):
        raise UserError("every feature is missing in most simulations; nothing to condition on")
    x = x[:, columns]
    ok = np.isfinite(x).all(1) & status_ok
    if ok.sum() < 20:
        raise UserError(f"only {int(ok.sum())} valid simulations to train on; need at least 20")
    flags = np.array([t == "log10" for t in feature_info["transforms"]], dtype=bool)[columns]
    x_model = x.copy()
    with np.errstate(invalid="ignore"):
        x_model[:, flags] = np.log10(np.maximum(x_model[:, flags], 1e-12))
    box = BoxToUnconstrained.for_prior(prior)
    z_all = box.to_z(torch.as_tensor(theta))
    z, xt = z_all[torch.as_tensor(ok)], torch.as_tensor(x_model[ok], dtype=torch.float32)
    config = {"estimator": estimator, "hidden_features": hidden_features,
              "num_transforms": num_transforms, "embedding": resolve_embedding(embedding, x.shape[1]),
              "theta_dim": prior.dim, "x_dim": x.shape[1], "ensemble": ensemble,
              "feature_columns": columns.tolist(),
              "batch_size": batch_size, "learning_rate": learning_rate, "max_epochs": max_epochs,
              "patience": patience, "validation_fraction": validation_fraction, "seed": seed,
              "theta_space": "logit of the prior box"}
    start = time.perf_counter()
    estimators, curves, best = [], [], []
    for k in range(ensemble):
        est = build_estimator(config, seed=seed + k, theta=z, x=xt)  # z-scoring from the data
        batches = _index_batches(len(z), batch_size, validation_fraction,
                                 torch.Generator().manual_seed(seed + k))
        curve, val = _fit(lambda idx, est=est: (est.loss(z[idx], condition=xt[idx]).mean(), len(idx)),
                          est, *batches, learning_rate, max_epochs, patience, progress,
                          f"training {estimator} {k + 1}/{ensemble}")
        estimators.append(est)
        curves.append(curve)
        best.append(val)
    classifier = None
    if restriction and not ok.all():
        classifier, config["restriction_threshold"] = _train_restriction(
            z_all, ok, seed, progress, allowed_false_negatives)
    metrics = {"n_simulations": int(len(theta)), "n_valid": int(ok.sum()),
               "features_dropped": [feature_info["names"][k] for k in range(len(present))
                                    if not present[k]],
               "n_invalid": int((~ok).sum()), "best_validation_loss": best,
               "training_curves": curves, "training_seconds": time.perf_counter() - start,
               "restriction": classifier is not None}
    provenance = (provenance or {}) | {"versions": package_versions()}
    return Posterior(estimators, prior, config, feature_info, classifier, metrics, provenance)


def _train_restriction(z: torch.Tensor, ok: np.ndarray, seed: int, progress: bool,
                       allowed_false_negatives: float) -> tuple[nn.Module, float]:
    """Classifier p(valid | θ) on all simulations (plain cross-entropy, so its probabilities
    stay calibrated) and its acceptance threshold: the ``allowed_false_negatives`` quantile
    of p over the valid simulations, never above 0.5 ("more likely valid than not")."""
    if not 0 <= allowed_false_negatives < 1:
        raise UserError(f"allowed_false_negatives must be in [0, 1), not {allowed_false_negatives}")
    torch.manual_seed(seed)
    classifier = make_classifier(z.shape[1])
    labels = torch.as_tensor(ok, dtype=torch.float32)
    classifier[0].mean.copy_(z.mean(0))
    classifier[0].sd.copy_(z.std(0).clamp_min(1e-6))

    def loss(idx):
        logits = classifier(z[idx]).squeeze(-1)
        return nn.functional.binary_cross_entropy_with_logits(logits, labels[idx]), len(idx)

    batches = _index_batches(len(z), 256, 0.1, torch.Generator().manual_seed(seed))
    _fit(loss, classifier, *batches, 1e-3, 100, 10, progress, "training restriction")
    with torch.no_grad():
        p_valid = torch.sigmoid(classifier(z[torch.as_tensor(ok)]).squeeze(-1)).numpy()
    threshold = min(0.5, float(np.quantile(p_valid, allowed_false_negatives)))
    return classifier, threshold


def bank_hash(bank) -> str:
    """Content hash of a bank's committed shards (their checksums, in order)."""
    import hashlib

    digest = hashlib.sha256()
    for record in sorted(bank.records, key=lambda r: r.name):
        digest.update(record.shard_sha256.encode())
    return digest.hexdigest()


def train_on_bank(bank, feature_set: str, stream: bool = False, **options) -> Posterior:
    """Train on every simulation of a bank with the named feature set.

    In memory by default; ``stream=True`` streams shards through ``BankDataset`` so the bank
    may be larger than memory. Simulations that are not ``ok`` or have NaN features train
    the restriction classifier.
    """
    from ..bank import Bank
    from ..prior import Prior

    bank = bank if hasattr(bank, "records") else Bank(bank)
    if feature_set not in bank.feature_sets:
        raise UserError(f"bank {bank.path} has no feature set {feature_set!r}; computed sets: "
                        f"{sorted(bank.feature_sets) or 'none'} (automind features BANK --set NAME)")
    prior = Prior.from_dict(bank.meta["prior"], source=f"{bank.path} (bank prior)")
    info = bank.feature_sets[feature_set]
    feature_info = {"set": feature_set, "version": info["version"], "names": info["names"],
                    "transforms": info.get("transforms", ["none"] * len(info["names"]))}
    provenance = {"bank": str(bank.path), "bank_sha256": bank_hash(bank),
                  "simulator": bank.meta["simulator"], "bank_seed": bank.meta["seed"]}
    if stream:
        return _train_streaming(bank, feature_set, prior, feature_info, provenance, **options)
    data = bank.arrays(features=feature_set)
    provenance["bank_rows"] = int(len(data["index"]))
    return train(data["theta"], data["x"], prior, valid=data["status"] == "ok",
                 feature_info=feature_info, provenance=provenance, **options)


def _train_streaming(bank, feature_set, prior, feature_info, provenance, estimator="zuko_maf",
                     embedding="auto", ensemble=1, restriction=True, hidden_features=64,
                     num_transforms=5, batch_size=512, learning_rate=5e-4, max_epochs=300,
                     patience=20, seed=0, progress=True, buffer_shards=4,
                     allowed_false_negatives=0.1, **unused) -> Posterior:
    """Training over a bank larger than memory: shard-streamed batches, every 10th shard
    held out for validation. A first pass gathers z-scoring statistics and which features
    are present, a second the validity of every row; θ and validity (small) train the
    restriction classifier."""
    from ..bank.dataset import BankDataset

    if ensemble != 1:
        raise UserError("streaming training supports one estimator (--ensemble 1)")
    names = feature_info["names"]
    flags_all = np.array([t == "log10" for t in feature_info["transforms"]], dtype=bool)
    box = BoxToUnconstrained.for_prior(prior)

    def model_x(x):
        x = np.array(x, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            x[:, flags_all] = np.log10(np.maximum(x[:, flags_all], 1e-12))
        return x

    # pass 1: presence and moments of each feature, moments of z, θ of every row
    rows, finite, x_sum, x_sq = 0, np.zeros(len(names)), np.zeros(len(names)), np.zeros(len(names))
    z_sum, z_sq, all_theta = np.zeros(prior.dim), np.zeros(prior.dim), []
    for _, theta, status, x in bank.iter_rows(feature_set):
        xm = model_x(x)
        good = np.isfinite(xm)
        ok_rows = status == "ok"
        rows += int(ok_rows.sum())
        finite += good[ok_rows].sum(0)
        x_sum += np.where(good, xm, 0)[ok_rows].sum(0)
        x_sq += np.where(good, xm * xm, 0)[ok_rows].sum(0)
        z = box.to_z(torch.as_tensor(theta)).double().numpy()
        z_sum += z[ok_rows].sum(0)
        z_sq += (z * z)[ok_rows].sum(0)
        all_theta.append(theta)
    if rows < 20:
        raise UserError(f"only {rows} ok simulations to train on; need at least 20")
    present = finite / rows >= 0.5
    columns = np.flatnonzero(present)
    # pass 2 (validity only): status ok and every used feature finite
    valid = np.concatenate([(status == "ok") & np.isfinite(model_x(x)[:, columns]).all(1)
                            for _, _, status, x in bank.iter_rows(feature_set)])
    x_mean = x_sum[columns] / finite[columns]
    x_sd = np.sqrt(np.maximum(x_sq[columns] / finite[columns] - x_mean**2, 1e-12))
    z_mean = z_sum / rows
    z_sd = np.sqrt(np.maximum(z_sq / rows - z_mean**2, 1e-12))

    def two_rows(mean, sd):  # a batch whose mean and (n-1) sd are exactly these
        offset = sd / np.sqrt(2)
        return torch.as_tensor(np.stack([mean + offset, mean - offset]), dtype=torch.float32)

    config = {"estimator": estimator, "hidden_features": hidden_features,
              "num_transforms": num_transforms, "embedding": resolve_embedding(embedding, len(columns)),
              "theta_dim": prior.dim, "x_dim": len(columns), "ensemble": 1,
              "feature_columns": columns.tolist(), "batch_size": batch_size,
              "learning_rate": learning_rate, "max_epochs": max_epochs, "patience": patience,
              "seed": seed, "theta_space": "logit of the prior box", "streamed": True}
    est = build_estimator(config, seed, two_rows(z_mean, z_sd), two_rows(x_mean, x_sd))
    names_all = [r.name for r in bank.records]
    val_shards = set(names_all[::10]) if len(names_all) >= 2 else set()
    train_shards = set(names_all) - val_shards or set(names_all)

    def batches(shards, epoch, shuffle):
        ds = BankDataset(bank, feature_set, status="ok", shuffle=shuffle, batch_size=batch_size,
                         buffer_shards=buffer_shards, seed=seed, shards=shards)
        ds.set_epoch(epoch)
        for theta, x in ds:
            xm = torch.as_tensor(model_x(x.numpy())[:, columns], dtype=torch.float32)
            keep = torch.isfinite(xm).all(1)
            if keep.any():
                yield box.to_z(theta[keep].double()), xm[keep]

    start = time.perf_counter()
    curve, best = _fit(lambda zx: (est.loss(zx[0], condition=zx[1]).mean(), len(zx[0])), est,
                       lambda epoch: batches(train_shards, epoch, True),
                       lambda: batches(val_shards or train_shards, 0, False), learning_rate,
                       max_epochs, patience, progress, f"training {estimator} (streamed)")
    classifier = None
    if restriction and not valid.all():
        theta_all = np.concatenate(all_theta)
        classifier, config["restriction_threshold"] = _train_restriction(
            box.to_z(torch.as_tensor(theta_all)), valid, seed, progress, allowed_false_negatives)
    metrics = {"n_simulations": int(len(valid)), "n_valid": int(valid.sum()),
               "n_invalid": int((~valid).sum()),
               "features_dropped": [names[k] for k in range(len(names)) if not present[k]],
               "best_validation_loss": [best], "training_curves": [curve],
               "training_seconds": time.perf_counter() - start, "restriction": classifier is not None}
    provenance = provenance | {"versions": package_versions(), "bank_rows": int(len(valid))}
    return Posterior([est], prior, config, feature_info, classifier, metrics, provenance)
