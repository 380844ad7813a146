"""``automind simulate``: create, extend or resume a simulation bank."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..progress import say
from .options import add_json, add_simulation_options, count, load_setup, workers


def register(sub) -> None:
    p = sub.add_parser("simulate", help="create, extend or resume a simulation bank",
                       description="Make the bank BANK hold simulations 0..n-1 of θ drawn from the "
                                   "prior: creates it, adds what is missing, or resumes after a "
                                   "crash (re-run the same command). Simulation k's θ and seed "
                                   "derive from --seed and k. The model is compiled once and "
                                   "cached. Every simulation gets a status: ok, silent, runaway, "
                                   "timeout or failed.")
    add_simulation_options(p, "mk1")
    p.add_argument("-n", type=count, required=True,
                   help="the bank's target size: simulations 0..n-1")
    p.add_argument("--out", type=Path, required=True, metavar="BANK", help="bank folder")
    p.add_argument("--keep-spikes", action="store_true",
                   help="also store compact spike trains (needed to compute new feature sets)")
    p.add_argument("--features", action="append", metavar="SET",
                   help="compute this feature set while simulating (repeatable: spikes, psd, "
                        "bursts, mk1)")
    p.add_argument("--backend", choices=("brian2", "torch"),
                   help="simulation back end (default: the spec's; torch: automind.rsnn, MK1 only)")
    p.add_argument("--device", help="torch back end: cpu or cuda (default: the spec's [torch])")
    p.add_argument("--batch", type=count, help="torch back end: θ simulated at once (default 32)")
    p.add_argument("--screen", metavar="cheap[:low=A,high=B,table=T|classifier=F]",
                   help="skip θ the cheap model predicts silent or runaway (predicted ν_E·t_ref "
                        "outside [A, B], default the early-stop thresholds; or, with "
                        "classifier=F, what the status classifier saved by automind cheap check "
                        "--save-classifier F calls silent or runaway); they are kept as rows "
                        "with status 'screened' (docs/cheap.md)")
    add_json(p)
    p.set_defaults(func=run)


def with_backend(spec, args):
    """The spec with --backend / --device / --batch applied (the latter two need torch)."""
    backend = args.backend or spec.backend
    torch_settings = dict(spec.torch) | {k: v for k, v in (("device", args.device),
                                                          ("batch", args.batch)) if v is not None}
    if torch_settings and backend != "torch":
        raise UserError("--device and --batch apply to the torch back end (add --backend torch)")
    if backend == "torch" and str(torch_settings.get("device", "cpu")).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available on this machine")
    return spec.with_overrides(backend=backend, torch=torch_settings if backend == "torch" else {})


def run(args) -> dict:
    from ..bank import Bank, extend

    spec, prior = load_setup(args)
    spec = with_backend(spec, args)
    screen = None
    if args.screen:
        from ..cheap.screen import BankScreen

        screen = BankScreen.parse(args.screen, spec, prior)
    say(f"compiling or loading the {spec.model} simulator (N={spec.N}, dt={spec.dt * 1e3:g} ms) ...")
    report = extend(args.out, spec, prior, args.n, args.seed,
                    workers=min(workers(args), args.n), dask=args.dask,
                    keep_spikes=args.keep_spikes or None, chunk_size=args.chunk_size,
                    features=args.features, progress=not args.json, screen=screen)
    info = Bank(args.out).info()
    summary = {"bank": str(args.out), "added": report["added"], "total": info["total"],
               "by_status": info["by_status"], "notes": report["notes"]}
    if not args.json:
        for note in report["notes"]:
            say(f"note: {note}")
        print(f"bank {args.out}: {report['added']} simulations added, {info['total']} in total ("
              + ", ".join(f"{k} {v}" for k, v in info["by_status"].items()) + ")")
    return summary
