"""Continue a finished fit's refinement from its last generation: RUN OUT GENS [start_gen]"""
import sys, json
from pathlib import Path
import numpy as np
from automind.inference.posterior import load_posterior
from automind.fit.refine import refine

if __name__ == "__main__":
    run, out, gens = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    start = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    fitjson = json.loads((run / "fit.json").read_text())
    post = load_posterior(run / "rounds" / f"posterior{fitjson['settings']['rounds']}")
    x_o = np.array([np.nan if v is None else v for v in fitjson["target"]["x"]])
    folder = run / "refine" / f"g{start}"
    import shutil
    if not (folder / "noise.json").exists():
        shutil.copy(run / "final" / "noise.json", folder / "noise.json")
    rows, found = refine(post, x_o, out, folder, gens, seed=100 + start, workers=1, progress=False)
    for r in rows: print(json.dumps(r), flush=True)
