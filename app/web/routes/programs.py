"""Learner-typed PyTorch over HTTP: the plumbing the tensors and autograd lessons share.

It holds no routes: ``POST /api/tensors/run`` is the tensors lesson's
(``app.web.routes.lessons.tensors``) and ``POST /api/autograd/graph`` the autograd lesson's
(``app.web.routes.lessons.autograd``); both, and both lessons' pages (``app.web.views``), run
programs through what is here.

Programs run in the sandbox's worker processes, admitted through the app's program gate
(``app.web.admission``): waiting happens in the gate's own threads, never in the thread pool that
renders pages and answers ``/healthz``, and a request that would wait too long, or one over its
client's share, is a 429 at once. The worker sends back the bytes of the answer's JSON, made
within ``max_answer_bytes``, so the server never builds the answer itself.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response

from app.config import Settings
from app.sandbox import SandboxLimits, run_program_isolated
from app.sandbox.isolation import Kind, configure_pool, get_pool
from app.sandbox.recording import StepsFormat
from app.web.admission import Gate, client_key
from app.web.rates import learner_key, rates_of
from app.web.schemas import error_responses


def program_router() -> APIRouter:
    """A router for a lesson's program routes: tagged ``programs``, and 429 when the program gate
    is full (program_max_waiting, program_max_per_client) or no sandbox worker freed up within
    program_queue_seconds."""
    return APIRouter(tags=["programs"], responses=error_responses(429))


def sandbox_limits(settings: Settings) -> SandboxLimits:
    """The sandbox's limits, from the ``program_`` settings of the same names, and the answer
    budget every answer shares (``max_answer_bytes``)."""
    values: dict[str, Any] = {
        f.name: getattr(settings, "program_" + f.name)
        for f in fields(SandboxLimits)
        if f.name != "max_answer_bytes"
    }
    return SandboxLimits(**values, max_answer_bytes=settings.max_answer_bytes)


def ensure_pool(settings: Settings) -> None:
    """Size the process's worker pool from settings, once; later apps reuse the warm workers."""
    size = settings.program_workers or None
    pool = get_pool()
    wanted = size or pool.size
    if pool.size != wanted or pool.wait_seconds != settings.program_queue_seconds:
        configure_pool(size, settings.program_queue_seconds)


_warmed = False


def warm_sandbox(settings: Settings) -> None:
    """Start the pool's workers in the background, once per process, so no request waits for one."""
    global _warmed
    if not _warmed:
        _warmed = True
        ensure_pool(settings)
        get_pool().warm(get_pool().size, wait=False)


def answer_json(
    settings: Settings,
    kind: Kind,
    code: str,
    backward: str | dict[str, Any] | None = None,
    steps: StepsFormat = "full",
) -> bytes:
    """The worker's answer as the bytes of its JSON (blocking: run it through the gate)."""
    ensure_pool(settings)
    return run_program_isolated(code, sandbox_limits(settings), kind, backward, steps, True)


def json_response(body: bytes) -> Response:
    """The worker's JSON bytes as the answer, as they are: the server never parses them."""
    return Response(content=body, media_type="application/json")


async def admitted(request: Request, gate: Gate, *args: Any) -> bytes:
    """``answer_json(*args)`` through the program gate, as the requesting client.

    Shielded from cancellation, as the plain ``def`` routes were: once admitted, the program
    runs to its end in a worker whatever the client does, so the request waits for it too.
    Each program run counts against the learner's ``program_max_per_minute`` first (a 429).
    """
    await rates_of(request).hit_async("program_max_per_minute", learner_key(request))
    with anyio.CancelScope(shield=True):
        body = await gate.run(client_key(request), answer_json, *args)
    return body
