"""Errors that lessons raise; ``app.web.errors`` maps them to HTTP status codes and pages."""

from __future__ import annotations


class LessonError(Exception):
    """A request a lesson cannot answer; the message is written for a learner."""


class LessonInputError(LessonError, ValueError):
    """The input is malformed or out of range (HTTP 422)."""


class LimitExceeded(LessonInputError):
    """The input asks for more than a configured limit allows (HTTP 422), naming both."""

    def __init__(self, what: str, limit_name: str, limit: float, got: float) -> None:
        self.limit_name = limit_name
        self.limit = limit
        self.got = got
        super().__init__(
            f"{what} is {_show(got)}, over the limit of {_show(limit)} (setting {limit_name})."
        )


def _show(value: float) -> str:
    """Whole numbers in full (1000000, not 1e+06); others compactly."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def check_limit(what: str, limit_name: str, limit: float, got: float) -> None:
    """Raise ``LimitExceeded`` when ``got`` is over ``limit``."""
    if got > limit:
        raise LimitExceeded(what, limit_name, limit, got)
