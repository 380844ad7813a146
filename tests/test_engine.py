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
