"""Mistakes a user can fix (a path, a config value, bad data), told without a traceback.

Entry points catch `UserError` and print its message, which says what is wrong and what to do;
`HYDRA_FULL_ERROR=1` shows the traceback as well (Hydra's own switch for full errors).
"""

from __future__ import annotations

import re

ORIGINAL_TRACEBACK = "Original Traceback (most recent call last):"


class UserError(Exception):
    """A user mistake; its message names the thing at fault and what to do about it."""


def user_message(error: BaseException) -> str:
    """The message of `error`. A DataLoader worker re-raises an error of the same type whose message holds the
    worker's traceback; the user's message is what follows the last `<module>.<Type>: ` line of it."""
    text = str(error)
    if ORIGINAL_TRACEBACK not in text:
        return text
    lines = list(re.finditer(rf"^(?:[\w.]+\.)?{re.escape(type(error).__name__)}: ", text, flags=re.MULTILINE))
    return text[lines[-1].end() :].strip() if lines else text


def find_user_error(error: BaseException) -> UserError | None:
    """The `UserError` behind `error`: itself, or one it was raised from (Hydra's `instantiate` wraps errors of
    the builders it calls)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
