"""The one exception type for mistakes a user can fix (bad spec, bad input, bad θ).

The CLI prints such errors as a single line and exits with status 2; anything else
is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """A problem with the user's input, reported as one clear message."""
