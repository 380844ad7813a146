"""The ``automind`` command: one module per command, each with ``register(subparsers)`` (its
parser) beside ``run(args) -> dict`` (its handler). User mistakes print one line and exit 2."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from ..errors import UserError

#: Command modules in the order ``automind --help`` lists them.
COMMANDS = ("simulate", "demo", "fit", "features", "train", "infer", "validate", "diagnose",
            "bank", "invariance", "compare", "study", "column", "cheap")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="automind",
        description="Find all spiking-circuit configurations consistent with a recording: "
                    "simulate, featurise, train, infer, validate.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    args = build_parser().parse_args(argv)
    # SIGTERM (a scheduler's kill, `kill PID`) shuts down like Ctrl-C: worker pools are
    # closed on the way out instead of being left behind as orphans
    previous = (signal.signal(signal.SIGTERM, _interrupt)
                if threading.current_thread() is threading.main_thread() else None)
    try:
        summary = args.func(args)
    except UserError as err:
        print(f"automind: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("automind: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if getattr(args, "json", False):
        print(json.dumps(summary))
    return 0
