"""Long damaged-input fuzz (issue: security). For every input format automind reads, N
truncated or byte-flipped copies of a real file, each read in a watched worker under a time
limit (tests/fuzz_formats.py). Prints, as the last line, one JSON object: per format the
files tried and their outcomes, the failures (crash / multiline / hang / wrote; target 0),
and the wall time.

    python benchmarks/fuzz.py [--cases 1000] [--seed 0] [--time-limit 30] [--formats npz,csv]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_formats import FAILURES, FORMATS, Runner, failures, fuzz, stamp  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="damaged inputs per format")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per read")
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    formats = args.formats.split(",")
    start = time.perf_counter()
    runner = Runner(args.time_limit)
    report = {}
    try:
        with tempfile.TemporaryDirectory(prefix="automind-fuzz-") as workdir:
            for fmt in formats:
                began = time.perf_counter()
                report.update(fuzz([fmt], args.cases, args.seed, workdir=Path(workdir),
                                   runner=runner))
                report[fmt]["seconds"] = round(time.perf_counter() - began, 1)
                print(fmt, json.dumps(report[fmt]["outcomes"]), file=sys.stderr, flush=True)
    finally:
        runner.close()
    failed = {fmt: sum(n for k, n in r["outcomes"].items() if k.split(":")[0] in FAILURES)
              for fmt, r in report.items()}
    print(json.dumps({"date": stamp(), "seed": args.seed, "time_limit_s": args.time_limit,
                      "files_tried": sum(r["cases"] for r in report.values()),
                      "failures_total": sum(failed.values()),
                      "wall_seconds": round(time.perf_counter() - start, 1),
                      "formats": {fmt: {"files": r["cases"], "outcomes": r["outcomes"],
                                        "failures": failed[fmt], "seconds": r["seconds"]}
                                  for fmt, r in report.items()},
                      "failure_examples": failures(report)}))


if __name__ == "__main__":
    main()
