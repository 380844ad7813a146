"""The wheel ships the prior and simulator specs, addressable by short name."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_specs_and_finds_them_by_name(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("automind-*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("from automind.prior import Prior; from automind.simulators import SimulatorSpec; "
            "print(Prior.load('mk1').dim, SimulatorSpec.load('brunel').N)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["28", "2500"]
    shipped = {Path(name).parent.as_posix() for name in zipfile.ZipFile(wheel).namelist()}
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "automind").rglob("__init__.py")}
    assert packages <= shipped, packages - shipped  # every subpackage is in the wheel
