"""``TrainingConfig``: how a posterior is trained, validated once and recorded in the artifact.

Frozen and keyword-only: ``train(θ, x, prior, config=TrainingConfig(hidden_features=32))``
or ``train(θ, x, prior, hidden_features=32)`` (keywords build the config). Every field is
checked when the config is made, so a bad value fails before any training, with one line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from ..errors import UserError

ESTIMATORS = ("auto", "nsf", "maf", "zuko_nsf", "zuko_maf", "mdn")
#: ``estimator = "auto"``: the spline flow for priors trained on θ itself (torch / sbi
#: distributions) with up to this many parameters, the affine flow otherwise (sampling
#: inverts the flow one dimension at a time, and a spline pass costs far more)
AUTO_NSF_MAX_DIM = 5
#: ``num_transforms = "auto"``: this many spline transforms (on ``slcp`` 3 reach a C2ST
#: 0.01 below sbi's NPE in 0.64× its training time, 5 took 1.1×), 5 affine ones
AUTO_TRANSFORMS = {"nsf": 3, "zuko_nsf": 3}
AUTO_TRANSFORMS_DEFAULT = 5
EMBEDDINGS = ("auto", "none", "mlp", "cnn")
THETA_SPACES = ("auto", "bijection", "none")


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    #: sbi density estimator (posterior_nn model); "auto": zuko_nsf where θ itself is
    #: modelled (theta_space none) with at most AUTO_NSF_MAX_DIM parameters, else zuko_maf
    estimator: str = "auto"
    #: where the flow models θ: "bijection" maps the prior's support onto R^d (logit of the
    #: box, log-aware for automind priors); "none" is θ itself with samples outside the
    #: support rejected (sbi's NPE); "auto": bijection for automind priors, none otherwise
    theta_space: str = "auto"
    embedding: str = "auto"              # embedding net for x: auto = mlp above 64 features
    ensemble: int = 1                    # estimators with seeds seed, seed+1, ...; equal mixture
    hidden_features: int = 50
    #: flow layers; "auto": 3 for spline flows (nsf, zuko_nsf), 5 otherwise
    num_transforms: int | str = "auto"
    batch_size: int = 256
    learning_rate: float = 5e-4
    max_epochs: int = 300
    patience: int = 20                   # epochs without a better validation loss before stopping
    #: a validation loss counts as better when it is below the best by more than this
    min_improvement: float = 1e-4
    #: learning rate × lr_decay after lr_decay_patience epochs without a better validation
    #: loss (restarting from the best weights); 1 = a constant learning rate
    lr_decay: float = 1.0
    lr_decay_patience: int = 10
    validation_fraction: float = 0.1
    seed: int = 0
    restriction: bool = True             # train p(valid | θ) when some simulations are invalid
    allowed_false_negatives: float = 0.1

    def __post_init__(self):
        def need(ok: bool, what: str):
            if not ok:
                raise UserError(f"training configuration: {what}")

        need(self.estimator in ESTIMATORS, f"estimator must be one of {', '.join(ESTIMATORS)}, "
             f"not {self.estimator!r}")
        need(self.theta_space in THETA_SPACES, f"theta_space must be one of "
             f"{', '.join(THETA_SPACES)}, not {self.theta_space!r}")
        need(self.embedding in EMBEDDINGS, f"embedding must be one of {', '.join(EMBEDDINGS)}, "
             f"not {self.embedding!r}")
        for name in ("ensemble", "hidden_features", "num_transforms", "batch_size", "max_epochs",
                     "patience", "lr_decay_patience"):
            value = getattr(self, name)
            if name == "num_transforms" and value == "auto":
                continue
            kind = 'a positive integer or "auto"' if name == "num_transforms" else \
                "a positive integer"
            need(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                 f"{name} must be {kind}, not {value!r}")
        need(isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
             f"seed must be a non-negative integer, not {self.seed!r}")
        need(isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1,
             f"learning_rate must be in (0, 1), not {self.learning_rate!r}")
        need(isinstance(self.min_improvement, (int, float)) and self.min_improvement >= 0,
             f"min_improvement must be >= 0, not {self.min_improvement!r}")
        need(isinstance(self.lr_decay, (int, float)) and 0 < self.lr_decay <= 1,
             f"lr_decay must be in (0, 1], not {self.lr_decay!r}")
        need(isinstance(self.validation_fraction, (int, float))
             and 0 < self.validation_fraction < 0.5,
             f"validation_fraction must be in (0, 0.5), not {self.validation_fraction!r}")
        need(isinstance(self.allowed_false_negatives, (int, float))
             and 0 <= self.allowed_false_negatives < 1,
             f"allowed_false_negatives must be in [0, 1), not {self.allowed_false_negatives!r}")
        need(isinstance(self.restriction, bool), f"restriction must be True or False, not "
             f"{self.restriction!r}")

    @classmethod
    def from_options(cls, config: "TrainingConfig | None" = None, **options) -> "TrainingConfig":
        """``config`` (default: the defaults) with ``options`` replaced; unknown names refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UserError(f"unknown training option(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(known))}")
        return replace(config or cls(), **options)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingConfig":
        return cls.from_options(**data)

    def resolved_estimator(self, prior) -> str:
        if self.estimator != "auto":
            return self.estimator
        on_theta = self.resolved_theta_space(prior) == "none"
        return "zuko_nsf" if on_theta and prior.dim <= AUTO_NSF_MAX_DIM else "zuko_maf"

    def resolved_num_transforms(self, prior) -> int:
        if self.num_transforms != "auto":
            return self.num_transforms
        return AUTO_TRANSFORMS.get(self.resolved_estimator(prior), AUTO_TRANSFORMS_DEFAULT)

    def resolved_theta_space(self, prior) -> str:
        from ..prior import Prior

        if self.theta_space != "auto":
            return self.theta_space
        return "bijection" if isinstance(prior, Prior) else "none"

    def to_dict(self) -> dict:
        return asdict(self)
