"""Training neural posterior estimators (sbi 0.27 estimators, our own loop).

We use sbi's estimator builders and their ``loss`` (sbi's documented low-level interface)
in our own loop rather than ``NPE.train``: the same loop then serves in-memory arrays and
banks (``streaming.py``), and θ is trained in the space ``TrainingConfig.theta_space``
chooses for its prior (``transforms.py``). Any prior sbi accepts works (``priors.py``).

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
from ..features.sets import transform_features
from .config import TrainingConfig
from .posterior import Posterior, build_estimator, make_classifier, resolve_embedding
from .priors import as_prior
from .transforms import theta_transform


#: the restriction classifier's own optimisation settings (not part of TrainingConfig)
RESTRICTION_FIT = TrainingConfig(learning_rate=1e-3, max_epochs=100, patience=10)


def _fit(loss_fn, module: nn.Module, train_batches, val_batches, config, progress: bool,
         desc: str) -> tuple[list, float]:
    """Adam on ``module`` with early stopping on validation batches (the best epoch is kept).

    ``train_batches(epoch)`` and ``val_batches()`` yield batches; ``loss_fn(batch)`` returns
    (mean loss, rows). In-memory index batches and streamed bank batches both use this loop.
    """
    from tqdm.auto import tqdm

    parameters = list(module.parameters())
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    best, best_state, stale, curve = math.inf, None, 0, []
    bar = tqdm(range(config.max_epochs), desc=desc, unit="epoch", disable=not progress)
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
        if val < best - config.min_improvement:
            best, stale = val, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
            if config.lr_decay < 1 and stale % config.lr_decay_patience == 0:
                module.load_state_dict(best_state)
                for group in optimizer.param_groups:
                    group["lr"] *= config.lr_decay
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


def train(theta, x, prior, *, config: TrainingConfig | None = None, valid=None,
          feature_info: dict | None = None, provenance: dict | None = None,
          progress: bool = True, **options) -> Posterior:
    """Train p(θ | x) on simulations (θ in prior units, x raw features).

    ``prior``: an automind ``Prior`` or any prior sbi accepts (``BoxUniform``,
    ``MultivariateNormal``, ``Independent``, ``MultipleIndependent``, ...). ``config``: a
    ``TrainingConfig``; keyword ``options`` replace its fields (``hidden_features=32``).
    ``valid``: optional boolean mask of usable simulations (e.g. status == ok); rows with
    NaN/inf features are invalid too. ``feature_info``: {"set", "version", "names",
    "transforms"} of the features (identity transforms by default).
    """
    config = TrainingConfig.from_options(config, **options)
    prior = as_prior(prior)
    theta = prior.validate(theta)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if len(x) != len(theta):
        raise UserError(f"θ has {len(theta)} rows but x has {len(x)}")
    feature_info = feature_info or {"set": None, "version": None,
                                    "names": [f"x{k}" for k in range(x.shape[1])],
                                    "transforms": ["none"] * x.shape[1]}
    if len(feature_info["names"]) != x.shape[1]:
        raise UserError(f"x has {x.shape[1]} columns but the feature set names "
                        f"{len(feature_info['names'])}")
    status_ok = np.ones(len(x), bool) if valid is None else np.asarray(valid, bool)
    x_model = transform_features(x, feature_info["transforms"])
    # Features missing in most simulations (e.g. a 1 s Fano factor of 0.5 s runs) would
    # invalidate everything: condition on the columns present in at least half of them.
    present = np.isfinite(x_model[status_ok]).mean(0) >= 0.5 if status_ok.any() \
        else np.ones(x.shape[1], bool)
    columns = np.flatnonzero(present)
    if not len(columns):
        raise UserError("every feature is missing in most simulations; nothing to condition on")
    x_model = x_model[:, columns]
    ok = np.isfinite(x_model).all(1) & status_ok
    if ok.sum() < 20:
        raise UserError(f"only {int(ok.sum())} valid simulations to train on; need at least 20")
    to_z = theta_transform(prior, config.resolved_theta_space(prior))
    z_all = to_z.to_z(torch.as_tensor(theta))
    z, xt = z_all[torch.as_tensor(ok)], torch.as_tensor(x_model[ok], dtype=torch.float32)
    model = model_facts(config, prior, columns)
    start = time.perf_counter()
    estimators, curves, best = [], [], []
    for k in range(config.ensemble):
        est = build_estimator(config.to_dict() | model, seed=config.seed + k, theta=z, x=xt)
        batches = _index_batches(len(z), config.batch_size, config.validation_fraction,
                                 torch.Generator().manual_seed(config.seed + k))
        curve, val = _fit(lambda idx, est=est: (est.loss(z[idx], condition=xt[idx]).mean(), len(idx)),
                          est, *batches, config, progress,
                          f"training {config.estimator} {k + 1}/{config.ensemble}")
        estimators.append(est)
        curves.append(curve)
        best.append(val)
    classifier = None
    if config.restriction and not ok.all():
        classifier, model["restriction_threshold"] = _train_restriction(
            z_all, ok, config.seed, progress, config.allowed_false_negatives)
    metrics = {"n_simulations": int(len(theta)), "n_valid": int(ok.sum()),
               "features_dropped": [feature_info["names"][k] for k in range(len(present))
                                    if not present[k]],
               "n_invalid": int((~ok).sum()), "best_validation_loss": best,
               "training_curves": curves, "training_seconds": time.perf_counter() - start,
               "restriction": classifier is not None}
    provenance = (provenance or {}) | {"versions": package_versions()}
    return Posterior(estimators, prior, config, model, feature_info, classifier, metrics, provenance)


def model_facts(config: TrainingConfig, prior, columns, streamed: bool = False) -> dict:
    """What the estimators are, beyond the training configuration (saved with the weights)."""
    return {"estimator": config.resolved_estimator(prior),
            "num_transforms": config.resolved_num_transforms(prior),
            "embedding": resolve_embedding(config.embedding, len(columns)),
            "theta_dim": prior.dim, "x_dim": len(columns), "feature_columns": columns.tolist(),
            "theta_space": config.resolved_theta_space(prior), "streamed": streamed}


def _train_restriction(z: torch.Tensor, ok: np.ndarray, seed: int, progress: bool,
                       allowed_false_negatives: float) -> tuple[nn.Module, float]:
    """Classifier p(valid | θ) on all simulations (plain cross-entropy, so its probabilities
    stay calibrated) and its acceptance threshold: the ``allowed_false_negatives`` quantile
    of p over the valid simulations, never above 0.5 ("more likely valid than not")."""
    torch.manual_seed(seed)
    classifier = make_classifier(z.shape[1])
    labels = torch.as_tensor(ok, dtype=torch.float32)
    classifier[0].mean.copy_(z.mean(0))
    classifier[0].sd.copy_(z.std(0).clamp_min(1e-6))

    def loss(idx):
        logits = classifier(z[idx]).squeeze(-1)
        return nn.functional.binary_cross_entropy_with_logits(logits, labels[idx]), len(idx)

    batches = _index_batches(len(z), 256, 0.1, torch.Generator().manual_seed(seed))
    _fit(loss, classifier, *batches, RESTRICTION_FIT, progress, "training restriction")
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


def train_on_bank(bank, feature_set: str, *, stream: bool = False, buffer_shards: int = 4,
                  config: TrainingConfig | None = None, progress: bool = True,
                  **options) -> Posterior:
    """Train on every simulation of a bank with the named feature set.

    In memory by default; ``stream=True`` streams shards through ``BankDataset`` so the bank
    may be larger than memory (``buffer_shards`` shards shuffled together). Simulations that
    are not ``ok`` or have NaN features train the restriction classifier. ``config`` and
    ``options`` as for ``train``.
    """
    from ..bank import Bank
    from ..prior import Prior

    config = TrainingConfig.from_options(config, **options)
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
        from .streaming import train_streaming

        return train_streaming(bank, feature_set, prior, feature_info, provenance, config,
                               progress, buffer_shards)
    data = bank.arrays(features=feature_set)
    provenance["bank_rows"] = int(len(data["index"]))
    return train(data["theta"], data["x"], prior, config=config, valid=data["status"] == "ok",
                 feature_info=feature_info, provenance=provenance, progress=progress)
