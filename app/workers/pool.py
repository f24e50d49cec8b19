"""A bounded pool of worker processes for untrusted work, killed when they overrun.

Workers are fresh ``python -m <module> FD`` processes (never a fork of the server, and
independent of any other multiprocessing use in the app), reused from the pool: a call costs a
socket round trip, not a process start. A worker that overruns its time is killed (SIGKILL) and
replaced in the background; so is one that dies (its address-space or CPU rlimit, a crash).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# A fresh worker imports torch and warms up (about 2-4 s); waiting longer means it is broken.
START_TIMEOUT_SECONDS = 120.0
# Workers are replaced after this many requests so slow leaks cannot build up.
MAX_TASKS_PER_WORKER = 200

_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class WorkerProcess:
    """One ``python -m <module>`` process and the socket to talk to it.

    A fresh interpreter (not a fork of the server, and without re-running the server's
    ``__main__`` as multiprocessing's spawn would) with one BLAS/OpenMP thread.
    """

    def __init__(self, module: str, args: tuple[str, ...] = ()) -> None:
        parent, child = socket.socketpair()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PROJECT_ROOT, os.environ.get("PYTHONPATH")) if p
        )
        with child:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, str(child.fileno()), *args],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                cwd=_PROJECT_ROOT,
                env=env,
            )
        self.conn = Connection(parent.detach())
        self.tasks = 0
        self.retiring = False  # served its share of requests: a replacement is starting
        self.retired = False  # the replacement is up: it goes once it is given back
        if not self.conn.poll(START_TIMEOUT_SECONDS):
            self.kill()
            raise RuntimeError(f"a {module} worker did not start")
        try:
            self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise RuntimeError(f"a {module} worker did not start") from None

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


class TooBusy(Exception):
    """A request refused because a bounded resource is full (the web layer answers 429 naming
    ``limit``, with ``Retry-After``)."""

    def __init__(self, message: str, limit: str, retry_after: int = 2) -> None:
        self.limit = limit
        self.retry_after = retry_after
        super().__init__(message)


class WorkerStopped(Exception):
    """The worker overran ``timeout`` and was killed, or died while working.

    Attributes:
        exitcode: the worker's exit status (negative: the signal), None when it was still
            running at the timeout (it has been killed since).
    """

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        super().__init__(f"the worker stopped (exit code {exitcode})")


class WorkerPool:
    """At most ``size`` worker processes of ``module``, each doing one request at a time.

    ``busy`` makes the exception raised when no worker frees up within ``wait_seconds``.
    """

    def __init__(
        self,
        module: str,
        size: int | None = None,
        wait_seconds: float = 30.0,
        *,
        args: tuple[str, ...] = (),
        busy: Callable[[WorkerPool], Exception] | None = None,
    ) -> None:
        self.module = module
        self.args = args
        self.size = size or max(1, min(4, os.cpu_count() or 1))
        self.wait_seconds = wait_seconds
        self._busy = busy or (lambda pool: RuntimeError(f"all {pool.size} workers are busy"))
        self._slots = threading.BoundedSemaphore(self.size)
        self._cond = threading.Condition()
        self._idle: list[WorkerProcess] = []
        self._starting = 0
        self._closed = False
        self._served = False  # a worker has been idle here once: the pool is up

    def _new(self) -> WorkerProcess:
        return WorkerProcess(self.module, self.args)

    def warm(self, count: int = 1, wait: bool = True) -> None:
        """Start ``count`` workers now so early requests pay no start-up (2-6 s each)."""
        for _ in range(min(count, self.size)):
            if wait:
                worker = self._new()
                with self._cond:
                    self._idle.append(worker)
                    self._served = True
                    self._cond.notify()
            else:
                self._start_in_background()

    def _take(self) -> WorkerProcess:
        """An idle worker, one that is starting, or else a new one.

        Once the pool has served, a request waits for a worker being started (one replacing a
        worker killed for overrunning) no longer than ``wait_seconds``, then is refused like any
        request that finds every worker busy: a start takes seconds, and the request would hold
        its place in line all that time. Before, the pool's first workers are waited for.
        """
        patience = self.wait_seconds if self._served else START_TIMEOUT_SECONDS
        deadline = time.monotonic() + patience
        with self._cond:
            while True:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    worker.kill()
                if not self._starting:
                    break
                if not self._cond.wait(deadline - time.monotonic()):
                    if self._served:
                        raise self._busy(self)
                    break
        return self._new()

    def _give_back(self, worker: WorkerProcess) -> None:
        worker.tasks += 1
        if self._closed or worker.retired:
            worker.kill()
            return
        if worker.tasks >= MAX_TASKS_PER_WORKER and not worker.retiring:
            # Its replacement starts now; it serves on until the replacement is ready, so the
            # pool never has a worker fewer (a request would be refused for it).
            worker.retiring = True
            self._start_in_background(replacing=worker)
        with self._cond:
            self._idle.append(worker)
            self._served = True
            self._cond.notify()

    def _start_in_background(self, replacing: WorkerProcess | None = None) -> None:
        with self._cond:
            self._starting += 1

        def start() -> None:
            worker = None
            # On failure the next request starts a worker itself and reports the error.
            with contextlib.suppress(Exception):
                worker = self._new()
            with self._cond:
                self._starting -= 1
                if replacing is not None and worker is None:
                    replacing.retiring = False  # no replacement: it serves on, and tries later
                if replacing is not None and worker is not None:
                    if replacing in self._idle:
                        self._idle.remove(replacing)
                        replacing.kill()
                    else:
                        replacing.retired = True  # at work: it goes when it comes back
                if worker is not None:
                    if self._closed or len(self._idle) >= self.size:
                        worker.kill()
                    else:
                        self._idle.append(worker)
                        self._served = True
                self._cond.notify_all()

        threading.Thread(target=start, name=f"{self.module}-start", daemon=True).start()

    def ask(self, request: tuple[Any, ...], timeout: float) -> Any:
        """Send ``request`` to a worker and return its reply.

        Raises ``busy(self)`` when no worker frees up within ``wait_seconds``, and
        :class:`WorkerStopped` when the worker gives no reply within ``timeout`` seconds (it is
        killed) or dies working. Blocking: call it from a thread, never on the event loop.
        """
        if not self._slots.acquire(timeout=self.wait_seconds):
            raise self._busy(self)
        try:
            worker = self._take()
            reply = self._send(worker, request, timeout)
            self._give_back(worker)
        finally:
            self._slots.release()
        return reply

    def _send(self, worker: WorkerProcess, request: tuple[Any, ...], timeout: float) -> Any:
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
        raise WorkerStopped(exitcode)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()
