"""The region of the prior where simulations come near the target, and truncations of the prior.

``Region``: a classifier p(near | θ) trained on probe simulations (labels: status ok and probe
statistics within tolerance of the target's) with sbi's restriction rule for its threshold
(Deistler et al. 2022, "restriction estimator"), estimated out of fold: the
``allowed_false_negatives`` quantile of p over near probes that the classifier predicting them
did not see, so that about that fraction of the θ that come near the target is cut away.
It uses the network and training loop of the posterior's restriction classifier, so a region
can serve as a posterior's restriction and travel inside its artifact.

``TruncatedPrior``: the prior restricted to a region and, optionally, to the highest-
probability region of a posterior at the target (TSNPE). Its draws are exact (rejection from
the prior), and each bank index k gets the first accepted draw of its own random stream, so a
round bank can be resumed or extended like any bank and holds the same θ.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..io import atomic_write_bytes, write_json

#: prior draws per batch when sampling a truncated prior by rejection
BATCH = 4096
#: give up on one draw after this many prior draws (the region is then too small to sample)
MAX_DRAWS = 4_000_000


#: folds of the out-of-fold threshold
FOLDS = 5


def out_of_fold_threshold(z: torch.Tensor, near: np.ndarray, seed: int,
                          allowed_false_negatives: float) -> float:
    """The ``allowed_false_negatives`` quantile of p(near | θ) over the near probes, each
    predicted by a classifier that did not see it (``FOLDS`` folds).

    The in-sample quantile (sbi's rule) trusts a classifier on the points it was fitted to:
    with ~100 near probes in 28 dimensions it cut away near θ it had not seen, the truth
    included (studies/mk1_targets, target 0: p(truth) 0.02 under an in-sample
    threshold of 0.09). Out of fold, the quantile estimates the false-negative rate on new θ;
    it is taken at a 95 % lower confidence bound of the count, so a handful of near probes cut
    nothing (with a plain quantile of 20 values, the quick study's region cut its truth away).
    """
    from ..inference.train import _train_restriction

    folds = np.random.default_rng(seed).permutation(len(near)) % FOLDS
    p_held_out = np.empty(len(near))
    for fold in range(FOLDS):
        train, held_out = folds != fold, folds == fold
        if not near[train].any():
            return 0.0
        classifier, _ = _train_restriction(z[torch.as_tensor(train)], near[train], seed + fold + 1,
                                           False, allowed_false_negatives)
        classifier.eval()
        with torch.no_grad():
            logits = classifier(z[torch.as_tensor(held_out)]).squeeze(-1)
            p_held_out[held_out] = torch.sigmoid(logits).numpy()
    # cut the k smallest: k is the 5 % lower bound of how many of the near probes an
    # allowed_false_negatives rate would miss, so with few near probes nothing is cut
    from scipy.stats import binom

    cut = int(binom.ppf(0.05, int(near.sum()), allowed_false_negatives))
    return float(np.sort(p_held_out[near])[cut - 1]) if cut >= 1 else 0.0


@dataclass
class Region:
    """{θ : p(near | θ) > threshold} for one prior; θ in prior units."""

    prior: object
    classifier: torch.nn.Module
    threshold: float
    info: dict

    @classmethod
    def train(cls, prior, theta: np.ndarray, near: np.ndarray, seed: int = 0,
              allowed_false_negatives: float = 0.05, progress: bool = False,
              info: dict | None = None) -> "Region":
        from ..inference.train import _train_restriction
        from ..inference.transforms import BoxToUnconstrained

        near = np.asarray(near, bool)
        if near.sum() < 1:
            raise UserError("no probe simulation came near the target; nothing to learn a region from")
        z = BoxToUnconstrained.for_prior(prior).to_z(torch.as_tensor(prior.validate(theta))).float()
        classifier, in_sample = _train_restriction(z, near, seed, progress, allowed_false_negatives)
        classifier.eval()
        threshold = min(in_sample, out_of_fold_threshold(z, near, seed, allowed_false_negatives))
        info = (info or {}) | {"n_probes": int(len(near)), "n_near": int(near.sum()),
                               "allowed_false_negatives": allowed_false_negatives,
                               "threshold": float(threshold),
                               "in_sample_threshold": float(in_sample),
                               "threshold_rule": f"{FOLDS}-fold out-of-fold quantile"}
        return cls(prior, classifier, float(threshold), info)

    def probability(self, theta) -> np.ndarray:
        from ..inference.transforms import BoxToUnconstrained

        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        with torch.no_grad():
            z = BoxToUnconstrained.for_prior(self.prior).to_z(torch.as_tensor(theta)).float()
            return torch.sigmoid(self.classifier(z)).squeeze(-1).numpy()

    def contains(self, theta) -> np.ndarray:
        return self.probability(theta) > self.threshold

    # ---- artifact: weights as tensors (loaded with weights_only), metadata as JSON --------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(self.classifier.state_dict(), buffer)
        weights = buffer.getvalue()
        atomic_write_bytes(path / "region.pt", weights)
        write_json(path / "region.json", {"format": "automind-region", "version": 1,
                                          "prior": self.prior.to_dict(), "threshold": self.threshold,
                                          "info": self.info,
                                          "weights_sha256": hashlib.sha256(weights).hexdigest()})

    @classmethod
    def load(cls, path: str | Path) -> "Region":
        from ..inference.posterior import make_classifier
        from ..prior import Prior

        path = Path(path)
        try:
            meta = json.loads((path / "region.json").read_text())
            weights = (path / "region.pt").read_bytes()
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{path} is not a readable region artifact: {err}") from None
        if meta.get("format") != "automind-region":
            raise UserError(f"{path}: not an automind region artifact")
        if hashlib.sha256(weights).hexdigest() != meta.get("weights_sha256"):
            raise UserError(f"{path}/region.pt does not match its checksum; refusing to load it")
        prior = Prior.from_dict(meta["prior"], source=f"{path} (region prior)")
        classifier = make_classifier(prior.dim)
        classifier.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        classifier.eval()
        return cls(prior, classifier, float(meta["threshold"]), meta["info"])

    @property
    def sha256(self) -> str:
        """Content hash of the weights and threshold (the same before saving and after loading)."""
        digest = hashlib.sha256(repr(self.threshold).encode())
        for name, tensor in self.classifier.state_dict().items():
            digest.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
        return digest.hexdigest()


class TruncatedPrior:
    """The prior restricted to ``region`` and, with a posterior, to {θ : log q(θ | x_o) ≥
    log_threshold}. Sampled by rejection from the prior: exact, and a truncation of the prior,
    so NPE trained on its draws needs no proposal correction (TSNPE)."""

    def __init__(self, prior, region: Region, posterior=None, x_target=None,
                 log_threshold: float | None = None, description: dict | None = None):
        self.prior, self.region = prior, region
        self.posterior, self.x_target, self.log_threshold = posterior, x_target, log_threshold
        self.description = description or {}

    # the bank writer uses these like a Prior's
    names = property(lambda self: self.prior.names)
    dim = property(lambda self: self.prior.dim)
    sha256 = property(lambda self: self.prior.sha256)

    def to_simulator(self, theta):
        return self.prior.to_simulator(theta)

    def to_dict(self) -> dict:
        return self.prior.to_dict()

    def identity(self) -> dict:
        """What a round bank records about where its θ come from."""
        out = {"kind": "truncated prior", "region_sha256": self.region.sha256,
               "region_threshold": self.region.threshold} | self.description
        if self.posterior is not None:
            out["log_threshold"] = float(self.log_threshold)
        return out

    def contains(self, theta) -> np.ndarray:
        theta = np.atleast_2d(theta)
        keep = self.region.contains(theta)
        if self.posterior is not None and keep.any():
            logq = np.full(len(theta), -np.inf)
            logq[keep] = self.posterior.log_prob(theta[keep], self.x_target)
            keep &= logq >= self.log_threshold
        return keep

    def _first_accepted(self, rng: np.random.Generator) -> np.ndarray:
        for _ in range(MAX_DRAWS // BATCH):
            batch = self.prior.sample(BATCH, seed=rng)
            hit = np.flatnonzero(self.contains(batch))
            if len(hit):
                return batch[hit[0]]
        raise UserError(f"the truncated prior keeps less than 1 in {MAX_DRAWS:,} prior draws; "
                        "it cannot be sampled (loosen the tolerance or the truncation)")

    def sample_indexed(self, seed: int, indices) -> np.ndarray:
        """θ for bank index k: the first accepted draw of the stream (seed, k)."""
        rows = [self._first_accepted(np.random.default_rng([int(seed), int(k), 0x7E7B]))
                for k in indices]
        return np.array(rows).reshape(-1, self.prior.dim)

    def prior_mass(self, n: int = 200_000, seed: int = 0) -> tuple[float, int]:
        """(fraction of prior draws accepted, draws used): its −ln is the information the
        truncation carries, in nats."""
        draws = self.prior.sample(n, seed=seed)
        accepted = int(sum(self.contains(draws[k:k + 50_000]).sum() for k in range(0, n, 50_000)))
        return accepted / n, n


#: posterior draws used to set the truncation threshold and to estimate information
POSTERIOR_DRAWS = 20_000


class NoMassNearTarget(UserError):
    """None of a posterior's draws at the target lies in the region the probes learnt."""


def on_bounds(prior, theta: np.ndarray) -> float:
    """The share of θ rows with a parameter on a bound of the prior box (within 1e-6 of its
    width): ~0 for any proper density, most draws for a flow that extrapolates at a target
    far outside its training features (its draws saturate at the box's corners)."""
    u = prior.standardise(theta)
    low, high = prior.standardise(prior.low), prior.standardise(prior.high)
    edge = 1e-6 * (high - low)
    return float(((u <= low + edge) | (u >= high - edge)).any(1).mean()) if len(u) else 0.0


def posterior_information(posterior, x_target, contains, seed: int, truth=None) -> dict:
    """Draws of the posterior at the target, kept where ``contains`` (the region it lives in):
    their log q, the region's share of q (log_z), the share of them on the prior's bounds
    (``on_bounds``), KL(q restricted ‖ prior) in nats and, with a known truth,
    log q(θ*) − log p(θ*) of the restricted q (a proper score)."""
    raw = posterior.sample(POSTERIOR_DRAWS, x_target, seed=seed, restrict=False)
    inside = contains(raw)
    if not inside.any():
        raise NoMassNearTarget("the posterior puts no mass where the model comes near the "
                               "target; the target may lie outside what the model produces")
    kept, prior = raw[inside], posterior.prior
    log_q = posterior.log_prob(kept, x_target)
    log_z = float(np.log(inside.mean()))
    out = {"log_q": log_q, "log_z": log_z, "on_bounds": on_bounds(prior, kept),
           "nats": float(np.mean(log_q - log_z - prior.log_prob(kept)))}
    if truth is not None:
        truth = np.asarray(truth, float)[None]
        out["truth_log_ratio_nats"] = float(posterior.log_prob(truth, x_target)[0] - log_z
                                            - prior.log_prob(truth)[0]) if contains(truth)[0] \
            else float("-inf")
    return out
