"""How each live lesson page turns its URL into numbers, figures and code on screen.

One module per lesson in this package; ``VIEWS`` collects them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from app.config import Settings
from app.web.access import LearnerRuns, Viewer
from app.web.admission import Gate
from app.web.code_url import encode_code

T = TypeVar("T")


def source(*functions: Callable[..., Any]) -> str:
    """The real source of lesson functions, as the page shows it."""
    return "\n\n".join(inspect.getsource(fn).rstrip() for fn in functions)


@dataclass(frozen=True)
class PageContext:
    """Who is asking for a page, and the gate its lesson's programs go through.

    Built by the page routes from the request (``app.web.routes.pages``); the start-up warmer
    builds pages without one (``PageContext()``: no client, no gates).
    """

    client: str = "local"
    program_gate: Gate | None = None
    # The learner asking (a lesson over runs lists only theirs); None for the start-up warmer.
    viewer: Viewer | None = None
    # Counts one program against the learner's program_max_per_minute (raises RateLimited).
    count_program: Callable[[], None] | None = None

    def run_program(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` (a sandbox call) through the program gate, in this thread, counted as
        one of the learner's programs this minute: raises ``TooBusy`` (a 429 page) when the
        gate or the rate refuses."""
        if self.count_program is not None:
            self.count_program()
        if self.program_gate is None:
            return fn(*args)
        return self.program_gate.run_sync(self.client, fn, *args)


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
    # A lesson that runs programs: explore(params, settings, context) gets the PageContext, to go
    # through the app's program gate as the requesting client.
    uses_context: bool = False
    # The program the playground steps through and the notebook download holds, where it cannot
    # be the snippet itself; None: the snippet. Every snippet is plain PyTorch that also runs in
    # the sandbox, except the Transforms one, which imports this project's own classes and draws
    # its pictures with Pillow (neither is for a sandboxed program): its playground program
    # builds the same pipeline from torchvision.transforms on the pictures the sandbox ships.
    playground: Callable[[Any], str] | None = None

    def program(self, params: Any) -> str:
        """The lesson's program at ``params``, as the playground and the notebook get it."""
        return (self.playground or self.snippet)(params)

    def program_links(self, params: Any, query: Mapping[str, str]) -> dict[str, str]:
        """Where the snippet's "Step through it" and "Download notebook" links go: the playground
        with the program in its URL (``?code=``, as ``app.web.code_url`` packs it), and this
        lesson's notebook at the same query (GET /api/lessons/{slug}/notebook)."""
        code = urlencode({"code": encode_code(self.program(params)), "from": self.slug})
        notebook = f"/api/lessons/{self.slug}/notebook"
        pairs = list(query.items())
        return {
            "playground_url": f"/playground?{code}",
            "notebook_url": f"{notebook}?{urlencode(pairs)}" if pairs else notebook,
        }

    def build(
        self,
        query: Mapping[str, str],
        settings: Settings,
        runs: Any = None,
        context: PageContext | None = None,
    ) -> dict[str, Any]:
        """The template context for the page and its partial: params, form, result, figures,
        code, snippet, and the snippet's links (``playground_url``, ``notebook_url``)."""
        params = self.parse(query, settings)
        extra: tuple[Any, ...] = ()
        if self.uses_runs:
            viewer = (context or PageContext()).viewer
            extra = (LearnerRuns(runs, viewer) if runs is not None else None,)
        elif self.uses_context:
            extra = (context or PageContext(),)
        result = self.explore(params, settings, *extra)
        return {
            "params": params,
            "form": self.form(params),
            "result": result,
            "figures": self.figures(result),
            "code": self.code,
            "snippet": self.snippet(params),
            **self.program_links(params, query),
        }
