"""Simulator specs (``simulators/*.toml``): which model, its fixed parameters and run protocol."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..specs import find_spec, read_toml
from ..units import parse_quantity

_TOP_KEYS = {"name", "model", "prior", "description", "network", "run", "early_stop", "record",
             "fixed", "reference_quirks", "backend", "torch"}
BACKENDS = ("brian2", "torch")
#: [torch] settings of a spec with backend = "torch" (automind/rsnn) and their defaults
TORCH_DEFAULTS = {"device": "cpu", "dtype": "float64", "batch": 32, "threads": 1}


@dataclass(frozen=True)
class SimulatorSpec:
    """Everything a model builder needs besides θ. Times in seconds, SI units throughout."""

    name: str
    model: str
    prior: str
    N: int
    dt: float
    duration: float
    max_duration: float
    t_analysis_start: float
    timeout: float
    probe: float
    silent: float
    runaway: float
    record: tuple[str, ...]
    record_state: tuple[str, ...] = ()
    state_units: int = 0
    fixed: dict = field(default_factory=dict)
    reference_quirks: bool = False
    backend: str = "brian2"
    torch: dict = field(default_factory=dict)
    description: str = ""
    source: str = ""
    sha256: str = ""

    @classmethod
    def load(cls, name_or_path: str | Path) -> "SimulatorSpec":
        path = find_spec("simulators", name_or_path)
        data, digest = read_toml(path)
        return cls.from_dict(data, source=str(path), sha256=digest)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>", sha256: str = "") -> "SimulatorSpec":
        where = f"simulator spec {source}"
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
        from . import MODELS  # late import: the registry imports the builders

        model = data.get("model")
        if model not in MODELS:
            raise UserError(f"{where}: 'model' must be one of {sorted(MODELS)}, got {model!r}")
        net, run, stop = (data.get(k, {}) for k in ("network", "run", "early_stop"))
        try:
            spec = cls(
                name=str(data.get("name", Path(source).stem)),
                model=model,
                prior=str(data.get("prior", model)),
                N=net.get("N", 0),
                dt=parse_quantity(net.get("dt", "0.1 ms"), f"{where}: network.dt"),
                duration=parse_quantity(run.get("duration", "10 s"), f"{where}: run.duration"),
                max_duration=parse_quantity(run.get("max_duration", "3600 s"),
                                            f"{where}: run.max_duration"),
                t_analysis_start=parse_quantity(run.get("t_analysis_start", "0 s"),
                                                f"{where}: run.t_analysis_start"),
                timeout=parse_quantity(run.get("timeout", "600 s"), f"{where}: run.timeout"),
                probe=parse_quantity(stop.get("probe", "1 s"), f"{where}: early_stop.probe"),
                silent=float(stop.get("silent", 1e-4)),
                runaway=float(stop.get("runaway", 0.99)),
                record=tuple(data.get("record", {}).get("spikes", MODELS[model].populations)),
                record_state=tuple(data.get("record", {}).get("state", ())),
                state_units=data.get("record", {}).get("state_units", 0),
                fixed={k: parse_quantity(v, f"{where}: fixed.{k}")
                       for k, v in data.get("fixed", {}).items()},
                reference_quirks=bool(data.get("reference_quirks", False)),
                backend=str(data.get("backend", "brian2")),
                torch=dict(data.get("torch", {})),
                description=str(data.get("description", "")),
                source=source,
                sha256=sha256,
            )
        except (TypeError, AttributeError) as err:
            raise UserError(f"{where}: malformed ({err})") from None
        spec.check()
        return spec

    def check(self) -> None:
        """Raise a UserError naming the first invalid setting."""
        where = f"simulator spec {self.name!r}"
        from . import MODELS

        model = MODELS[self.model]
        if not isinstance(self.N, int) or isinstance(self.N, bool) or self.N < 2:
            raise UserError(f"{where}: N must be an integer >= 2, got {self.N!r}")
        for name in ("dt", "duration", "max_duration", "timeout", "probe"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{where}: {name} must be > 0, got {value!r}")
        if self.dt >= self.duration:
            raise UserError(f"{where}: dt ({self.dt} s) must be shorter than duration ({self.duration} s)")
        if self.duration > self.max_duration:
            raise UserError(f"{where}: duration {self.duration} s exceeds max_duration "
                            f"{self.max_duration} s (raise run.max_duration in the spec)")
        if not 0 <= self.silent < self.runaway:
            raise UserError(f"{where}: need 0 <= early_stop.silent < early_stop.runaway")
        bad = [p for p in self.record if p not in model.populations]
        if bad:
            raise UserError(f"{where}: record.spikes names unknown population(s) {bad}; "
                            f"{self.model} has {list(model.populations)}")
        bad = [v for v in self.record_state if v not in model.state_variables]
        if bad:
            raise UserError(f"{where}: record.state names unknown variable(s) {bad}; "
                            f"{self.model} records {list(model.state_variables)}")
        if self.record_state and not (isinstance(self.state_units, int) and 1 <= self.state_units <= self.N):
            raise UserError(f"{where}: record.state_units must be an integer in [1, N]")
        missing = [k for k in model.required_fixed if k not in self.fixed]
        extra = [k for k in self.fixed if k not in model.required_fixed]
        if missing or extra:
            raise UserError(f"{where}: fixed parameters {'missing ' + str(missing) if missing else ''}"
                            f"{' unknown ' + str(extra) if extra else ''}".rstrip())
        model.check_spec(self)
        self._check_backend(where)

    def _check_backend(self, where: str) -> None:
        if self.backend not in BACKENDS:
            raise UserError(f"{where}: backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.backend == "brian2":
            if self.torch:
                raise UserError(f"{where}: a [torch] section needs backend = \"torch\"")
            return
        if self.model != "mk1":
            raise UserError(f"{where}: backend \"torch\" runs model mk1 only, not {self.model!r}")
        unknown = set(self.torch) - set(TORCH_DEFAULTS)
        if unknown:
            raise UserError(f"{where}: unknown [torch] key(s) {sorted(unknown)}; allowed: "
                            f"{sorted(TORCH_DEFAULTS)}")
        settings = self.torch_settings()
        if settings["dtype"] not in ("float32", "float64"):
            raise UserError(f"{where}: torch.dtype must be float32 or float64")
        for key in ("batch", "threads"):
            if not isinstance(settings[key], int) or isinstance(settings[key], bool) or settings[key] < 1:
                raise UserError(f"{where}: torch.{key} must be an integer >= 1")
        steps_per_ms = 1e-3 / self.dt
        if abs(steps_per_ms - round(steps_per_ms)) > 1e-9:
            raise UserError(f"{where}: backend torch needs a dt that divides 1 ms, got "
                            f"{self.dt * 1e3:g} ms")

    def torch_settings(self) -> dict:
        """The [torch] settings with defaults filled in."""
        return TORCH_DEFAULTS | dict(self.torch)

    def with_overrides(self, duration: float | None = None, N: int | None = None,
                       dt: float | None = None, **other) -> "SimulatorSpec":
        """A copy with per-run overrides (and any other field in ``other``) applied and validated."""
        changes = {k: v for k, v in (("duration", duration), ("N", N), ("dt", dt)) if v is not None}
        changes |= other
        if "duration" in changes:
            changes["max_duration"] = max(self.max_duration, float(changes["duration"]))
        spec = dataclasses.replace(self, **changes)
        spec.check()
        return spec

    @classmethod
    def from_plain(cls, data: dict) -> "SimulatorSpec":
        """Inverse of ``to_dict`` (as stored in banks and artifacts), validated."""
        spec = cls(**{**data, "record": tuple(data["record"]),
                      "record_state": tuple(data.get("record_state", ()))})
        spec.check()
        return spec

    def to_dict(self) -> dict:
        """Plain-data form, for provenance."""
        out = dataclasses.asdict(self) | {"record": list(self.record),
                                          "record_state": list(self.record_state)}
        if self.backend == "brian2":  # as before backends existed: older banks still match
            del out["backend"], out["torch"]
        return out
