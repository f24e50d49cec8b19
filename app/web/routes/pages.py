"""HTML pages: home, the lessons, their partial updates and JSON twins."""

from __future__ import annotations

import gc
import logging
import threading
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from app.lessons.registry import BY_SLUG, LESSONS, Lesson, neighbours
from app.web.access import Viewer, viewer_of
from app.web.admission import client_key
from app.web.deps import SettingsDep
from app.web.rates import learner_key, rates_of
from app.web.schemas import LessonViewResponse, error_responses
from app.web.templating import render
from app.web.views import VIEWS, LessonView
from app.web.views.base import PageContext

router = APIRouter()
log = logging.getLogger("app.pages")


_frozen = threading.Lock()
_frozen_done = False


def freeze_startup_heap() -> None:
    """Move what start-up built (torch, the app, the warmed lessons' caches: about half a
    million objects) out of the cyclic garbage collector's reach, once per process.

    Those objects live as long as the server, yet every full collection walked them all while
    holding the GIL: 0.6-0.8 s on the 2-CPU machine, during which no request moved. Under the
    load test (bench/loadtest.py) such pauses stalled a class's first page loads by more than a
    second. After ``gc.freeze()`` a full collection only walks what requests made since."""
    global _frozen_done
    with _frozen:
        if _frozen_done:
            return
        _frozen_done = True
        gc.collect()  # free start-up's garbage first: whatever is frozen is never collected
        gc.freeze()
        log.info("froze %d start-up objects out of the garbage collector", gc.get_freeze_count())


class LessonWarmer:
    """Builds every lesson's default view once, in a background thread: what the first visitor
    of each page would otherwise wait for (the example runs are trained and cached); then
    freezes the start-up heap (``freeze_startup_heap``).

    ``stop()`` lets the lesson being built finish, then joins: a thread left running torch when
    the interpreter exits would abort it."""

    def __init__(self, settings: Any, runs: Any) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._warm, args=(settings, runs), name="warm-lessons", daemon=True
        )
        self._thread.start()

    def _warm(self, settings: Any, runs: Any) -> None:
        for slug, view in VIEWS.items():
            if self._stop.is_set():
                return
            try:
                view.build({}, settings, runs)
            except Exception:  # noqa: BLE001 - a page that fails here fails for its visitor too
                log.exception("warming the %s lesson failed", slug)
        freeze_startup_heap()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


def _lesson(slug: str) -> Lesson:
    lesson = BY_SLUG.get(slug)
    if lesson is None:
        raise HTTPException(404, f"There is no lesson called {slug!r}.")
    return lesson


def _view(slug: str) -> LessonView:
    """The lesson's view; a slug with none is not found, like an unknown one."""
    _lesson(slug)
    view = VIEWS.get(slug)
    if view is None:
        raise HTTPException(404, f"The lesson {slug!r} has no page.")
    return view


def _template(slug: str, partial: bool = False) -> str:
    """The lesson's template, named by its slug with underscores, e.g.
    ``lessons/softmax_cross_entropy.html``; its changing part begins with an underscore."""
    return f"lessons/{'_' if partial else ''}{slug.replace('-', '_')}.html"


def _runs(request: Request) -> Any:
    """The app's runs (a lesson over training runs reads them); None before start-up."""
    return getattr(request.app.state, "runs", None)


def _viewer(request: Request) -> Viewer | None:
    """The learner asking; None while the store that signs learner cookies is out of reach (a
    lesson then lists no runs, and every other page is still served)."""
    try:
        return viewer_of(request)
    except Exception:  # noqa: BLE001 - learner_of re-raises the store's error
        return None


def _context(request: Request) -> PageContext:
    """The requesting client and learner, and the app's program gate, for lessons that run
    programs or list the learner's runs."""
    gate = getattr(request.app.state, "program_gate", None)
    rates = rates_of(request)
    learner = learner_key(request)
    return PageContext(
        client=client_key(request),
        program_gate=gate,
        viewer=_viewer(request),
        count_program=lambda: rates.hit("program_max_per_minute", learner),
    )


def _build(view: LessonView, request: Request, settings: Any) -> dict[str, Any]:
    return view.build(request.query_params, settings, _runs(request), _context(request))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request) -> Response:
    """Every lesson, in the order of the notes."""
    return render(request, "home.html", {"lessons": LESSONS})


@router.get("/lessons/{slug}", response_class=HTMLResponse, include_in_schema=False)
def lesson_page(slug: str, request: Request, settings: SettingsDep) -> Response:
    """A lesson: figures, controls and the code behind them."""
    view = _view(slug)
    before, after = neighbours(slug)
    context = {"lesson": _lesson(slug), "before": before, "after": after}
    context |= _build(view, request, settings)
    return render(request, _template(slug), context)


@router.get("/lessons/{slug}/partial", response_class=HTMLResponse, include_in_schema=False)
def lesson_partial(slug: str, request: Request, settings: SettingsDep) -> Response:
    """The part of a lesson page that changes with its controls, for in-place updates."""
    view = _view(slug)
    context = {"lesson": _lesson(slug)} | _build(view, request, settings)
    return render(request, _template(slug, partial=True), context)


@router.get("/api/lessons/{slug}/view", tags=["lessons"], responses=error_responses(404))
def lesson_view(slug: str, request: Request, settings: SettingsDep) -> LessonViewResponse:
    """The JSON twin of a lesson page: the same query string, the numbers and figures it shows."""
    view = _view(slug)
    built = _build(view, request, settings)
    return LessonViewResponse(
        slug=slug, params=built["form"], result=built["result"], figures=built["figures"]
    )
