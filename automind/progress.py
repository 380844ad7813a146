"""Progress lines for people: on stderr, so that ``--json`` output on stdout stays parseable."""

from __future__ import annotations

import sys
from typing import Callable


def say(*parts, **kwargs) -> None:
    """Print one progress line to stderr, flushed."""
    print(*parts, file=sys.stderr, flush=True, **kwargs)


def sayer(progress: bool, prefix: str = "") -> Callable[[str], None]:
    """A ``say(text)`` that prints ``prefix + text`` when ``progress``, else does nothing."""
    if not progress:
        return lambda text: None
    return lambda text: say(f"{prefix}{text}")
