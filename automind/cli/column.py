"""``automind column train``: train a circuit of laminar columns on a task through its ODEs."""

from __future__ import annotations

from pathlib import Path

from .options import add_json, count, positive_float


def register(sub) -> None:
    column = sub.add_parser("column", help="laminar cortical columns (dynamic mean field): "
                                           "train circuits on tasks").add_subparsers(
        dest="column_command", required=True, metavar="ACTION")
    p = column.add_parser("train", help="train a circuit of columns on wta or xor",
                          description="Backpropagation through the Euler-integrated column DMF: "
                                      "wta (two columns against the Wong-Wang 2006 target) or "
                                      "xor (three columns, several seeds trained at once). "
                                      "Writes train.json, weights.pt, curve.png and rates.png "
                                      "(docs/columns.md). Defaults follow the published set-ups "
                                      "(ccnmaastricht/ODE-Column).")
    p.add_argument("--task", required=True, metavar="TASK", help="wta or xor")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="new run folder")
    p.add_argument("--column", metavar="VARIANT",
                   help="the column's constants: ode_column (default; the published tasks' "
                        "column) or evers (the PD-faithful DMF of the known answers)")
    p.add_argument("--steps", type=count, help="optimiser steps (wta 60, xor 160)")
    p.add_argument("--trials", type=count, help="trials per step (wta 15, xor 4)")
    p.add_argument("--seeds", type=count, help="parameter sets trained at once (xor 5)")
    p.add_argument("--lr", type=positive_float, help="RMSprop learning rate (wta 10, xor 0.2)")
    p.add_argument("--max-seconds", type=positive_float,
                   help="stop after the step that passes this wall-clock budget")
    p.add_argument("--seed", type=int, default=0)
    add_json(p)
    p.set_defaults(func=run)


def run(args) -> dict:
    from ..columns.train import train_task

    result = train_task(args.task, args.out, progress=not args.json, steps=args.steps,
                        trials=args.trials, seeds=args.seeds, lr=args.lr,
                        max_seconds=args.max_seconds, seed=args.seed, column=args.column)
    summary = {"out": str(args.out), "task": result["task"], "steps_done": result["steps_done"],
               "seconds": result["seconds"], "before": result["before"],
               "after": result["after"], "success": result["success"]}
    if not args.json:
        print(f"{args.task}: {result['steps_done']} steps in {result['seconds']:.0f} s; "
              f"held-out loss {sum(result['before']['loss']):.4g} -> "
              f"{sum(result['after']['loss']):.4g}; success: {result['success']} ({args.out})")
    return summary
