"""Simulate reduced neurons, one per table node, in one compiled Brian2 group.

The reduced neuron is dimensionless (time in units of τ_eff, so Brian2's "second" is one
τ_eff here): node values are per-neuron run arguments of a ``cpp_standalone`` binary
compiled once per :class:`NodeSettings` (group size, dt, duration) and cached next to the
simulators' binaries in ``$AUTOMIND_CACHE/compiled``. Each neuron accumulates its own
spike count and ISI sums after the warm-up; nothing else is written.

Integration: Euler–Maruyama for x, the exact OU update for coloured noise. For the
white-noise LIF (κ = 0, δ = 0) the threshold is lowered by 0.5826·√(2 dt) (Siegmund's
correction for a barrier checked at discrete times), which removes the O(√dt) rate bias.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SIEGMUND = 0.5826  # −ζ(1/2)/√(2π): overshoot of a discretely monitored Brownian barrier

EQUATIONS = """
dx/dt = (m - x + delta * exp(clip(x / d_safe, -50, 30)) * int(delta > 0) + eta) / second
        + white * xi * second**-0.5 : 1 (unless refractory)
d_safe = delta + int(delta <= 0) : 1
eta : 1
m : 1 (constant)
delta : 1 (constant)
x_reset : 1 (constant)
x_cut : 1 (constant)
rho : second (constant)
white : 1 (constant)
ou_decay : 1 (constant)
ou_kick : 1 (constant)
ou_sd : 1 (constant)
n_spikes : 1
n_isi : 1
isi_s1 : 1
isi_s2 : 1
t_last : second
"""
NODE_ARGS = ("m", "delta", "x_reset", "x_cut", "rho", "white", "ou_decay", "ou_kick", "ou_sd")
OUTPUTS = ("n_spikes", "n_isi", "isi_s1", "isi_s2")

RESET = """
x = x_reset
n_spikes += int(t >= t_warm)
n_isi += int(t_last >= t_warm)
isi_s1 += (t - t_last) / second * int(t_last >= t_warm)
isi_s2 += ((t - t_last) / second)**2 * int(t_last >= t_warm)
t_last = t
"""

WRITE_CPP = r"""
{
    auto dump = [](const std::string& name, double* values, int n) {
        std::ofstream f((brian::results_dir + name + ".bin").c_str(), std::ios::binary);
        f.write(reinterpret_cast<const char*>(values), n * sizeof(double));
    };
    {DUMPS}
    std::exit(0);
}
"""


@dataclass(frozen=True)
class NodeSettings:
    """What a compiled node binary depends on (all in units of τ_eff)."""

    group_size: int = 512
    dt: float = 0.005
    warmup: float = 10.0
    duration: float = 2000.0  # measured after the warm-up

    @classmethod
    def reduced(cls) -> "NodeSettings":
        """Half the measuring time (rate SE × √2): the setting of the reduced build."""
        return cls(duration=1000.0)

    def key(self) -> dict:
        from importlib.metadata import version

        return asdict(self) | {"equations": EQUATIONS, "reset": RESET,
                               "code_sha256": model_code_digest(), "brian2": version("Brian2")}


def model_code_digest() -> str:
    """sha256 of the code that determines a node's result (not of this whole file: an edit
    to, say, the binary's checksum handling must not invalidate a 2 CPU-hour table)."""
    import inspect

    from ..simulators.build import SEED_CPP

    parts = [inspect.getsource(f) for f in (node_arguments, summarise, build)]
    parts += [EQUATIONS, RESET, WRITE_CPP, SEED_CPP, repr(SIEGMUND), repr(NODE_ARGS), repr(OUTPUTS)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def node_arguments(m, r, delta, ell, rho, kappa, dt: float, noise: float = 1.0) -> dict:
    """Per-neuron run-argument arrays for nodes (m, r, δ, ℓ, ρ, κ); ``noise=0`` for the
    deterministic check (same code path, no fluctuations)."""
    m, r, delta, ell, rho, kappa = (np.asarray(v, float) for v in (m, r, delta, ell, rho, kappa))
    x_cut = np.where(delta > 0, delta * (5.0 - np.minimum(ell, 5.0)), 0.0)
    white = (kappa <= 0).astype(float)
    x_cut = x_cut - noise * SIEGMUND * np.sqrt(2 * dt) * white * (delta <= 0)
    safe_k = np.where(kappa > 0, kappa, 1.0)
    decay = np.where(kappa > 0, np.exp(-dt / safe_k), 0.0)
    ou_var = np.where(kappa > 0, (1 + safe_k) / safe_k, 0.0)  # so that free Var(x) = 1
    return {"m": m, "delta": delta, "x_reset": -r, "x_cut": x_cut, "rho": rho,
            "white": noise * np.sqrt(2.0) * white, "ou_decay": decay,
            "ou_kick": noise * np.sqrt(ou_var * (1 - decay**2)),
            "ou_sd": noise * np.sqrt(ou_var)}


class NodeBinary:
    """The compiled group for one :class:`NodeSettings`; ``run`` simulates one chunk of nodes."""

    def __init__(self, settings: NodeSettings):
        from filelock import FileLock

        from ..simulators.engine import cache_root, verify_entry, write_checksums

        self.settings = settings
        key = settings.key()
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        root = cache_root() / "compiled"
        root.mkdir(parents=True, exist_ok=True)
        self.directory = root / f"cheap-nodes-{digest}"
        if not (self.directory / "automind_run_args.json").is_file():
            with FileLock(str(self.directory) + ".lock"):
                if not (self.directory / "automind_run_args.json").is_file():
                    tmp = Path(tempfile.mkdtemp(prefix=f".{self.directory.name}-", dir=root))
                    try:
                        _compile(settings, tmp)
                        write_checksums(tmp)  # we execute its binary: see docs/security.md
                        os.replace(tmp, self.directory)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
        verify_entry(self.directory)

    def run(self, args: dict, seed: int) -> dict:
        """Simulate up to ``group_size`` nodes; returns rate (ν τ), ISI CV, relative SE, counts."""
        from ..simulators.engine import scratch_root

        n = len(args["m"])
        size = self.settings.group_size
        if n > size:
            raise ValueError(f"{n} nodes exceed the compiled group size {size}")
        folder = Path(tempfile.mkdtemp(prefix="automind-nodes-", dir=scratch_root()))
        try:
            argv = [str(self.directory / "main"), "--results_dir", f"{folder}/"]
            for name in NODE_ARGS:
                values = np.zeros(size)
                values[:n] = args[name]
                if name == "rho":
                    values[n:] = 1.0
                values.tofile(folder / f"{name}.bin")
                argv.append(f"nodes.{name}={folder / f'{name}.bin'}")
            env = dict(os.environ, AUTOMIND_SEED=str(int(seed) % 2**32))
            proc = subprocess.run(argv, cwd=self.directory, env=env, capture_output=True, text=True)
            if proc.returncode != 0 or proc.stderr.strip():
                raise RuntimeError(f"node simulation failed: {proc.stderr.strip()[-500:]}")
            out = {k: np.fromfile(folder / f"{k}.bin", dtype=np.float64)[:n] for k in OUTPUTS}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return summarise(out, self.settings.duration)


def summarise(out: dict, duration: float) -> dict:
    """Spike counts and ISI sums → rate ν τ, ISI CV and the rate's relative standard error."""
    count, n_isi = out["n_spikes"], out["n_isi"]
    rate = count / duration
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = out["isi_s1"] / n_isi
        var = np.maximum(out["isi_s2"] / n_isi - mean**2, 0.0)
        cv = np.where(n_isi >= 2, np.sqrt(var) / mean, np.nan)
        # renewal process: SE(ν)/ν ≈ CV / √count
        se = np.where(count > 0, np.where(np.isfinite(cv), cv, 1.0) / np.sqrt(count), np.inf)
    return {"rate": rate, "cv": cv, "rel_se": se, "count": count}


def _compile(settings: NodeSettings, out_dir: Path) -> None:
    request = out_dir / "request.json"
    request.write_text(json.dumps(asdict(settings)))
    log = out_dir / "build.log"
    with open(log, "w") as handle:
        code = subprocess.call([sys.executable, "-m", "automind.cheap.nodes", str(request),
                                str(out_dir)], stdout=handle, stderr=subprocess.STDOUT)
    if code != 0:
        raise RuntimeError(f"compiling the table's node group failed:\n{log.read_text()[-3000:]}")


def build(settings: NodeSettings, out_dir: Path) -> None:
    """Child process: generate and compile the node group (Brian2's device state is global)."""
    import brian2 as b2

    from ..simulators.build import SEED_CPP

    b2.set_device("cpp_standalone", directory=str(out_dir), build_on_run=False)
    b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    b2.prefs.core.default_float_dtype = b2.float64
    b2.defaultclock.dt = settings.dt * b2.second
    G = b2.NeuronGroup(settings.group_size, EQUATIONS, threshold="x > x_cut", reset=RESET,
                       refractory="rho", method="euler", name="nodes",
                       namespace={"t_warm": settings.warmup * b2.second})
    b2.device.apply_run_args()
    b2.device.insert_code("main", SEED_CPP)
    G.x = "m + randn()"
    G.eta = "ou_sd * randn()"
    G.t_last = -1 * b2.second
    G.run_regularly("eta = eta * ou_decay + ou_kick * randn()", when="before_groups",
                    name="nodes_ou")
    net = b2.Network(G)
    net.run((settings.warmup + settings.duration) * b2.second)
    dumps = "".join(f'dump("{k}", brian::_array_nodes_{k}, {settings.group_size});\n'
                    for k in OUTPUTS)
    b2.device.insert_code("main", WRITE_CPP.replace("{DUMPS}", dumps))
    b2.device.build(directory=str(out_dir), compile=True, run=False, clean=False)
    run_args = {f"nodes.{k}": ["<f8", settings.group_size] for k in NODE_ARGS}
    (out_dir / "automind_run_args.json").write_text(json.dumps(run_args))


if __name__ == "__main__":
    build(NodeSettings(**json.loads(Path(sys.argv[1]).read_text())), Path(sys.argv[2]))
