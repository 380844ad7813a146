"""A finished fit's refinement run again from its final validation (same samples, noise model
and seeds) with another step rule or search space: RUN OUT STEP SPACE [GENERATIONS]
(STEP: full | adaptive | select; SPACE: prior | log; 7 generations). Prints one JSON row: the
yield and median distance per generation and the pooled set's size. Session 17: target 91 and
767 (and 267) in log coordinates (studies/mk1_targets/README.md)."""
import json, sys, time
from pathlib import Path

import numpy as np


def main():
    from automind.fit.refine import refine
    from automind.inference.posterior import load_posterior

    run, out, step, space = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    generations = int(sys.argv[5]) if len(sys.argv) > 5 else 7
    meta = json.loads((run / "fit.json").read_text())
    posterior = load_posterior(json.loads((run / "final/run.json").read_text())["posterior"])
    x = np.array([np.nan if v is None else v for v in meta["target"]["x"]], float)
    start = time.perf_counter()
    rows, found = refine(posterior, x, out, run / "final", generations,
                         seed=meta["settings"]["seed"] + 11, workers=2, progress=False,
                         step=step, space=space)
    print(json.dumps({"run": str(run), "step": step, "space": space,
                      "yields": [r["yield"] for r in rows],
                      "median_distances": [round(r["median_distance"], 2) for r in rows],
                      "set_size": found.get("set_size"),
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
