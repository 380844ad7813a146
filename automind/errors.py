"""The one exception type for mistakes a user can fix (bad spec, bad input, bad θ).

The CLI prints such errors as a single line and exits with status 2; anything else
is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """A problem with the user's input, reported as one clear message."""


def require_new_folder(path) -> None:
    """Outputs go to new folders, so nothing already written is overwritten."""
    from pathlib import Path

    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path} exists and is not empty; choose a new --out")
