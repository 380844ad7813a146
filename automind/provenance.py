"""What produced an artifact: package versions (recorded in every bank and artifact)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("automind", "brian2", "numpy", "scipy", "torch", "sbi", "pyarrow")


def package_versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found | {"python": platform.python_version()}
