"""The meta routes of the JSON API: health, limits and the lesson list.

Every lesson's own routes are in ``app.web.routes.lessons.<name>``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.lessons.registry import LESSONS
from app.web.deps import SettingsDep
from app.web.schemas import Health

router = APIRouter()


@router.get("/healthz", tags=["meta"])
async def healthz() -> Health:
    """Liveness: answers on the event loop itself, without torch and without a thread, so it
    never waits behind the work that fills the thread pools."""
    return Health()


@router.get("/api/limits", tags=["meta"])
def limits(settings: SettingsDep) -> dict[str, int | float]:
    """Every limit a request can hit, by setting name (env ``EXPLORER_<NAME>``)."""
    return settings.limits()


@router.get("/api/lessons", tags=["meta"])
def lessons() -> list[dict[str, Any]]:
    """The eleven lessons in the notes' order. ``live`` stays for clients that read it: every
    listed lesson has a page."""
    return [
        {"slug": x.slug, "title": x.title, "section": x.section, "summary": x.summary,
         "live": True, "path": x.path, "apis": list(x.apis)}
        for x in LESSONS
    ]  # fmt: skip
