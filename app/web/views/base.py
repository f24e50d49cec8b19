"""How each live lesson page turns its URL into numbers, figures and code on screen.

One module per lesson in this package; ``VIEWS`` collects them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.config import Settings


def source(*functions: Callable[..., Any]) -> str:
    """The real source of lesson functions, as the page shows it."""
    return "\n\n".join(inspect.getsource(fn).rstrip() for fn in functions)


@dataclass(frozen=True)
class LessonView:
    """One live lesson: parse the URL, compute, draw, and show the code that did it."""

    slug: str
    parse: Callable[[Mapping[str, str], Settings], Any]
    explore: Callable[..., dict[str, Any]]  # (params, settings), or (params, settings, runs)
    figures: Callable[[dict[str, Any]], dict[str, dict[str, Any]]]
    code: dict[str, str]  # section -> the source of the functions behind it
    snippet: Callable[[Any], str]
    form: Callable[[Any], dict[str, Any]]  # params as the form shows them
    # A lesson over the learner's own training runs: explore(params, settings, runs) gets the
    # app's run store too (app.web.live.Runs).
    uses_runs: bool = False

    def build(
        self, query: Mapping[str, str], settings: Settings, runs: Any = None
    ) -> dict[str, Any]:
        """The template context for the page and its partial."""
        params = self.parse(query, settings)
        extra = (runs,) if self.uses_runs else ()
        result = self.explore(params, settings, *extra)
        return {
            "params": params,
            "form": self.form(params),
            "result": result,
            "figures": self.figures(result),
            "code": self.code,
            "snippet": self.snippet(params),
        }
