"""Posterior artifacts: sample, evaluate, save and load without ever unpickling code.

A posterior is an ensemble of sbi conditional density estimators over z = θ mapped to the
unconstrained space of its prior (see transforms.py), an optional restriction classifier
p(valid | θ), the prior, and the feature set whose transforms turn raw features into the
estimator's input. ``to_sbi()`` gives the same posterior as an sbi ``NeuralPosterior``.

On disk (a directory):

    posterior.json   format, prior (spec or distribution, as data), feature set (names,
                     transforms), training configuration (``TrainingConfig``), model facts
                     (dimensions, embedding, θ space), validation metrics, provenance,
                     sha256 of weights.pt
    weights.pt       tensors only (state dicts), read with torch.load(weights_only=True)
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..features.sets import transform_features
from ..io import write_json
from .config import TrainingConfig
from .transforms import theta_transform

FORMAT = "automind-posterior"
FORMAT_VERSION = 2   # 1: one "config" dict mixing training settings and model facts


def make_embedding(kind: str, x_dim: int) -> nn.Module:
    """Embedding nets for high-dimensional features (e.g. the 990-value PSD)."""
    if kind == "none":
        return nn.Identity()
    if kind == "mlp":
        return nn.Sequential(nn.Linear(x_dim, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 32))
    if kind == "cnn":
        return nn.Sequential(nn.Unflatten(1, (1, x_dim)), nn.Conv1d(1, 8, 9, stride=2), nn.ReLU(),
                             nn.Conv1d(8, 16, 9, stride=2), nn.ReLU(), nn.AdaptiveAvgPool1d(32),
                             nn.Flatten(), nn.Linear(16 * 32, 32))
    raise UserError(f"unknown embedding {kind!r}; use auto, none, mlp or cnn")


def resolve_embedding(kind: str, x_dim: int) -> str:
    return ("mlp" if x_dim > 64 else "none") if kind == "auto" else kind


def build_estimator(config: dict, seed: int, theta: torch.Tensor | None = None,
                    x: torch.Tensor | None = None):
    """An untrained sbi density estimator for ``config``. sbi takes its z-scoring statistics
    from the batch given here: the training data when training; any batch of the right
    shapes when loading (the saved state then overwrites them)."""
    from sbi.neural_nets import posterior_nn

    torch.manual_seed(seed)
    build = posterior_nn(model=config["estimator"], hidden_features=config["hidden_features"],
                         num_transforms=config["num_transforms"],
                         embedding_net=make_embedding(config["embedding"], config["x_dim"]))
    if theta is None:
        theta, x = torch.randn(64, config["theta_dim"]), torch.randn(64, config["x_dim"])
    return build(theta, x)


class Standardise(nn.Module):
    """Fixed (z - mean) / sd with its statistics as buffers, so they save with the net."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("sd", torch.ones(dim))

    def forward(self, z):
        return (z - self.mean) / self.sd


def make_classifier(theta_dim: int) -> nn.Module:
    """The restriction classifier p(valid | z): logits of an MLP on standardised z."""
    return nn.Sequential(Standardise(theta_dim), nn.Linear(theta_dim, 64), nn.ReLU(),
                         nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


class TooFewSamples(UserError):
    """The posterior puts (almost) no mass where sampling may keep its draws."""


class Posterior:
    """p(θ | x) for one prior and feature set. θ in the prior's units, x as raw features."""

    def __init__(self, estimators: list, prior, training: TrainingConfig, model: dict,
                 features: dict, restriction: nn.Module | None = None,
                 metrics: dict | None = None, provenance: dict | None = None):
        self.estimators = estimators
        self.prior = prior
        self.training = training        # how it was trained
        self.model = model              # dimensions, embedding, feature columns, θ space
        self.features = features        # {"set", "version", "names", "transforms"}
        self.restriction = restriction
        self.metrics = metrics or {}
        self.provenance = provenance or {}
        self.theta_map = theta_transform(prior, model.get("theta_space", "bijection"))
        for module in self.estimators + ([restriction] if restriction is not None else []):
            module.eval()

    @property
    def config(self) -> dict:
        """Training configuration and model facts in one read-only dict."""
        return self.training.to_dict() | self.model

    def to_sbi(self):
        """This posterior as an sbi ``NeuralPosterior`` (for ``sbi.analysis`` and
        ``sbi.diagnostics``: SBC, TARP, ...)."""
        from .sbi_posterior import SbiPosterior

        return SbiPosterior(self)

    # ---- features ----------------------------------------------------------------------
    def prepare_x(self, x) -> torch.Tensor:
        """Raw features (n, d) or (d,) -> the estimators' input; clear errors for bad x."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        names = self.features["names"]
        if x.shape[1] != len(names):
            raise UserError(f"features have {x.shape[1]} values, but this posterior was trained "
                            f"on {len(names)} ({self.features.get('set') or 'custom'} set)")
        columns = self.model["feature_columns"]
        x = transform_features(x, self.features["transforms"])[:, columns]
        if not np.isfinite(x).all():
            bad = [names[columns[k]] for k in np.flatnonzero(~np.isfinite(x).all(0))][:5]
            raise UserError(f"target features contain NaN or inf ({', '.join(bad)}); this "
                            "posterior cannot condition on missing features")
        return torch.as_tensor(x, dtype=torch.float32)

    def conditionable(self, x) -> np.ndarray:
        """Rows of raw features (n, d) this posterior can condition on (no NaN where it looks)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return np.isfinite(x[:, self.model["feature_columns"]]).all(1)

    # ---- density --------------------------------------------------------------------------
    def _z_log_prob(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log q(z | x) for z (n, d) and one x (1, dx), averaged over the ensemble."""
        logs = torch.stack([est.log_prob(z.unsqueeze(1), x).squeeze(1) for est in self.estimators])
        return torch.logsumexp(logs, 0) - math.log(len(self.estimators))

    def log_prob(self, theta, x) -> np.ndarray:
        """log p(θ | x) (unrestricted) for θ (n, d) and one x; -inf outside the prior."""
        theta_arr = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        x_t = self.prepare_x(x)[:1]
        inside = self.prior.inside(theta_arr)
        with torch.no_grad():
            out = self.log_prob_tensor(torch.as_tensor(theta_arr), x_t).numpy()
        out[~inside] = -np.inf
        return out

    def log_prob_tensor(self, theta: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """log p(θ | x) (unrestricted, differentiable) for θ (n, d) inside the prior and
        prepared features x_t (1, dx)."""
        z = self.theta_map.to_z(theta)
        return self._z_log_prob(z, x_t).double() + self.theta_map.log_abs_det_dz_dtheta(theta)

    def standardised_log_prob(self, u: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """Differentiable log density of prior-standardised coordinates u (n, d) given the
        prepared x_t (1, dx), up to a constant: u = (s - mean) / sd with s the prior's scale
        space (log for log-scale parameters of automind priors, else θ)."""
        mean, sd = (torch.as_tensor(v) for v in self.prior._moments())
        z, log_dz_ds = self.theta_map.scaled_to_z(u.double() * sd + mean)
        return self._z_log_prob(z.float(), x_t).double() + log_dz_ds

    #: samples drawn per call of an estimator: autoregressive inversion holds large
    #: intermediates (10,000 at once cost ~500 MB with zuko_maf in 28 dimensions)
    SAMPLE_CHUNK = 4096

    def _raw_sample(self, n: int, x_t: torch.Tensor) -> torch.Tensor:
        shares = np.bincount(np.arange(n) % len(self.estimators), minlength=len(self.estimators))
        parts = [est.sample((min(self.SAMPLE_CHUNK, int(k) - start),), x_t).reshape(-1, self.prior.dim)
                 for est, k in zip(self.estimators, shares)
                 for start in range(0, int(k), self.SAMPLE_CHUNK)]
        return torch.cat(parts)[torch.randperm(n)]

    @property
    def restriction_threshold(self) -> float:
        """Samples are kept where p(valid | θ) exceeds this (calibrated at training)."""
        return float(self.model.get("restriction_threshold", 0.5))

    def valid_probability(self, theta) -> np.ndarray:
        """The restriction classifier's p(valid | θ) (1 everywhere without one)."""
        theta_arr = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        if self.restriction is None:
            return np.ones(len(theta_arr))
        with torch.no_grad():
            z = self.theta_map.to_z(torch.as_tensor(theta_arr))
            return torch.sigmoid(self.restriction(z)).squeeze(-1).numpy()

    def sample(self, n: int, x, seed: int | None = 0, restrict: bool = True,
               max_draws: int | None = None) -> np.ndarray:
        """n θ (prior units) from p(θ | x), drawn by rejection: outside the prior's support
        (only possible when the flow models θ itself) and, with a restriction classifier,
        where it deems simulations invalid (p below ``restriction_threshold``). ``seed``
        None draws from torch's global generator; at most ``max_draws`` (default 50 n)."""
        x_t = self.prepare_x(x)[:1]
        max_draws = max_draws or 50 * max(n, 256)
        with torch.random.fork_rng(enabled=seed is not None), torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            accepted, total, drawn = [], 0, 0
            while total < n and drawn < max_draws:
                rate = max(total / drawn, 1e-3) if drawn else 1.0
                size = max(n, 256) if not drawn else \
                    int(min(max(256, 1.2 * (n - total) / rate), 1_000_000, max_draws - drawn))
                batch = self.theta_map.to_theta(self._raw_sample(size, x_t)).numpy()
                drawn += size
                if not self.theta_map.within_support:
                    batch = batch[self.prior.inside(batch)]
                if restrict and self.restriction is not None and len(batch):
                    batch = batch[self.valid_probability(batch) > self.restriction_threshold]
                accepted.append(batch)
                total += len(batch)
        samples = np.concatenate(accepted)
        if len(samples) < n:
            raise TooFewSamples(f"only {len(samples)} of {n} posterior samples in {drawn} draws fall "
                            "inside the prior and where the restriction classifier expects valid "
                            "simulations; the target may lie outside what the simulations cover "
                            "(or sample with restrict=False)")
        return samples[:n]

    # ---- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        prior = self.prior.to_dict()   # refuses priors that cannot be stored as data, first
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {f"estimator.{k}": est.state_dict() for k, est in enumerate(self.estimators)}
        if self.restriction is not None:
            state["restriction"] = self.restriction.state_dict()
        tmp = path / ".weights.pt.tmp"
        torch.save(state, tmp)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        tmp.replace(path / "weights.pt")
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "prior": prior,
                "features": self.features, "training": self.training.to_dict(),
                "model": self.model, "metrics": self.metrics,
                "provenance": self.provenance, "restriction": self.restriction is not None,
                "weights_sha256": digest}
        write_json(path / "posterior.json", meta, sort_keys=False)
        return path


def _split_config(meta: dict) -> tuple[TrainingConfig, dict]:
    """(training configuration, model facts) of an artifact, either format version."""
    if meta["version"] >= 2:
        return TrainingConfig.from_dict(meta["training"]), meta["model"]
    config = dict(meta["config"])   # version 1: one dict, box-logit θ space
    known = set(TrainingConfig().to_dict())
    training = TrainingConfig.from_dict({k: v for k, v in config.items() if k in known})
    model = {k: v for k, v in config.items() if k not in known}
    model.setdefault("feature_columns", list(range(config["x_dim"])))
    model["theta_space"] = "bijection"   # version 1 always trained on the logit of the box
    return training, model


def load_posterior(path: str | Path) -> Posterior:
    """Load an artifact written by Posterior.save; refuses incomplete or altered ones."""
    from .priors import prior_from_dict

    path = Path(path)
    meta_file, weights_file = path / "posterior.json", path / "weights.pt"
    if not meta_file.is_file() or not weights_file.is_file():
        raise UserError(f"{path} is not a complete posterior artifact (needs posterior.json and "
                        "weights.pt)")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise UserError(f"{meta_file} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_file} is not a JSON object")
    if meta.get("format") != FORMAT or meta.get("version") not in (1, FORMAT_VERSION):
        raise UserError(f"{path}: not an automind posterior of a version this automind reads "
                        f"(format {meta.get('format')!r}, version {meta.get('version')!r})")
    raw = weights_file.read_bytes()
    if hashlib.sha256(raw).hexdigest() != meta.get("weights_sha256"):
        raise UserError(f"{weights_file} does not match the checksum in posterior.json: the "
                        "artifact was altered or is incomplete; refusing to load it")
    try:
        # the bytes just verified (not the file again), tensors only, never code
        state = torch.load(io.BytesIO(raw), weights_only=True)
        training, model = _split_config(meta)
        _check_sizes(training.to_dict() | model, state)
        estimators = []
        for k in range(training.ensemble):
            est = build_estimator(training.to_dict() | model, seed=k)
            est.load_state_dict(state[f"estimator.{k}"])
            estimators.append(est)
        restriction = None
        if meta.get("restriction"):
            restriction = make_classifier(model["theta_dim"])
            restriction.load_state_dict(state["restriction"])
        prior = prior_from_dict(meta["prior"], source=f"{path} (embedded prior)")
        return Posterior(estimators, prior, training, model, meta["features"], restriction,
                         meta.get("metrics"), meta.get("provenance"))
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 -- torch and sbi raise many types for a bad state
        lines = str(err).strip().splitlines()
        raise UserError(f"{path}: posterior artifact is inconsistent ({type(err).__name__}: "
                        f"{lines[0][:200] if lines else ''})") from None


def _check_sizes(config: dict, state: dict) -> None:
    """Refuse a config that would build networks far larger than the weights stored (a
    hostile ``hidden_features: 10**9`` must not allocate before the state fails to load)."""
    stored = sum(t.numel() for part in state.values() if isinstance(part, dict)
                 for t in part.values() if isinstance(t, torch.Tensor))
    sizes = {k: config.get(k) for k in ("hidden_features", "num_transforms", "theta_dim",
                                        "x_dim", "ensemble")}
    if not all(type(v) is int and 0 < v <= stored for v in sizes.values()):
        raise ValueError(f"config sizes {sizes} do not match the {stored} stored weights")
    if sizes["num_transforms"] * sizes["hidden_features"] ** 2 > 64 * stored:
        raise ValueError(f"config sizes {sizes} describe networks far larger than the {stored} "
                         "stored weights")
