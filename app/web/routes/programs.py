"""Learner-typed PyTorch: run it step by step, or draw its autograd graph (API.md "Programs").

Programs run in the sandbox's worker processes, reached from a worker thread (these routes are
plain ``def``), so a slow program never stalls the event loop or other requests.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.config import Settings
from app.sandbox import SandboxLimits, run_program_isolated
from app.sandbox.isolation import configure_pool, get_pool
from app.web.deps import SettingsDep, limits_from
from app.web.schemas import (
    GraphRequest,
    GraphResponse,
    ProgramRequest,
    ProgramResponse,
    error_responses,
)

# 429: every sandbox worker stayed busy for program_queue_seconds.
router = APIRouter(tags=["programs"], responses=error_responses(429))


def sandbox_limits(settings: Settings) -> SandboxLimits:
    """The sandbox's limits, from the ``program_`` settings of the same names."""
    return limits_from(settings, SandboxLimits, prefix="program_")


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


def _run(code: str, settings: Settings, kind: str, backward: str | None = None) -> dict[str, Any]:
    ensure_pool(settings)
    return run_program_isolated(code, sandbox_limits(settings), kind, backward)  # type: ignore[arg-type]


@router.post("/api/tensors/run")
def run_tensors(body: ProgramRequest, settings: SettingsDep) -> ProgramResponse:
    """Run a program one statement at a time; every variable after every step.

    A program the sandbox refuses is a 422 naming the line and the reason; a runtime error
    inside an allowed program is a 200 with the steps so far and ``error``.
    """
    return ProgramResponse.model_validate(_run(body.code, settings, "run"))


@router.post("/api/autograd/graph")
def autograd_graph(body: GraphRequest, settings: SettingsDep) -> GraphResponse:
    """The program's real autograd graph, and with ``backward`` set, the engine's backward steps."""
    return GraphResponse.model_validate(_run(body.code, settings, "graph", body.backward))
