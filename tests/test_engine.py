"""The compiled-binary cache: parallel processes share one compilation without colliding."""

import multiprocessing
import os

from automind.simulators import SimulatorSpec
from automind.simulators.engine import CompiledModel


def _load(cache: str, queue) -> None:
    os.environ["AUTOMIND_CACHE"] = cache
    spec = SimulatorSpec.load("brunel").with_overrides(N=1250)
    compiled = CompiledModel.for_spec(spec)
    queue.put((str(compiled.directory), compiled.compile_seconds))


def test_concurrent_processes_compile_once(tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_load, args=(str(tmp_path), queue)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    answers = [queue.get(timeout=5) for _ in workers]
    assert all(w.exitcode == 0 for w in workers)
    assert len({directory for directory, _ in answers}) == 1
    assert sum(seconds > 0 for _, seconds in answers) == 1  # exactly one process compiled
    projects = [p for p in (tmp_path / "compiled").iterdir() if p.is_dir()]
    assert len(projects) == 1 and not projects[0].name.startswith(".")


UNGUARDED_SCRIPT = """
import sys
from automind.bank import extend
from automind.prior import Prior
from automind.simulators.brunel import reduced_spec

extend(sys.argv[1], reduced_spec(250, 100, 0.2, 0.05), Prior.load("brunel"), 4, 0, workers=2,
       progress=False)
"""


def test_a_script_without_a_main_guard_fails_with_the_reason_instead_of_hanging(tmp_path):
    """Spawned workers re-run the script's top level; they used to wait forever on the
    parent's chunk claims. Now each refuses at once and the parent stops with the reason."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "bank")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert 'if __name__ == "__main__":' in run.stderr


def _chunk_of_arrays(spec, jobs, compiled_dir, feature_sets):
    import numpy as np

    return [np.full(1000, job, float) for job in jobs]


def test_local_engine_keeps_no_finished_chunk_in_memory():
    """A bank of 3,000 N = 2000, 10 s runs was killed by the OOM killer at 22 GB: the engine
    held every finished future, and with it every chunk's spike trains. Once the consumer has
    dropped a chunk's results nothing else may hold them."""
    import gc
    import weakref

    from automind.simulators.execution import LocalEngine

    engine = LocalEngine(None, "", workers=2)
    engine.task = _chunk_of_arrays
    refs = []
    try:
        for chunk, results in engine.run_chunks([(c, [c, c + 0.5]) for c in range(4)]):
            assert results[0][0] == chunk
            refs.append(weakref.ref(results[0]))
            del results
            gc.collect()
            assert all(r() is None for r in refs[:-1])  # the generator holds the latest only
    finally:
        engine.close()
    gc.collect()
    assert len(refs) == 4 and all(r() is None for r in refs)
