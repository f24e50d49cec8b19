"""The worker side of ``app.workers.pool``: limit this process, warm up, answer requests.

A worker module's ``main`` calls :func:`main` with its handler. The handler takes one request
tuple and returns a reply tuple; it must not raise (wrap its own errors into replies).
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

Request = tuple[Any, ...]
Reply = tuple[Any, ...]

# Added to a worker's nice value, as for training runs' workers: on a busy machine the web process
# (pages, /healthz, event streams) gets the CPU first; programs, pictures and runs share the rest.
WORKER_NICENESS = 10


def vm_size() -> int:
    """Bytes of virtual memory this process has mapped now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def limit_self(address_space_headroom: int, threads: int = 1) -> None:
    """One torch thread, no core dumps, and at most ``address_space_headroom`` more bytes of
    address space than the process maps now (after its imports and warm-up)."""
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(threads)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(ValueError, OSError):
        limit = vm_size() + address_space_headroom
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def set_cpu_budget(seconds: float) -> None:
    """Let the next request use ``seconds`` more CPU time; past that the kernel sends SIGXCPU."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def serve(
    conn: Connection,
    handle: Callable[[Request], Reply],
    cpu_seconds: Callable[[Request], float],
) -> None:
    """Answer requests until the socket closes; each gets ``cpu_seconds(request)`` of CPU."""
    try:
        conn.send(("ready",))
    except OSError:  # the server stopped (or gave up on us) while we warmed up
        return
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        set_cpu_budget(cpu_seconds(request))
        try:
            conn.send(handle(request))
        except (OSError, ValueError):
            return


def main(
    handle: Callable[[Request], Reply],
    cpu_seconds: Callable[[Request], float],
    address_space_headroom: int,
    warm_up: Callable[[], object] | None = None,
) -> None:
    """``python -m <worker module> FD [HEADROOM]``: warm up, limit this process, serve over FD.

    HEADROOM (bytes), when the pool passes it, replaces ``address_space_headroom``."""
    conn = Connection(int(sys.argv[1]))
    if len(sys.argv) > 2:
        address_space_headroom = int(sys.argv[2])
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)
    if warm_up is not None:
        torch_threads_first()
        warm_up()
    limit_self(address_space_headroom)
    serve(conn, handle, cpu_seconds)


def torch_threads_first() -> None:
    """One torch thread before the warm-up runs, so it warms the path requests take."""
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(1)
