"""The house has no circles: read every module's imports (AST, including lazy imports inside
functions) and check the layering of docs/architecture.md."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "automind"

#: package -> packages it must never import (directly or lazily)
FORBIDDEN = {
    "simulators": ("bank", "inference", "invariance", "fit", "studies", "cli"),
    "features": ("bank", "inference", "invariance", "simulators", "fit", "studies", "cli"),
    "recordings": ("bank", "inference", "invariance", "simulators", "fit", "studies", "cli"),
    "bank": ("inference", "invariance", "fit", "studies", "cli"),
    "inference": ("invariance", "fit", "studies", "cli"),
    "invariance": ("fit", "studies", "cli"),
    "columns": ("simulators", "bank", "inference", "invariance", "fit", "studies", "cli"),
    "cheap": ("bank", "inference", "invariance", "fit", "studies", "cli"),
    "rsnn": ("bank", "invariance", "fit", "studies", "cli"),
    "io.py": ("bank", "inference", "invariance", "simulators", "features", "fit", "cli"),
}


def imported_packages(path: Path) -> set[str]:
    """Top-level automind packages/modules a file imports (absolute or relative)."""
    module = path.relative_to(ROOT.parent).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                target = list(module[:-node.level]) + (node.module.split(".") if node.module else [])
                names = [".".join(target)] if node.module else \
                    [".".join(target + [a.name]) for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "automind" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_relative_imports_are_resolved():
    """The checker itself: a file known to import the bank lazily is seen doing so."""
    assert "bank" in imported_packages(ROOT / "inference" / "targets.py")
    assert "simulators" in imported_packages(ROOT / "bank" / "writer.py")


def test_no_layer_imports_what_sits_above_it():
    violations = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        owner = rel.parts[0] if len(rel.parts) > 1 else rel.name
        for target in imported_packages(path) & set(FORBIDDEN.get(owner, ())):
            violations.append(f"{rel} imports automind.{target}")
    assert not violations, "\n".join(violations)


def test_nothing_in_the_library_imports_the_cli():
    users = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
             if p.relative_to(ROOT).parts[0] != "cli" and "cli" in imported_packages(p)]
    assert not users, users
