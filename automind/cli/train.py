"""``automind train``: a neural posterior estimator trained on a bank."""

from __future__ import annotations

from pathlib import Path

from ..errors import require_new_folder
from .options import add_json, count


def register(sub) -> None:
    p = sub.add_parser("train", help="train a neural posterior estimator on a bank",
                       description="Train p(θ | x) on a bank's feature set (sbi estimators, our "
                                   "loop; θ in the prior box mapped to R^d). Invalid simulations "
                                   "train a restriction classifier. Writes a posterior artifact "
                                   "(weights + JSON, never pickle) with its training curve.")
    p.add_argument("bank", type=Path, help="bank folder")
    p.add_argument("--features", required=True, metavar="SET", help="feature set to condition on")
    p.add_argument("--out", type=Path, required=True, metavar="POSTERIOR", help="new artifact folder")
    p.add_argument("--estimator", default="auto",
                   help="auto (default: zuko_maf for a bank's prior), zuko_maf, maf, nsf, "
                        "zuko_nsf, mdn (see docs/inference.md)")
    p.add_argument("--embedding", default="auto", choices=("auto", "none", "mlp", "cnn"),
                   help="embedding net for x (auto: an MLP above 64 features)")
    p.add_argument("--ensemble", type=count, default=1, help="number of estimators (default 1)")
    p.add_argument("--max-epochs", type=count, default=300)
    p.add_argument("--no-restriction", action="store_true",
                   help="do not learn where the prior gives invalid simulations")
    p.add_argument("--allowed-false-negatives", type=float, default=0.1, metavar="F",
                   help="restriction: fraction of θ with valid bank simulations that sampling "
                        "may still reject (sets the classifier threshold; default 0.1)")
    p.add_argument("--stream", action="store_true",
                   help="stream shards instead of loading the bank (banks larger than memory)")
    p.add_argument("--seed", type=int, default=0)
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..inference.figures import training_curve
    from ..inference.train import train_on_bank

    require_new_folder(args.out)
    posterior = train_on_bank(args.bank, args.features, estimator=args.estimator,
                              embedding=args.embedding, ensemble=args.ensemble, seed=args.seed,
                              restriction=not args.no_restriction, max_epochs=args.max_epochs,
                              allowed_false_negatives=args.allowed_false_negatives,
                              stream=args.stream, progress=not args.json)
    posterior.save(args.out)
    figure = training_curve(posterior.metrics["training_curves"], args.out / "training_curve.png")
    m = posterior.metrics
    summary = {"posterior": str(args.out), "n_valid": m["n_valid"], "n_invalid": m["n_invalid"],
               "best_validation_loss": m["best_validation_loss"], "restriction": m["restriction"],
               "training_seconds": round(m["training_seconds"], 2), "figure": str(figure)}
    if not args.json:
        invalid_use = "train the restriction classifier" if m["restriction"] else "ignored"
        print(f"posterior {args.out}: trained on {m['n_valid']} valid simulations "
              f"({m['n_invalid']} invalid ones {invalid_use}); "
              f"validation loss {min(m['best_validation_loss']):.3f}; curve {figure}")
    return summary
