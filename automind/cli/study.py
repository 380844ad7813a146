"""``automind study run``: a ready-made study from studies/."""

from __future__ import annotations

from pathlib import Path

from .options import add_json, count


def register(sub) -> None:
    study = sub.add_parser("study", help="run a ready-made study from studies/").add_subparsers(
        dest="study_command", required=True, metavar="ACTION")
    p = study.add_parser("run", help="run studies/NAME: simulate, train, analyse, write figures",
                         description="Run the study whose study.toml is in FOLDER and write its "
                                     "figures and results.json to FOLDER/results (or --out).")
    p.add_argument("folder", type=Path, help="study folder, e.g. studies/brunel_phase")
    p.add_argument("--out", type=Path, help="results folder (default: FOLDER/results)")
    p.add_argument("--workers", type=count, help="local worker processes (default: all cores)")
    p.add_argument("--quick", action="store_true",
                   help="toy sizes (minutes): check the pipeline, not the science")
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..studies import run_study

    summary = run_study(args.folder, out=args.out, workers=args.workers, quick=args.quick,
                        progress=not args.json)
    if not args.json:
        print(f"study {args.folder} ({summary['kind']}): results in {summary['out']}")
    return summary
