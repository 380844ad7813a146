"""``automind fit``: a target-focused sequential fit that ends in a consistent set.

Simulations are spent where the target is (Deistler et al. 2022, TSNPE):

1. **probe rounds**: short runs from the prior, then from the region learned so far; a
   classifier learns where runs are valid and come near the target's rate (and ISI CV);
   the region (``Region``) is an artifact;
2. **truncated rounds**: full-length runs from the prior truncated to that region, then to
   the highest-probability region of the latest posterior at the target; NPE is trained on
   all rounds with the plain maximum-likelihood loss, which is valid because every proposal
   is a truncation of the prior (the posterior is the prior-based one inside the truncation);
3. **final**: posterior samples re-simulated and accepted as in ``automind validate``;
4. **refinement** (``fit/refine.py``): those samples moved onto the consistent set by
   ensemble-Kalman steps, re-simulated each generation: the consistent set and its yield,
   then an HTML report.

Every round is a bank and every step writes its artifact before the next one starts, so
running the same command again after a crash or Ctrl-C resumes where it stopped. Layout::

    RUN/fit.json                settings, target and provenance (a resumed run must match)
    RUN/probe/rK/               probe bank K            RUN/probe/regionK/   region after K
    RUN/rounds/rK/              truncated-round bank K  RUN/rounds/posteriorK/ NPE on 1..K
    RUN/rounds/truncationK.json the log-density threshold of round K+1's truncation
    RUN/final/                  posterior samples re-simulated (samples, chunks, noise.json)
    RUN/refine/gK/              refinement generation K (a consistent-set run)
    RUN/refine/set/             the consistent set: every configuration accepted from final on
    RUN/summary.json            rounds table, yield, information in nats
    RUN/report/index.html
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import json_floats, write_json
from ..progress import sayer
from .misfit import set_size
from .plan import ABSENT, FitSettings
from .record import record_run
from .region import NoMassNearTarget, posterior_information
from .target import near_target, probe_statistics, probe_windows, target_columns, target_of



#: a round's posterior is degenerate when more than this share of its draws at the target
#: lie on the prior's bounds (``region.on_bounds``)
DEGENERATE = 0.5
#: the standardised misfit of a feature a round simulation lacks (NaN), when the final stage
#: starts from the round simulations nearest the target
MISSING_Z = 10.0


def _warn(text: str) -> None:
    import sys

    print(f"automind fit: warning: {text}", file=sys.stderr, flush=True)


def _say(progress: bool, text: str) -> None:
    sayer(progress, "fit: ")(text)


class Fit:
    """One fit run folder: settings, steps and their artifacts (see the module docstring)."""

    def __init__(self, out, spec, prior, settings: FitSettings, x_target, target: dict,
                 truth=None, workers: int = 1, dask: str | None = None, progress: bool = True,
                 recording_options: dict | None = None):
        from ..features.sets import get_feature_set

        self.out, self.spec, self.prior, self.settings = Path(out), spec, prior, settings
        self.fs = get_feature_set(settings.features)
        self.x_target, self.target = np.asarray(x_target, float), target
        # where the recording is read from now; target["source"] is its label, which a
        # resumed run keeps as the run began (the recording may have moved since)
        self.recording_path = target.get("source")
        self.truth = None if truth is None else np.asarray(truth, float)
        self.workers, self.dask, self.progress = workers, dask, progress
        self.recording_options = recording_options or {}
        self.plan = settings.split()
        self.duration = settings.duration or spec.duration
        self.rounds_log: list[dict] = []
        self.posterior_round = 0  # the last truncated round whose posterior is usable

    # ---- the run folder -----------------------------------------------------------------
    def record(self, source: str) -> None:
        """Write fit.json, or check that an existing run folder holds this same fit."""
        record = {"format": "automind-fit", "version": 1, "method": "sbi",
                  "settings": self.settings.to_dict(), "plan": self.plan,
                  "simulator": self.spec.to_dict(), "prior": self.prior.to_dict(),
                  "target": {"source": source, "x": json_floats(self.x_target)} | self.target,
                  "truth": None if self.truth is None else self.truth.tolist()}
        before = record_run(self.out, record, absent={"settings": ABSENT})
        if before is not None:
            self.target["source"] = before["target"].get("source", self.target.get("source"))

    # ---- probe rounds ----------------------------------------------------------------------
    def _bank(self, path: Path, spec, n: int, seed: int, proposal=None, screen=None):
        from ..bank import Bank, extend

        extend(path, spec, self.prior, n, seed, workers=min(self.workers, n), dask=self.dask,
               features=[self.fs.name], progress=self.progress, proposal=proposal, screen=screen)
        return Bank(path).arrays(features=self.fs.name)

    def probe(self):
        """Probe rounds; returns the final region (and logs each round)."""
        from .region import Region, TruncatedPrior

        s, spec = self.settings, self.spec.with_overrides(duration=self.settings.probe_duration)
        region, theta, status, stats = None, [], [], []
        windows = self._probe_windows(spec.duration - spec.t_analysis_start)
        for k in range(1, s.probe_rounds + 1):
            proposal = None if region is None else TruncatedPrior(self.prior, region,
                                                                   description={"probe_round": k})
            _say(self.progress, f"probe round {k}/{s.probe_rounds}: {self.plan['probe']} runs of "
                                f"{s.probe_duration:g} s" + (" from the prior" if region is None
                                                             else " from the region"))
            screen = None
            if region is None and s.cheap_screen is not None:
                from ..cheap.screen import RateWindowScreen

                screen = RateWindowScreen.for_spec(spec, self.prior, self.target["rate_mean"],
                                                   s.cheap_screen, s.cheap_table,
                                                   getattr(self.fs, "units", "all"))
            data = self._bank(self.out / "probe" / f"r{k}", spec, self.plan["probe"],
                              s.seed + 1000 * k, proposal, screen)
            theta.append(data["theta"])
            status.append(data["status"])
            stats.append(probe_statistics(data["x"], self.fs.names))
            all_theta, all_status, all_stats = (np.concatenate(v) for v in (theta, status, stats))
            near, distance = near_target(all_status, all_stats, self.target, s, windows)
            ok_now = data["status"] == "ok"
            near_now = near_target(data["status"], stats[-1], self.target, s, windows)[0]
            screened = int(np.sum(data["status"] == "screened"))
            entry = {"stage": "probe", "round": k, "duration_s": s.probe_duration,
                     "simulations": int(len(data["status"])) - screened,
                     "valid_fraction": float(ok_now.mean()),
                     "near_fraction": float(near_now.mean())}
            if screen is not None:  # drawn but not simulated: not spent from the budget
                entry["screened"] = screened
            if not near.any():
                self._nearest_probes(all_theta, all_status, all_stats, distance, windows)
            folder = self.out / "probe" / f"region{k}"
            if (folder / "region.json").is_file():
                region = Region.load(folder)
            else:
                region = Region.train(self.prior, all_theta, near, seed=s.seed + k,
                                      allowed_false_negatives=s.allowed_false_negatives,
                                      info={"round": k, "target": self.target,
                                            "probe_windows": windows,
                                            "rate_tolerance": s.rate_tolerance,
                                            "cv_tolerance": s.cv_tolerance})
                region.save(folder)
            mass = _prior_mass(TruncatedPrior(self.prior, region), s.seed + k)
            entry |= {"prior_mass": mass, "nats": float(-np.log(max(mass, 1e-300)))}
            self.rounds_log.append(entry)
            _say(self.progress, f"  valid {entry['valid_fraction']:.1%}, near the target "
                                f"{entry['near_fraction']:.1%}; the region keeps {mass:.2%} of the "
                                f"prior ({entry['nats']:.2f} nats)")
        return region

    def _probe_windows(self, length: float) -> dict | None:
        """The recording's probe statistics at the probes' analysed length, measured once
        (``probe/windows.json``; ``{}`` when the recording holds too few windows)."""
        path = self.out / "probe" / "windows.json"
        if not path.is_file():
            found = probe_windows(self.recording_path, self.settings.features, length,
                                  **self.recording_options)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, found or {})
        w = json.loads(path.read_text()) or None
        if w:
            cv = w.get("isi_cv_mean")
            _say(self.progress, f"the recording's {w['windows']} windows of {w['length_s']:g} s "
                                f"(a probe's analysed part) span rates {w['rate_mean'][0]:.3g}-"
                                f"{w['rate_mean'][1]:.3g} Hz" + (f", ISI CV {cv[0]:.3g}-{cv[1]:.3g}"
                                                                 if cv else "") +
                                " (5-95 %): probes are near within the tolerances of that range")
        return w

    def _nearest_probes(self, theta, status, stats, distance, windows) -> None:
        from ..inference.runs import write_theta_table

        order = np.argsort(np.where(np.isfinite(distance), distance, np.inf))[:20]
        path = self.out / "nearest_probes.csv"
        write_theta_table(path, self.prior, [(int(k), theta[k], (status[k], f"{stats[k, 0]:.4g}",
                                                                 f"{stats[k, 1]:.4g}",
                                                                 f"{distance[k]:.3g}"))
                                             for k in order], ["status", "rate_mean [Hz]",
                                                               "isi_cv_mean", "distance [tolerances]"])
        best, w = order[0], windows or {}
        rate = "-".join(f"{v:.3g}" for v in w.get("rate_mean", [self.target["rate_mean"]]))
        cv = "-".join(f"{v:.3g}" for v in w.get("isi_cv_mean", [self.target["isi_cv_mean"]]))
        raise UserError(
            f"no probe run came near the target (rate {rate} Hz ± "
            f"{self.settings.rate_tolerance} decades, ISI CV {cv} ± "
            f"{self.settings.cv_tolerance}): the model did not produce this recording anywhere it "
            f"looked. The nearest probe ({status[best]}, rate {stats[best, 0]:.3g} Hz, CV "
            f"{stats[best, 1]:.3g}) is {distance[best]:.2g} tolerances away; the 20 nearest are in "
            f"{path}. Widen --rate-tolerance, give more probes, or check the recording")

    # ---- truncated rounds ------------------------------------------------------------------
    def truncated_rounds(self, region):
        from ..inference.posterior import load_posterior
        from .region import TruncatedPrior

        s, spec = self.settings, self.spec.with_overrides(duration=self.duration)
        proposal, posterior, data = TruncatedPrior(self.prior, region, description={"round": 1}), None, []
        for r in range(1, s.rounds + 1):
            _say(self.progress, f"round {r}/{s.rounds}: {self.plan['round']} runs of "
                                f"{self.duration:g} s from the truncated prior")
            data.append(self._bank(self.out / "rounds" / f"r{r}", spec, self.plan["round"],
                                   s.seed + 100_000 + r, proposal))
            folder = self.out / "rounds" / f"posterior{r}"
            if (folder / "posterior.json").is_file():
                posterior = load_posterior(folder)
            else:
                posterior = self._train(data, region, spec, r)
                posterior.save(folder)
            try:
                draws = posterior_information(posterior, self.x_target, region.contains,
                                              s.seed + r, self.truth)
            except NoMassNearTarget:  # as degenerate as draws on the bounds: none usable
                draws = {"nats": float("nan"), "on_bounds": 1.0, "outside_region": True,
                         "truth_log_ratio_nats": None}
            ok_now = data[-1]["status"] == "ok"
            entry = {"stage": "truncated", "round": r, "duration_s": self.duration,
                     "simulations": int(len(ok_now)), "valid_fraction": float(ok_now.mean()),
                     "proposal_prior_mass": _prior_mass(proposal, s.seed + r),
                     "posterior_nats": draws["nats"], "posterior_on_bounds": draws["on_bounds"]}
            entry["proposal_nats"] = float(-np.log(max(entry["proposal_prior_mass"], 1e-300)))
            if self.truth is not None:
                entry["truth_log_ratio_nats"] = draws["truth_log_ratio_nats"]
            self.rounds_log.append(entry)
            self.round_data = data
            if draws["on_bounds"] > DEGENERATE:
                entry["degenerate"] = True
                where = ("its draws outside the probe region" if draws.get("outside_region") else
                         f"{draws['on_bounds']:.0%} of its draws at the target on the prior's bounds")
                _warn(f"round {r}'s posterior puts {where}: the flow extrapolates (the recording lies "
                      "outside the features these rounds simulated; see the misspecification "
                      "check)" + (f"; round {r + 1} keeps round {r}'s proposal"
                                  if r < s.rounds else "")
                      + (f"; the fit uses round {self.posterior_round}'s posterior"
                         if self.posterior_round else ""))
                if self.posterior_round:
                    posterior = load_posterior(self.out / "rounds" / f"posterior{self.posterior_round}")
                continue
            self.posterior_round = r
            entry["log_threshold"] = log_threshold = self._truncation(r, draws["log_q"])
            _say(self.progress, f"  valid {entry['valid_fraction']:.1%}; posterior "
                                f"{entry['posterior_nats']:.2f} nats from the prior")
            proposal = TruncatedPrior(self.prior, region, posterior, self.x_target, log_threshold,
                                      description={"round": r + 1,
                                                   "posterior": f"rounds/posterior{r}",
                                                   "hpr_epsilon": s.hpr_epsilon})
        if not self.posterior_round:
            _warn(f"every round's posterior is degenerate; the fit goes on with round "
                  f"{s.rounds}'s (expect few or no consistent samples)")
            self.posterior_round = s.rounds
        return posterior

    def _truncation(self, r: int, log_q: np.ndarray) -> float:
        """The log-density threshold of round r's highest-probability region, stored once so
        that a resumed run truncates exactly as the interrupted one did."""
        file = self.out / "rounds" / f"truncation{r}.json"
        if file.is_file():
            return float(json.loads(file.read_text())["log_threshold"])
        value = float(np.quantile(log_q, self.settings.hpr_epsilon))
        write_json(file, {"log_threshold": value, "hpr_epsilon": self.settings.hpr_epsilon,
                          "draws": int(len(log_q))})
        return value

    def _train(self, data: list, region, spec, r: int):
        from ..inference.train import train

        theta = np.concatenate([d["theta"] for d in data])
        x = target_columns(np.concatenate([d["x"] for d in data]), self.x_target)
        status = np.concatenate([d["status"] for d in data])
        options = {"seed": self.settings.seed + r, "progress": self.progress,
                   "batch_size": min(256, max(32, len(theta) // 20))} | self.settings.training
        posterior = train(theta, x, self.prior, valid=status == "ok", restriction=False,
                          feature_info={"set": self.fs.name} | self.fs.metadata(),
                          provenance={"simulator": spec.to_dict(), "fit": str(self.out),
                                      "fit_round": r}, **options)
        # the posterior lives inside the probe region: its restriction is the region, so
        # sampling it (here, in `automind infer`, `invariance`, ...) stays there
        posterior.restriction = region.classifier
        posterior.model["restriction_threshold"] = region.threshold
        posterior.model["restriction_kind"] = "fit region: ok and near the target"
        posterior.metrics["restriction"] = True
        return posterior

    def misspecification(self) -> dict:
        """Is the target inside what the truncated rounds produced (their valid runs, the
        simulations nearest to it)? Written to misspecification.json; a warning when not."""
        from ..inference.misspecification import check_misspecification

        x = np.concatenate([d["x"][d["status"] == "ok"] for d in self.round_data])
        # the features the posterior conditions on: the target has them, most runs too
        used = np.isfinite(self.x_target) & (np.isfinite(x).mean(0) >= 0.5)
        report = check_misspecification(self.x_target, x, self.fs.names, self.fs.log10,
                                        columns=np.flatnonzero(used), seed=self.settings.seed)
        write_json(self.out / "misspecification.json", report.to_dict(), sort_keys=False)
        if report.misspecified:
            _warn(report.message())
        return report.to_dict()

    def misfit(self, posterior) -> dict:
        """The features the closest re-simulations (final validation, refinement) still miss
        (``fit.misfit``); said when the fit found no consistent configuration."""
        from .misfit import closest_misfit, describe

        generations = sorted((self.out / "refine").glob("g*"), key=lambda g: int(g.name[1:]))
        names = np.asarray(posterior.features["names"])[posterior.model["feature_columns"]]
        target = posterior.prepare_x(self.x_target)[0].numpy().astype(np.float64)
        misfit = closest_misfit([self.out / "final", *generations], target, names,
                                self.settings.threshold)
        write_json(self.out / "misfit.json", misfit, sort_keys=False)
        return misfit | {"description": describe(misfit)}

    # ---- final -----------------------------------------------------------------------------
    def final(self, posterior) -> dict:
        from ..invariance.consistent import find_consistent_set

        n = self.plan["final"]
        _say(self.progress, f"final: re-simulating {n} posterior samples (+{self.plan['noise']} "
                            "noise repeats)")
        folder = self.out / "rounds" / f"posterior{self.posterior_round}"
        samples = None
        if not (self.out / "final" / "samples.npy").is_file():
            samples = self._final_samples(posterior, n)
        found = find_consistent_set(posterior, self.x_target, self.out / "final", n,
                                    samples=samples,
                                    truth=self.truth, target=self.target.get("source", ""),
                                    seed=self.settings.seed + 7, threshold=self.settings.threshold,
                                    workers=self.workers, dask=self.dask, progress=self.progress,
                                    posterior_path=str(folder.resolve()),
                                    target_sd=self.target.get("window_sd"))
        return found

    def _final_samples(self, posterior, n: int) -> np.ndarray:
        """The posterior's n samples at the target (the seed ``find_consistent_set`` would
        use); where it has no mass inside the probe region (every round's posterior
        extrapolates: the target lies beyond what the rounds simulated), the n valid round
        simulations nearest the target instead, so that refinement starts from the closest
        networks found. Which one is recorded in final/samples_source.json."""
        from ..features.sets import transform_features
        from ..inference.posterior import TooFewSamples

        source = self.out / "final" / "samples_source.json"
        source.parent.mkdir(parents=True, exist_ok=True)
        try:
            samples = posterior.sample(n, self.x_target, seed=self.settings.seed + 7)
            write_json(source, {"source": "posterior"})
            return samples
        except TooFewSamples as err:
            reason = str(err)
        theta = np.concatenate([d["theta"] for d in self.round_data])
        x = np.concatenate([d["x"] for d in self.round_data])
        ok = np.concatenate([d["status"] for d in self.round_data]) == "ok"
        if not ok.any():
            raise UserError(f"fit: {reason}; and no truncated-round simulation is valid to start "
                            "from instead") from None
        columns = posterior.model["feature_columns"]
        transforms = posterior.features["transforms"]
        t = transform_features(x[ok], transforms)[:, columns]
        target = transform_features(self.x_target[None], transforms)[0, columns]
        scale = np.nanstd(t, 0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        z = np.nan_to_num((t - target) / scale, nan=MISSING_Z)  # a feature a run lacks: far
        order = np.argsort(np.sqrt((z ** 2).mean(1)), kind="stable")
        chosen = theta[ok][np.resize(order[:n], n)]  # fewer valid runs than n: each again
        write_json(source, {"source": "nearest round simulations", "reason": reason,
                            "valid_round_simulations": int(ok.sum())})
        _warn(f"{reason}. The final stage starts from the {min(n, int(ok.sum()))} valid "
              "truncated-round simulations nearest the target instead (final/samples_source.json)")
        return chosen

    def explore(self, posterior, start: dict) -> tuple[list[dict], dict]:
        from .explore import explore

        if not self.settings.explore or set_size(start) < 2:
            return [], {}
        _say(self.progress, f"exploration: {self.settings.explore} generations of "
                            f"{self.plan['explore']} outward proposals")
        folder = self.out / "rounds" / f"posterior{self.posterior_round}"
        rows, found = explore(posterior, self.x_target, self.out / "explore",
                              Path(start["consistent_set"]).parent, self.settings.explore,
                              self.plan["explore"], seed=self.settings.seed + 13,
                              threshold=self.settings.threshold, workers=self.workers,
                              dask=self.dask, progress=self.progress,
                              posterior_path=str(folder.resolve()),
                              space=self.settings.refine_space)
        for row in rows:
            _say(self.progress, f"  generation {row['round']}: {row['new_consistent']} new "
                                f"consistent configurations, set of {row['set_size']}")
        return rows, found

    def refine(self, posterior) -> tuple[list[dict], dict]:
        from .refine import NothingToRefine, refine

        if not self.settings.refine:
            return [], {}
        until = self.settings.refine_until
        _say(self.progress, f"refinement: {self.settings.refine} generations of "
                            f"{self.plan['refine']} moved samples" +
                            (f" at most, until a yield of {until:g}" if until else ""))
        folder = self.out / "rounds" / f"posterior{self.posterior_round}"
        try:
            rows, found = refine(posterior, self.x_target, self.out / "refine", self.out / "final",
                                 self.settings.refine, seed=self.settings.seed + 11,
                                 threshold=self.settings.threshold, workers=self.workers,
                                 dask=self.dask, progress=self.progress,
                                 posterior_path=str(folder.resolve()),
                                 step=self.settings.refine_step,
                                 space=self.settings.refine_space, until=until)
        except NothingToRefine as err:  # no two final samples simulate validly
            _warn(f"no refinement: {err}")
            return [], {}
        for row in rows:
            d = row["median_distance"]
            _say(self.progress, f"  generation {row['round']}: yield {row['yield']:.2f}, valid "
                                f"{row['valid_fraction']:.0%}, median distance " +
                                (f"{d:.2f} noise sd" if np.isfinite(d) else
                                 "inf (most runs invalid or missing a feature the target has)"))
        return rows, found


def _prior_mass(proposal, seed: int) -> float:
    return proposal.prior_mass(n=100_000, seed=seed)[0]


def fit(recording, out, simulator: str = "mk1", prior: str | None = None,
        features: str = "mk1_compact", budget: int = 10_000, workers: int | None = None,
        dask: str | None = None, progress: bool = True, report: bool = True,
        recording_options: dict | None = None, spec_overrides: dict | None = None,
        truth=None, **settings) -> dict:
    """Fit ``simulator`` to a recording (file or BANK:INDEX): probe rounds, truncated rounds,
    final consistent set. Resumable: the same call on the same ``out`` continues it.
    ``settings``: the fields of ``FitSettings``; ``truth``: the θ of a simulated recording, when
    known (read from the bank for BANK:INDEX). Returns the summary (also summary.json)."""
    from ..invariance.consistent import set_spread
    from ..prior import Prior
    from ..simulators import SimulatorSpec
    from ..simulators.execution import default_workers
    from ..simulators.simulator import check_prior_fits

    settings = FitSettings(budget=budget, features=features, **settings)
    spec = simulator if isinstance(simulator, SimulatorSpec) else SimulatorSpec.load(simulator)
    spec = spec.with_overrides(**(spec_overrides or {}))
    prior_obj = Prior.load(prior or spec.prior)
    check_prior_fits(spec, prior_obj)
    analysed = (settings.duration or spec.duration) - spec.t_analysis_start
    x, target, bank_truth, features = target_of(recording, features, analysed,
                                                settings.target_window, **(recording_options or {}))
    settings = replace(settings, features=features)
    if "window_s" in target:
        _say(progress, f"the recording lasts {target['windows']} simulated runs: fitting its "
                       f"window {target['window_s'][0]:g}-{target['window_s'][1]:g} s, its "
                       "window-to-window spread added to the acceptance noise")
    truth = bank_truth if truth is None else prior_obj.validate(truth)[0]
    run = Fit(out, spec, prior_obj, settings, x, target | {"source": str(recording)}, truth,
              workers or default_workers(), dask, progress, recording_options)
    run.record(str(recording))
    region = run.probe()
    posterior = run.truncated_rounds(region)
    misspecification = run.misspecification()
    posterior_found = run.final(posterior)
    refinement, refined = run.refine(posterior)
    found = refined or posterior_found
    misfit = run.misfit(posterior)
    if not set_size(found):
        _warn(f"no consistent configuration: {misfit['description']}")
    exploration, explored = run.explore(posterior, found)
    spent = (sum(e["simulations"] for e in run.rounds_log + refinement + exploration)
             + posterior_found["n_simulated"] + run.plan["noise"])
    used = next(e for e in run.rounds_log  # the round whose posterior the fit went on with
                if e["stage"] == "truncated" and e["round"] == run.posterior_round)
    summary = {"run": str(run.out), "yield": found["yield"], "n_consistent": found["n_consistent"],
               "n_simulated_final": found["n_simulated"], "simulations": spent,
               "budget": settings.budget, "rounds": run.rounds_log,
               "posterior_yield": posterior_found["yield"], "refinement": refinement,
               "final_samples_from": _final_source(run.out),
               "exploration": exploration,
               "consistent_set_folder": str(Path((explored or found)["consistent_set"]).parent),
               "posterior": str(run.out / "rounds" / f"posterior{run.posterior_round}"),
               "consistent_set": (explored or found)["consistent_set"],
               "set_size": explored.get("set_size", set_size(found)),
               "last_generation_folder": found.get("last_generation",
                                                   str(Path(found["consistent_set"]).parent)),
               "nats": used["posterior_nats"],
               "misspecified": misspecification["misspecified"],
               "out_of_range_features": [o["name"] for o in misspecification["out_of_range"]],
               "closest_misfit": misfit,
               "probe_region_nats": next(e["nats"] for e in reversed(run.rounds_log)
                                         if e["stage"] == "probe")}
    summary |= set_spread(summary["consistent_set_folder"], prior_obj, truth)
    if truth is not None:
        summary |= _truth_checks(run, posterior)
    write_json(run.out / "summary.json", summary, sort_keys=False)
    if report:
        from .report import write_fit_report

        summary["report"] = str(write_fit_report(run, posterior, summary))
        write_json(run.out / "summary.json", summary, sort_keys=False)
    return summary


def _final_source(out: Path) -> str:
    """Where the final stage's samples came from (runs made before this was recorded: the
    posterior)."""
    file = out / "final" / "samples_source.json"
    return json.loads(file.read_text())["source"] if file.is_file() else "posterior"


def _truth_checks(run: Fit, posterior) -> dict:
    """For targets with a known θ: the truth's own re-simulations accepted (from the noise
    repeats at the truth) and its marginal posterior quantiles."""
    noise = json.loads((run.out / "final" / "noise.json").read_text())
    samples = np.load(run.out / "final" / "samples.npy")
    quantiles = (samples < run.truth[None]).mean(0)
    out = {"truth_quantiles": dict(zip(run.prior.names, quantiles.round(4).tolist())),
           "truth_in_90pct_intervals": int(((quantiles > 0.05) & (quantiles < 0.95)).sum()),
           "truth_log_ratio_nats": next(
               e for e in run.rounds_log if e["stage"] == "truncated"
               and e["round"] == run.posterior_round).get("truth_log_ratio_nats")}
    if noise.get("reference") == "truth" and "reference_accepted" in noise:
        out["truth_resimulations_accepted"] = float(np.mean(noise["reference_accepted"]))
    return out
