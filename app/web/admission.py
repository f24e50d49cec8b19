"""Admission to the worker pools: bounded lines, a fair share per client, never a long wait.

Blocking work (a learner program, a picture) runs in a :class:`Gate`'s own threads, never in the
thread pool that renders pages and answers ``/healthz``: a class of slow programs can fill the
gate, not the server. A gate admits at most ``slots`` requests at work and ``max_waiting`` in
line; past that, or past ``per_client`` for one client, or after ``wait_seconds`` in line, the
request is refused at once with :class:`TooBusy` (HTTP 429 with ``Retry-After``, naming the
setting).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from app.config import Settings
from app.workers.pool import TooBusy

__all__ = ["Gate", "GateSettings", "TooBusy", "client_key", "gate_for"]

T = TypeVar("T")


def client_key(connection: HTTPConnection) -> str:
    """Who is asking, for fair shares: the client's address (uvicorn puts a trusted proxy's
    ``X-Forwarded-For`` there)."""
    client = connection.client
    return client.host if client is not None else "unknown"


@dataclass(frozen=True)
class GateSettings:
    """The numbers a gate enforces and the setting names its refusals quote."""

    what: str  # "program", "picture": what the learner is told is busy
    slots: int
    max_waiting: int
    wait_seconds: float
    per_client: int
    waiting_setting: str
    wait_setting: str
    per_client_setting: str


class Gate:
    """At most ``slots`` at work and ``max_waiting`` in line; ``per_client`` per client."""

    def __init__(self, settings: GateSettings) -> None:
        self.settings = settings
        self._slots = threading.BoundedSemaphore(settings.slots)
        self._lock = threading.Lock()
        self._admitted = 0  # at work or in line
        self._per_client: dict[str, int] = {}
        self._executor = self._new_executor()

    @property
    def admitted(self) -> int:
        """Requests at work or in line now."""
        return self._admitted

    def _admit(self, client: str) -> None:
        s = self.settings
        with self._lock:
            mine = self._per_client.get(client, 0)
            if mine >= s.per_client:
                raise TooBusy(
                    f"You already have {mine} {s.what} request(s) running or waiting, the most "
                    f"one client may have at once (setting {s.per_client_setting} = "
                    f"{s.per_client}): wait for them to finish, then try again.",
                    s.per_client_setting,
                )
            if self._admitted >= s.slots + s.max_waiting:
                raise TooBusy(
                    f"All {s.slots} {s.what} workers are busy and {s.max_waiting} requests are "
                    f"already waiting, the most allowed (setting {s.waiting_setting} = "
                    f"{s.max_waiting}): try again in a moment.",
                    s.waiting_setting,
                )
            self._admitted += 1
            self._per_client[client] = mine + 1

    def _release(self, client: str) -> None:
        with self._lock:
            self._admitted -= 1
            left = self._per_client.get(client, 1) - 1
            if left > 0:
                self._per_client[client] = left
            else:
                self._per_client.pop(client, None)

    def _work(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        s = self.settings
        if not self._slots.acquire(timeout=s.wait_seconds):
            raise TooBusy(
                f"All {s.slots} {s.what} workers stayed busy for {s.wait_seconds:g} s (setting "
                f"{s.wait_setting}): try again in a moment.",
                s.wait_setting,
            )
        try:
            return fn(*args)
        finally:
            self._slots.release()

    def run_sync(self, client: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in this thread once admitted (for code already off the event loop,
        such as a page being rendered); raises :class:`TooBusy` when refused."""
        self._admit(client)
        try:
            return self._work(fn, args)
        finally:
            self._release(client)

    async def run(self, client: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the gate's own threads once admitted; :class:`TooBusy` at once
        when refused. The event loop never blocks, and no shared thread waits in line."""
        self._admit(client)
        try:
            future = self._executor.submit(self._work, fn, args)
        except RuntimeError:  # shut down
            self._release(client)
            raise
        # Released when the work is over, not when the client stops waiting for it: a client
        # that went away must not free its place while its program still runs.
        future.add_done_callback(lambda _: self._release(client))
        return await asyncio.wrap_future(future)

    def _new_executor(self) -> ThreadPoolExecutor:
        # Threads start as work arrives, so an app that never runs a program costs none.
        s = self.settings
        return ThreadPoolExecutor(
            max_workers=s.slots + s.max_waiting, thread_name_prefix=f"{s.what}-gate"
        )

    def close(self) -> None:
        """Let the threads go once their work is done (at the app's shutdown); the gate stays
        usable, with fresh threads, if the app starts again."""
        old, self._executor = self._executor, self._new_executor()
        old.shutdown(wait=False, cancel_futures=True)


def default_workers(setting: int) -> int:
    """A worker-count setting: 0 means one per CPU, at most 4."""
    return setting or max(1, min(4, os.cpu_count() or 1))


def gate_for(settings: Settings, what: str) -> Gate:
    """The gate in front of the ``what`` workers ("program" or "picture"), from the settings
    named after them: ``<what>_workers``, ``<what>_max_waiting``, ``<what>_queue_seconds``,
    ``<what>_max_per_client``."""
    names = {key: f"{what}_{key}" for key in ("max_waiting", "queue_seconds", "max_per_client")}
    return Gate(
        GateSettings(
            what=what,
            slots=default_workers(getattr(settings, f"{what}_workers")),
            max_waiting=getattr(settings, names["max_waiting"]),
            wait_seconds=getattr(settings, names["queue_seconds"]),
            per_client=getattr(settings, names["max_per_client"]),
            waiting_setting=names["max_waiting"],
            wait_setting=names["queue_seconds"],
            per_client_setting=names["max_per_client"],
        )
    )
