"""Deferred imports for package namespaces (torch, Brian2 and pyarrow cost seconds)."""

import importlib


def lazy_getattr(package: str, exports: dict[str, tuple[str, str]]):
    """A module-level ``__getattr__`` importing ``exports[name] = (module, attribute)`` on use."""

    def __getattr__(name):
        if name in exports:
            module, attribute = exports[name]
            return getattr(importlib.import_module(module), attribute)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
