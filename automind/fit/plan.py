"""What a fit will do: its settings, validated once, and how the budget splits into rounds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import UserError
from ..inference.noise import REPEATS
from .refine import REFINE_UNTIL, STEPS
from .space import SPACES

#: simulations re-run at the noise reference to set the acceptance's noise model
NOISE_REPEATS = REPEATS
#: smallest useful round: below this a classifier or a flow learns nothing
MIN_PROBE_ROUND = 100
MIN_ROUND = 100
MIN_FINAL = 20


#: refinement settings a fit.json written before the option existed did not record: the
#: value such a run used (refine_space: the default until session 18; refine_until: every
#: generation ran until session 19), kept out of fit.json so that those runs resume (with the
#: option given explicitly where the default changed)
ABSENT = {"refine_step": "full", "refine_space": "prior", "refine_until": None}

#: the ``FitSettings`` fields a study's [fit] table may set (the study gives budget, features
#: and each fit's seed itself; exploration runs as a study stage of its own)
STUDY_FIT_KEYS = ("probe_rounds", "probe_fraction", "rounds", "probe_duration", "rate_tolerance",
                  "cv_tolerance", "refine", "refine_step", "refine_space", "refine_until",
                  "final_samples")


def study_fit_options(settings: dict) -> dict:
    """The ``STUDY_FIT_KEYS`` a study's settings give, as keyword arguments of ``fit``."""
    return {key: settings[key] for key in STUDY_FIT_KEYS if key in settings}


@dataclass(frozen=True)
class FitSettings:
    """Everything that decides a fit's result (recorded in fit.json; a resumed run must match).

    Probe rounds run ``probe_duration`` s from the prior (then from the region learned so far)
    and label a run *near* when it is ``ok`` and its log10 mean rate lies within
    ``rate_tolerance`` decades of the target's (and its mean ISI CV within ``cv_tolerance``
    where both have one). Truncated rounds run ``duration`` s (None: the simulator's) from the
    prior restricted to that region, then to the 1 − ``hpr_epsilon`` highest-probability region
    of the latest posterior at the target. ``final_samples`` posterior samples are re-simulated
    and accepted within ``threshold`` noise sd (as ``automind validate``). ``cheap_screen``
    (decades; None = off): the first probe round simulates only draws the cheap model
    (docs/cheap.md) predicts ``ok`` within that many decades of the target's rate; the others
    are bank rows with status ``screened``, which the region learns as not near
    (``cheap_table``: a table folder or "analytic"; None: the built table). ``refine``
    generations at most move the final samples onto the target, stopping after the first whose
    yield reaches ``refine_until`` (None or "never": run them all) (``fit/refine.py``;
    ``refine_step``: the "full" Kalman step (default), a per-member "adaptive" one, "select",
    or "hold" (accepted members stay); ``refine_space``: "log" (default) moves positive
    parameters spanning a decade on a log scale, "prior" on the prior's own, ``fit/space.py``);
    ``explore``
    generations grow the consistent set outwards from them (``fit/explore.py``); each
    generation simulates as many runs as the final validation. ``target_window``: "auto" fits
    a recording at least three simulated runs long on one window of their analysed length and
    adds the recording's window-to-window spread to the acceptance noise
    (``recordings/windows.py``); "whole" fits the whole recording.
    """

    budget: int
    features: str = "mk1_compact"
    seed: int = 0
    probe_rounds: int = 2
    probe_fraction: float = 0.35
    probe_duration: float = 1.0
    rounds: int = 3
    duration: float | None = None
    final_samples: int | None = None
    rate_tolerance: float = 0.2
    cv_tolerance: float = 0.5
    allowed_false_negatives: float = 0.05
    hpr_epsilon: float = 1e-3
    threshold: float = 2.0
    training: dict = field(default_factory=dict)
    cheap_screen: float | None = None
    cheap_table: str | None = None
    refine: int = 6
    refine_step: str = "full"
    refine_space: str = "log"
    refine_until: float | None = REFINE_UNTIL
    explore: int = 0
    target_window: str = "auto"

    def __post_init__(self):
        if self.refine_until == "never":  # how a study.toml, which has no None, says it
            object.__setattr__(self, "refine_until", None)
        checks = [(self.budget >= 1, "budget must be >= 1"),
                  (1 <= self.probe_rounds <= 5, "probe_rounds must be 1..5"),
                  (0 < self.probe_fraction < 1, "probe_fraction must be in (0, 1)"),
                  (self.probe_duration > 0, "probe_duration must be > 0"),
                  (1 <= self.rounds <= 10, "rounds must be 1..10"),
                  (self.duration is None or self.duration > 0, "duration must be > 0"),
                  (self.final_samples is None or self.final_samples >= MIN_FINAL,
                   f"final_samples must be >= {MIN_FINAL}"),
                  (self.rate_tolerance > 0, "rate_tolerance must be > 0 (decades)"),
                  (self.cv_tolerance > 0, "cv_tolerance must be > 0"),
                  (0 <= self.allowed_false_negatives < 0.5, "allowed_false_negatives must be in [0, 0.5)"),
                  (0 < self.hpr_epsilon < 0.5, "hpr_epsilon must be in (0, 0.5)"),
                  (self.threshold > 0, "threshold must be > 0"),
                  (self.cheap_screen is None or self.cheap_screen > 0,
                   "cheap_screen must be > 0 (decades)"),
                  (self.cheap_table is None or self.cheap_screen is not None,
                   "cheap_table is the cheap screen's table: give cheap_screen too"),
                  (0 <= self.refine <= 20, "refine must be 0..20 generations"),
                  (self.refine_step in STEPS, f"refine_step must be one of {', '.join(STEPS)}"),
                  (self.refine_space in SPACES,
                   f"refine_space must be one of {', '.join(SPACES)}"),
                  (self.refine_until is None or 0 < self.refine_until <= 1,
                   "refine_until must be a yield in (0, 1] (or None: every generation)"),
                  (0 <= self.explore <= 20, "explore must be 0..20 generations"),
                  (self.target_window in ("auto", "whole"), "target_window must be auto or whole")]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def to_dict(self) -> dict:
        out = asdict(self)
        for option in ("cheap_screen", "cheap_table"):  # off: fit.json stays as before
            if out[option] is None:
                del out[option]
        for stage in ("refine", "explore"):  # off: fit.json stays as before the stage existed
            if out[stage] == 0:
                del out[stage]
        for option, value in ABSENT.items():  # what a fit.json without the key meant
            if out[option] == value:
                del out[option]
        if out["target_window"] == "auto":  # the default: fit.json stays as before the option
            del out["target_window"]
        return out

    def split(self) -> dict:
        """Simulations per probe round, per truncated round, for the final validation (whose
        noise repeats are included) and per refinement or exploration generation; a UserError
        when the budget is below one round. Refinement reserves its ``refine`` generations;
        those it skips once ``refine_until`` is reached are not spent."""
        plan = self._split(self.budget)
        if not _enough(plan):
            least = next(b for b in range(self.budget, 10**7, 10) if _enough(self._split(b)))
            raise UserError(f"a budget of {self.budget} simulations is below one round of each "
                            f"kind ({self.probe_rounds} probe and {self.rounds} truncated rounds "
                            f"of >= {MIN_ROUND} runs, the final validation, {self.refine} "
                            f"refinement and {self.explore} exploration generations): give "
                            f"--budget >= {least} or fewer rounds")
        return plan

    def _split(self, budget: int) -> dict:
        final = self.final_samples or min(400, max(MIN_FINAL * 2, round(0.06 * budget)))
        probe = int(self.probe_fraction * budget) // self.probe_rounds
        last = final * (1 + self.refine + self.explore) + NOISE_REPEATS
        rounds = (budget - probe * self.probe_rounds - last) // self.rounds
        plan = {"probe": probe, "round": rounds, "final": final, "noise": NOISE_REPEATS,
                "total": probe * self.probe_rounds + rounds * self.rounds + last}
        return plan | ({"refine": final} if self.refine else {}) | (
            {"explore": final} if self.explore else {})


def _enough(plan: dict) -> bool:
    return plan["probe"] >= MIN_PROBE_ROUND and plan["round"] >= MIN_ROUND and plan["final"] >= MIN_FINAL
