"""Training over a bank larger than memory: shard-streamed batches.

Every 10th shard is held out for validation. A first pass gathers the z-scoring statistics
and which features are present, a second the validity of every row; θ and validity (small)
train the restriction classifier. Streaming trains a single estimator.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..errors import UserError
from ..features.sets import transform_features
from ..provenance import package_versions
from .config import TrainingConfig
from .posterior import Posterior, build_estimator
from .train import _fit, _train_restriction, model_facts
from .transforms import theta_transform


def train_streaming(bank, feature_set: str, prior, feature_info: dict, provenance: dict,
                    config: TrainingConfig, progress: bool = True,
                    buffer_shards: int = 4) -> Posterior:
    from ..bank.dataset import BankDataset

    if config.ensemble != 1:
        raise UserError("streaming training supports one estimator (--ensemble 1)")
    names, transforms = feature_info["names"], feature_info["transforms"]
    to_z = theta_transform(prior, config.resolved_theta_space(prior))

    # pass 1: presence and moments of each feature, moments of z, θ of every row
    rows, finite, x_sum, x_sq = 0, np.zeros(len(names)), np.zeros(len(names)), np.zeros(len(names))
    z_sum, z_sq, all_theta = np.zeros(prior.dim), np.zeros(prior.dim), []
    for _, theta, status, x in bank.iter_rows(feature_set):
        xm = transform_features(x, transforms)
        good = np.isfinite(xm)
        ok_rows = status == "ok"
        rows += int(ok_rows.sum())
        finite += good[ok_rows].sum(0)
        x_sum += np.where(good, xm, 0)[ok_rows].sum(0)
        x_sq += np.where(good, xm * xm, 0)[ok_rows].sum(0)
        z = to_z.to_z(torch.as_tensor(theta)).double().numpy()
        z_sum += z[ok_rows].sum(0)
        z_sq += (z * z)[ok_rows].sum(0)
        all_theta.append(theta)
    if rows < 20:
        raise UserError(f"only {rows} ok simulations to train on; need at least 20")
    present = finite / rows >= 0.5
    columns = np.flatnonzero(present)
    # pass 2 (validity only): status ok and every used feature finite
    valid = np.concatenate([(status == "ok")
                            & np.isfinite(transform_features(x, transforms)[:, columns]).all(1)
                            for _, _, status, x in bank.iter_rows(feature_set)])
    x_mean = x_sum[columns] / finite[columns]
    x_sd = np.sqrt(np.maximum(x_sq[columns] / finite[columns] - x_mean**2, 1e-12))
    z_mean = z_sum / rows
    z_sd = np.sqrt(np.maximum(z_sq / rows - z_mean**2, 1e-12))

    def two_rows(mean, sd):  # a batch whose mean and (n-1) sd are exactly these
        offset = sd / np.sqrt(2)
        return torch.as_tensor(np.stack([mean + offset, mean - offset]), dtype=torch.float32)

    model = model_facts(config, prior, columns, streamed=True)
    est = build_estimator(config.to_dict() | model, config.seed, two_rows(z_mean, z_sd),
                          two_rows(x_mean, x_sd))
    names_all = [r.name for r in bank.records]
    val_shards = set(names_all[::10]) if len(names_all) >= 2 else set()
    train_shards = set(names_all) - val_shards or set(names_all)

    def batches(shards, epoch, shuffle):
        ds = BankDataset(bank, feature_set, status="ok", shuffle=shuffle,
                         batch_size=config.batch_size, buffer_shards=buffer_shards,
                         seed=config.seed, shards=shards)
        ds.set_epoch(epoch)
        for theta, x in ds:
            xm = torch.as_tensor(transform_features(x.numpy(), transforms)[:, columns],
                                 dtype=torch.float32)
            keep = torch.isfinite(xm).all(1)
            if keep.any():
                yield to_z.to_z(theta[keep].double()), xm[keep]

    start = time.perf_counter()
    curve, best = _fit(lambda zx: (est.loss(zx[0], condition=zx[1]).mean(), len(zx[0])), est,
                       lambda epoch: batches(train_shards, epoch, True),
                       lambda: batches(val_shards or train_shards, 0, False), config,
                       progress, f"training {config.estimator} (streamed)")
    classifier = None
    if config.restriction and not valid.all():
        theta_all = np.concatenate(all_theta)
        classifier, model["restriction_threshold"] = _train_restriction(
            to_z.to_z(torch.as_tensor(theta_all)), valid, config.seed, progress,
            config.allowed_false_negatives)
    metrics = {"n_simulations": int(len(valid)), "n_valid": int(valid.sum()),
               "n_invalid": int((~valid).sum()),
               "features_dropped": [names[k] for k in range(len(names)) if not present[k]],
               "best_validation_loss": [best], "training_curves": [curve],
               "training_seconds": time.perf_counter() - start, "restriction": classifier is not None}
    provenance = provenance | {"versions": package_versions(), "bank_rows": int(len(valid))}
    return Posterior([est], prior, config, model, feature_info, classifier, metrics, provenance)
