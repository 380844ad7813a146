"""``automind bank info | import``: inspect and import simulation banks."""

from __future__ import annotations

from pathlib import Path

from .options import add_json


def register(sub) -> None:
    bank = sub.add_parser("bank", help="inspect and import simulation banks").add_subparsers(
        dest="bank_command", required=True, metavar="ACTION")
    p = bank.add_parser("info", help="counts per status, rates, time, size, provenance, problems")
    p.add_argument("bank", type=Path, help="bank folder")
    add_json(p)
    p.set_defaults(func=run_info)
    p = bank.add_parser("import", help="import a published AutoMIND summary table (CSV)",
                        description="Read a CSV with θ columns named params_<group>.<name> "
                                    "(params_net.*, params_Epop.*, params_Ipop.*) and feature "
                                    "columns into a new bank with the feature set 'imported'.")
    p.add_argument("csv", type=Path, help="summary table (CSV)")
    p.add_argument("--out", type=Path, required=True, metavar="BANK", help="new bank folder")
    p.add_argument("--prior", default="mk1", help="prior the θ columns map to (default: mk1)")
    add_json(p)
    p.set_defaults(func=run_import)


def run_info(args) -> dict:
    from ..bank import Bank

    info = Bank(args.bank).info()
    if not args.json:
        print(f"bank {info['path']}: {info['total']} simulations in {info['shards']} shards, "
              f"{info['disk_bytes'] / 1e6:.1f} MB")
        print("  by status: " + ", ".join(f"{k} {v}" for k, v in info["by_status"].items()))
        for pop, q in info["rates_ok_hz"].items():
            print(f"  {pop} rate of ok simulations: median {q['median']:.2f} Hz "
                  f"(5-95 %: {q['q05']:.2f}-{q['q95']:.2f})")
        print(f"  simulated {info['simulated_seconds']:.1f} s of biological time in "
              f"{info['wall_seconds']:.1f} s of worker time")
        for name, fs in info["feature_sets"].items():
            print(f"  feature set {name} v{fs['version']}: {fs['dim']} values, computed for "
                  f"{fs['shards']} of {info['shards']} shards")
        print(f"  made by: simulator {info['simulator']}, prior {info['prior']}, seed {info['seed']}, "
              f"created {info['created']}; automind {info['versions'].get('automind')}, "
              f"brian2 {info['versions'].get('brian2')}")
        for problem in info["problems"]:
            print(f"  problem: {problem}")
    return info


def run_import(args) -> dict:
    from ..bank.importer import import_table
    from ..prior import Prior

    report = import_table(args.csv, args.out, Prior.load(args.prior), progress=not args.json)
    if not args.json:
        skipped = (f"; {report['outside_prior']} rows outside the prior were skipped"
                   if report["outside_prior"] else "")
        print(f"imported {report['imported']} simulations with {report['features']} features into "
              f"{report['bank']}{skipped}")
        if report["ignored_columns"]:
            print(f"ignored settings columns: {', '.join(report['ignored_columns'])}")
    return report
