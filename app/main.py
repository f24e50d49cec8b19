"""The app factory: ``create_app(settings)`` builds a complete PyTorch Explorer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings, get_settings
from app.jobs.retention import Retention
from app.lessons.images import guard_pixels
from app.lessons.runtime import configure_torch
from app.web import admission
from app.web.assets import load_assets
from app.web.errors import (
    body_too_large,
    error_response,
    install_error_handlers,
    upload_over_limit,
)
from app.web.identity import LearnerIdentity
from app.web.live import start_runs
from app.web.rates import Rates
from app.web.routes import (
    api,
    classes,
    docs,
    images,
    me,
    notebook,
    pages,
    playground,
    programs,
    run_pages,
    runs,
    static,
)
from app.web.routes.lessons import LESSON_ROUTERS
from app.web.server import BodyTimeout
from app.web.templating import make_templates
from app.workers import pictures

SECURITY_HEADERS = [
    # Plotly draws with inline styles, so style-src needs 'unsafe-inline'; scripts never do.
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
        b"object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the security headers to every HTTP response (pure ASGI: streaming stays intact)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


# Methods that change nothing: served whatever page asked (a read is not what a forged request
# wants, and browsers keep another site's page from reading the answer).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values of a request the app's own pages (or the address bar) made.
OWN_SITE = frozenset({"same-origin", "none"})


def cross_site(headers: Headers) -> str | None:
    """Why a state-changing request looks sent by another site's page, or None.

    Browsers say where a request comes from: ``Sec-Fetch-Site`` (every current browser) and
    ``Origin`` (on every POST, including a plain HTML form's). A request from the app's own
    pages is ``same-origin`` with an ``Origin`` whose host is the one it was sent to; a script
    (curl, httpx, a notebook) sends neither header and is served as before.
    """
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in OWN_SITE:
        return f"the browser marked it Sec-Fetch-Site: {site[:40]}"
    origin = headers.get("origin")
    if origin is None:
        return None
    if origin == "null":
        return "its Origin is null (a sandboxed page, a file, or a redirect from elsewhere)"
    host = origin.split("://", 1)[-1].rstrip("/").lower()
    if host != headers.get("host", "").lower():
        return f"it came from {origin[:100]}, not from this site"
    return None


class SameOrigin:
    """Refuses (403) any request that would change something when another site's page sent it:
    a form on any other site must not launch, cancel or delete a learner's runs (issue 16). The
    check runs before the body is read; safe methods pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            why = cross_site(Headers(scope=scope))
            if why is not None:
                detail = (
                    f"Refused: this request would change something, and {why}. PyTorch "
                    "Explorer only takes changes from its own pages, or from scripts that send "
                    "no Origin header (a cross-site request, as a form on another site makes)."
                )
                await error_response(Request(scope), 403, detail)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses request bodies over ``max_bytes``: by Content-Length up front, else while streaming.

    Starlette's own limiter answers a declared oversize body with plain text that names no limit;
    ours answers through the app's error handlers, so the learner reads which limit it was.
    """

    # Multipart overhead (boundaries, part headers) on top of the file itself.
    MULTIPART_SLACK = 64 * 1024

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        max_upload_bytes: int,
        upload_limits: dict[str, tuple[int, str]] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes
        # Upload routes with their own limit: path -> (bytes, setting name).
        self.upload_limits = upload_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        message: Callable[[int, int | None], str]
        if headers.get("content-type", "").startswith("multipart/"):
            shown, name = self.upload_limits.get(
                scope["path"], (self.max_upload_bytes, "max_upload_bytes")
            )
            limit = shown + self.MULTIPART_SLACK
            message = partial(upload_over_limit, setting=name)
        else:
            limit, name, shown = self.max_bytes, "max_json_bytes", self.max_bytes
            message = body_too_large
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            request = Request(scope)
            detail = message(shown, int(declared))
            await error_response(request, 413, detail, {"limit": name})(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message_in = await receive()
            seen += len(message_in.get("body", b""))
            if seen > limit:
                raise HTTPException(413, message(shown, None))
            return message_in

        await self.app(scope, counted, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A PyTorch Explorer app with its own settings (tests pass theirs)."""
    settings = settings or get_settings()
    configure_torch(settings.torch_threads)
    guard_pixels(settings.max_image_pixels)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.program_prewarm:
            programs.warm_sandbox(settings)
        pictures.warm(settings)  # picture workers (CNN, Transforms) start in the background
        app.state.runs = start_runs(settings)
        # Deletes expired runs now and every runs_retention_interval_seconds (app.jobs.retention).
        retention = Retention(app.state.runs, settings)
        retention.start()
        warmer = pages.LessonWarmer(settings, app.state.runs) if settings.warm_lessons else None
        try:
            yield
        finally:
            if warmer is not None:
                warmer.stop()
            retention.stop()
            app.state.rates.close()
            app.state.runs.close()  # unfinished runs become "interrupted"; none stay "running"
            app.state.program_gate.close()
            app.state.picture_gate.close()

    app = FastAPI(
        lifespan=lifespan,
        title="PyTorch Explorer",
        version="0.1.0",
        description="PyTorch's core ideas, computed by real PyTorch.",
        docs_url=None,  # our /docs is rendered on the server: no CDN, no inline script
        redoc_url=None,
    )
    app.state.settings = settings
    # Blocking work waits in these gates' own threads, never in the pool that renders pages.
    app.state.program_gate = admission.gate_for(settings, "program")
    app.state.picture_gate = admission.gate_for(settings, "picture")
    app.state.rates = Rates(settings)
    app.state.assets = load_assets()
    app.state.templates = make_templates(app.state.assets)
    install_error_handlers(app)
    app.include_router(api.router)
    for router in LESSON_ROUTERS:  # each lesson's own: app.web.routes.lessons.<name>
        app.include_router(router)
    app.include_router(notebook.router)
    app.include_router(images.router)
    app.include_router(runs.router)
    app.include_router(run_pages.router)
    app.include_router(me.router)
    app.include_router(classes.router)
    app.include_router(playground.router)
    app.include_router(pages.router)
    app.include_router(static.router)
    app.include_router(docs.router)
    # Level 6, not Starlette's 9: a quarter of the time for a few percent more bytes on the
    # large JSON answers (image previews), which are made fresh on every request.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    # Inside the refusals above it: a forged, oversized or stalled request is never given a
    # learner (nor makes the store generate the signing key).
    app.add_middleware(LearnerIdentity, secret_key=settings.secret_key)
    checkpoint_limit = (settings.max_checkpoint_bytes, "max_checkpoint_bytes")
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_json_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_limits={
            "/api/checkpoints/inspect": checkpoint_limit,
            "/api/checkpoints/evaluate": checkpoint_limit,
        },
    )
    # A request whose body stops coming is answered 408 and its task freed (app.web.server).
    app.add_middleware(BodyTimeout, seconds=settings.body_timeout_seconds)
    app.add_middleware(SameOrigin)  # before the body limits: a forged request is not read
    app.add_middleware(SecurityHeaders)
    return app


app = create_app()
