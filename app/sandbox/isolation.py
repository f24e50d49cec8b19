"""Run learner programs in separate worker processes that are killed when they overrun.

The interpreter stops runaway programs itself (deadline checks between statements and calls,
size checks before allocations); the worker process is the backstop for whatever slips through:
it runs with one torch thread, a CPU-time rlimit, an address-space rlimit and no core dumps, and
the parent kills it (SIGKILL) ``KILL_MARGIN_SECONDS`` after ``max_seconds``.

The processes come from ``app.workers.pool`` (fresh ``python -m app.sandbox.worker`` processes,
reused from a small pool); this module adds what is the sandbox's own: its requests, and its
replies turned back into the sandbox's exceptions.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Literal, overload

from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused
from app.sandbox.recording import StepsFormat
from app.workers.pool import WorkerPool as ProcessPool
from app.workers.pool import WorkerStopped

# Time past max_seconds before the worker is killed (the interpreter normally stops it first).
KILL_MARGIN_SECONDS = 1.0

# "notebook": the answer is the program written as a notebook (its title in the backward slot).
Kind = Literal["run", "graph", "notebook"]


class SandboxBusy(SandboxRefused):
    """Every worker stayed busy for ``wait_seconds``: the web layer may answer 503/429."""


def _busy(pool: ProcessPool) -> SandboxBusy:
    return SandboxBusy(
        f"all {pool.size} sandbox workers stayed busy for {pool.wait_seconds:g} s (setting "
        "program_queue_seconds): try again in a moment"
    )


class WorkerPool(ProcessPool):
    """At most ``size`` sandbox worker processes, each running one program at a time."""

    def __init__(self, size: int | None = None, wait_seconds: float = 30.0) -> None:
        super().__init__("app.sandbox.worker", size, wait_seconds, busy=_busy)

    def run(
        self,
        kind: Kind,
        code: str,
        limits: SandboxLimits,
        backward: str | dict[str, Any] | None,
        steps: StepsFormat = "full",
        encoded: bool = False,
    ) -> Any:
        """The worker's answer: a dict, or the bytes of its JSON when ``encoded``."""
        request = (kind, code, limits, backward, steps, encoded)
        try:
            reply = self.ask(request, limits.max_seconds + KILL_MARGIN_SECONDS)
        except WorkerStopped as stopped:
            raise _stopped(stopped.exitcode, limits) from None
        return _unpack(reply)


def _stopped(exitcode: int | None, limits: SandboxLimits) -> SandboxLimitExceeded:
    if exitcode is None or exitcode == -signal.SIGXCPU:
        return SandboxLimitExceeded(
            f"the program ran longer than the limit of {limits.max_seconds} s (max_seconds) "
            "and was stopped",
            limit="max_seconds",
        )
    return SandboxLimitExceeded(
        f"the program was stopped by the sandbox (exit code {exitcode}): it probably used "
        f"more memory than allowed (max_total_bytes = {limits.max_total_bytes})",
        limit="max_total_bytes",
    )


def _unpack(reply: tuple[Any, ...]) -> Any:
    tag = reply[0]
    if tag == "ok":
        return reply[1]
    if tag == "limit":
        raise SandboxLimitExceeded(reply[1], reply[2], reply[3])
    if tag == "refused":
        raise SandboxRefused(reply[1], reply[2])
    raise RuntimeError(f"the sandbox worker failed: {reply[1]}")


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> WorkerPool:
    """The process-wide worker pool, created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool()
        return _pool


def configure_pool(size: int | None = None, wait_seconds: float = 30.0) -> WorkerPool:
    """Replace the process-wide pool (e.g. from settings at app start-up)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
        _pool = WorkerPool(size, wait_seconds)
        return _pool


def shutdown_pool() -> None:
    """Stop all idle workers (busy ones stop when their program ends)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.close()
            _pool = None


@overload
def run_program_isolated(
    code: str,
    limits: SandboxLimits | None = ...,
    kind: Kind = ...,
    backward: str | dict[str, Any] | None = ...,
    steps: StepsFormat = ...,
    encoded: Literal[False] = ...,
) -> dict[str, Any]: ...


@overload
def run_program_isolated(
    code: str,
    limits: SandboxLimits | None,
    kind: Kind,
    backward: str | dict[str, Any] | None,
    steps: StepsFormat,
    encoded: Literal[True],
) -> bytes: ...


def run_program_isolated(
    code: str,
    limits: SandboxLimits | None = None,
    kind: Kind = "run",
    backward: str | dict[str, Any] | None = None,
    steps: StepsFormat = "full",
    encoded: bool = False,
) -> dict[str, Any] | bytes:
    """``run_program`` (kind="run") or ``autograd_graph`` (kind="graph") in a worker process.

    Same results and exceptions as the in-process functions, plus: SandboxLimitExceeded naming
    max_seconds when the worker had to be killed, and SandboxBusy when no worker freed up in
    time. ``steps`` is run_program's format; with ``encoded`` the answer is the bytes of its JSON
    (without ``statements``), made in the worker. Blocking: call it from a thread, never on the
    event loop.
    """
    answer = get_pool().run(kind, code, limits or SandboxLimits(), backward, steps, encoded)
    if encoded:
        return bytes(answer)
    result: dict[str, Any] = answer
    return result
