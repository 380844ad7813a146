"""``automind infer``: posterior samples for a recording or a bank simulation."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError, require_new_folder
from ..progress import say
from .options import add_json, add_recording_options, count, recording_options


def register(sub) -> None:
    p = sub.add_parser("infer", help="sample a posterior for a recording or a bank simulation",
                       description="Compute the target's features with the posterior's own feature "
                                   "set and transforms, sample, and write samples.csv (names, units, "
                                   "log-probs), samples.json and a pairplot. --oversample K draws "
                                   "K·n samples and keeps the n most probable (the published trick).")
    p.add_argument("posterior", type=Path)
    p.add_argument("--recording", help="recording file (NPZ, MEA, CSV, NWB)")
    p.add_argument("--bank", help="bank holding the target simulation")
    p.add_argument("--index", type=int, default=0, help="the target simulation's index in --bank")
    p.add_argument("-n", type=count, default=1000, help="samples to keep (default 1000)")
    p.add_argument("--oversample", type=count, default=1, help="draw this many times more")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, metavar="SAMPLES", help="new folder")
    add_recording_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..inference import load_posterior
    from ..inference.misspecification import write_report
    from ..inference.runs import write_samples
    from ..inference.targets import is_bank, target_features

    if (args.recording is None) == (args.bank is None):
        raise UserError("give either --recording FILE or --bank BANK --index I")
    require_new_folder(args.out)
    posterior = load_posterior(args.posterior)
    if args.bank is not None and not is_bank(args.bank):
        raise UserError(f"{args.bank} is not a bank (no bank.json)")
    target = f"{args.bank}:{args.index}" if args.bank is not None else args.recording
    x, truth = target_features(posterior, target, **recording_options(args))
    summary = write_samples(posterior, x, truth, target, args.out, args.n, args.oversample,
                            args.seed, posterior_path=str(args.posterior))
    report = write_report(posterior, x, args.out, seed=args.seed)
    summary["misspecification"] = None if report is None else report.to_dict()
    if report is not None and report.misspecified:
        say(f"warning: {report.message()}")
    if not args.json:
        print(f"{args.n} samples for {target} in {summary['samples']} ({summary['note']}); "
              f"pairplot {summary['figure']}")
    return summary
