"""Run learner programs in separate worker processes that are killed when they overrun.

The interpreter stops runaway programs itself (deadline checks between statements and calls,
size checks before allocations); the worker process is the backstop for whatever slips through:
it runs with one torch thread, a CPU-time rlimit, an address-space rlimit and no core dumps, and
the parent kills it (SIGKILL) ``KILL_MARGIN_SECONDS`` after ``max_seconds``.

Workers are fresh ``python -m app.sandbox.worker`` processes (never a fork of the server, and
independent of any other multiprocessing use in the app), reused from a small pool: a call costs a
socket round trip, not a process start. A killed worker is replaced in the background.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from app.sandbox.limits import SandboxLimitExceeded, SandboxLimits, SandboxRefused

# Time past max_seconds before the worker is killed (the interpreter normally stops it first).
KILL_MARGIN_SECONDS = 1.0
# A fresh worker imports torch and warms up (about 2-4 s); waiting longer means it is broken.
START_TIMEOUT_SECONDS = 120.0
# Workers are replaced after this many programs so slow leaks cannot build up.
MAX_TASKS_PER_WORKER = 200

Kind = Literal["run", "graph"]


class SandboxBusy(SandboxRefused):
    """Every worker stayed busy for ``wait_seconds``: the web layer may answer 503/429."""


_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class _Worker:
    """One ``python -m app.sandbox.worker`` process and the socket to talk to it.

    A fresh interpreter (not a fork of the server, and without re-running the server's
    ``__main__`` as multiprocessing's spawn would) with one BLAS/OpenMP thread.
    """

    def __init__(self) -> None:
        parent, child = socket.socketpair()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH")) if p
        )
        with child:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.sandbox.worker", str(child.fileno())],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                cwd=_PROJECT_ROOT,
                env=env,
            )
        self.conn = Connection(parent.detach())
        self.tasks = 0
        if not self.conn.poll(START_TIMEOUT_SECONDS):
            self.kill()
            raise RuntimeError("a sandbox worker did not start")
        try:
            self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise RuntimeError("a sandbox worker did not start") from None

    def alive(self) -> bool:
        return self.process.poll() is None

    def exitcode(self) -> int | None:
        return self.process.poll()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(5)
        with contextlib.suppress(Exception):
            self.conn.close()


class WorkerPool:
    """At most ``size`` worker processes, each running one program at a time."""

    def __init__(self, size: int | None = None, wait_seconds: float = 30.0) -> None:
        self.size = size or max(1, min(4, os.cpu_count() or 1))
        self.wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(self.size)
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._starting = 0
        self._closed = False

    def warm(self, count: int = 1, wait: bool = True) -> None:
        """Start ``count`` workers now so early requests pay no start-up (2-6 s each)."""
        for _ in range(min(count, self.size)):
            if wait:
                worker = _Worker()
                with self._cond:
                    self._idle.append(worker)
                    self._cond.notify()
            else:
                self._start_in_background()

    def _take(self) -> _Worker:
        """An idle worker, one that is starting, or else a new one."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        with self._cond:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    worker.kill()
                if not self._starting or not self._cond.wait(deadline - time.monotonic()):
                    break
        return _Worker()

    def _give_back(self, worker: _Worker) -> None:
        worker.tasks += 1
        if worker.tasks >= MAX_TASKS_PER_WORKER or self._closed:
            worker.kill()
            if not self._closed:
                self._start_in_background()
            return
        with self._cond:
            self._idle.append(worker)
            self._cond.notify()

    def _start_in_background(self) -> None:
        with self._cond:
            self._starting += 1

        def start() -> None:
            worker = None
            # On failure the next request starts a worker itself and reports the error.
            with contextlib.suppress(Exception):
                worker = _Worker()
            with self._cond:
                self._starting -= 1
                if worker is not None:
                    if self._closed or len(self._idle) >= self.size:
                        worker.kill()
                    else:
                        self._idle.append(worker)
                self._cond.notify_all()

        threading.Thread(target=start, name="sandbox-worker-start", daemon=True).start()

    def run(
        self, kind: Kind, code: str, limits: SandboxLimits, backward: str | None
    ) -> dict[str, Any]:
        if not self._slots.acquire(timeout=self.wait_seconds):
            raise SandboxBusy(
                f"all {self.size} sandbox workers stayed busy for {self.wait_seconds} s: "
                "try again in a moment"
            )
        try:
            worker = self._take()
            reply = self._ask(worker, (kind, code, limits, backward), limits)
            self._give_back(worker)
        finally:
            self._slots.release()
        return _unpack(reply)

    def _ask(self, worker: _Worker, request: tuple[Any, ...], limits: SandboxLimits) -> Any:
        timeout = limits.max_seconds + KILL_MARGIN_SECONDS
        try:
            worker.conn.send(request)
            if worker.conn.poll(timeout):
                return worker.conn.recv()
        except (EOFError, OSError):
            pass
        time.sleep(0.05)  # let a dying worker's exit status arrive
        exitcode = worker.exitcode()
        worker.kill()
        self._start_in_background()
        if exitcode is None or exitcode == -signal.SIGXCPU:
            raise SandboxLimitExceeded(
                f"the program ran longer than the limit of {limits.max_seconds} s (max_seconds) "
                "and was stopped",
                limit="max_seconds",
            )
        raise SandboxLimitExceeded(
            f"the program was stopped by the sandbox (exit code {exitcode}): it probably used "
            f"more memory than allowed (max_total_bytes = {limits.max_total_bytes})",
            limit="max_total_bytes",
        )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


def _unpack(reply: tuple[Any, ...]) -> dict[str, Any]:
    tag = reply[0]
    if tag == "ok":
        result: dict[str, Any] = reply[1]
        return result
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


def run_program_isolated(
    code: str,
    limits: SandboxLimits | None = None,
    kind: Kind = "run",
    backward: str | None = None,
) -> dict[str, Any]:
    """``run_program`` (kind="run") or ``autograd_graph`` (kind="graph") in a worker process.

    Same results and exceptions as the in-process functions, plus: SandboxLimitExceeded naming
    max_seconds when the worker had to be killed, and SandboxBusy when no worker freed up in
    time. Blocking: call it from a thread, never on the event loop.
    """
    return get_pool().run(kind, code, limits or SandboxLimits(), backward)
