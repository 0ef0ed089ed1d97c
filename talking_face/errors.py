"""What a user is told, and how: problems with their flags, problems with their inputs, and doubts.

``talking-face`` turns the first two into one line on stderr (exit 2 and 1) instead of a traceback; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["InputError", "InputWarning", "UsageError"]


class UsageError(ValueError):
    """A flag or value the tool cannot take, found before any work starts (exit code 2)."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"--{flag}: {message}")
        self.flag = flag


class InputError(Exception):
    """A problem found in the user's inputs while working: no face, silent speech, an unreadable file
    (exit code 1). The message names the file."""


class InputWarning(UserWarning):
    """An input that is not what it seems (several faces, speech that ends early); the run goes on."""
