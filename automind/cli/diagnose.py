"""``automind diagnose``: calibration and recovery on held-out simulations."""

from __future__ import annotations

from pathlib import Path

from .options import add_json, add_recording_options, count, recording_options


def register(sub) -> None:
    p = sub.add_parser("diagnose", help="calibration and recovery on held-out simulations",
                       description="Marginal (SBC) and flow-latent coverage, TARP, information "
                                   "in nats (vs shuffled x and validity), contraction along the "
                                   "posterior's principal directions, per-parameter contraction "
                                   "and recovery error on a held-out bank; θ-space HPD coverage "
                                   "is kept in the report as hpd_coverage.")
    p.add_argument("posterior", type=Path)
    p.add_argument("--bank", type=Path, required=True, help="held-out bank with the feature set")
    p.add_argument("--cases", type=count, default=300, help="held-out simulations to use")
    p.add_argument("--near", metavar="RECORDING",
                   help="calibration where this target is: the --cases held-out simulations "
                        "whose features lie nearest its (each feature scaled by its robust sd "
                        "over the bank); choosing cases by their features keeps an exact "
                        "posterior's coverage exact, so a shortfall here is over-confidence at "
                        "the target")
    p.add_argument("--samples", type=count, default=200, help="posterior samples per case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="coverage figure (default: in the posterior folder)")
    add_recording_options(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..inference import load_posterior
    from ..inference.diagnostics import headline
    from ..inference.runs import diagnose_on_bank
    from ..inference.targets import target_features

    posterior = load_posterior(args.posterior)
    near = None if args.near is None else \
        target_features(posterior, args.near, **recording_options(args))[0]
    report = diagnose_on_bank(posterior, args.bank, args.cases, args.samples, args.seed,
                              figure=args.out, posterior_path=args.posterior, near=near)
    if not args.json:
        print(f"{headline(report)}; figure {report['figure']}")
        spectrum = report["principal_contraction"]["spectrum"]
        print("  contraction along the posterior's principal directions: "
              + " ".join(f"{v:.2f}" for v in spectrum[:8]) + (" ..." if len(spectrum) > 8 else ""))
        for p in posterior.prior.names:
            print(f"  {p:16s} contraction {report['contraction'][p]:6.2f}   recovery NRMSE "
                  f"{report['recovery_nrmse'][p]:.3f}")
    return {k: v for k, v in report.items() if k not in ("sbc_ranks",)}
