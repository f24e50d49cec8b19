"""The sandbox worker process: ``python -m app.sandbox.worker FD`` serves programs over FD.

Started by ``app.sandbox.isolation``; it limits itself (one torch thread, CPU-time and
address-space rlimits, no core dumps), warms up, then answers (kind, code, limits, backward)
requests with tagged replies until its socket closes.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
from multiprocessing.connection import Connection
from typing import Any

import torch

from app.sandbox.graph import autograd_graph
from app.sandbox.interpreter import run_program
from app.sandbox.limits import SandboxLimitExceeded, SandboxRefused

# Virtual memory a worker may map on top of what it maps after importing torch and warming up.
ADDRESS_SPACE_HEADROOM = 2 * 1024**3
# CPU seconds a program may use past max_seconds before the kernel stops it (SIGXCPU).
CPU_MARGIN_SECONDS = 2.0

# Imports what the first optimizer needs (torch._dynamo, ~2 s) before any learner's clock runs.
_WARM_UP = """
w = torch.zeros(2, requires_grad=True)
opt = torch.optim.SGD([w], lr=0.1)
loss = (w * 2).sum()
loss.backward()
opt.step()
"""


def _vm_size() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _limit_self() -> None:
    """Resource limits the worker sets on itself once its imports are done."""
    torch.set_num_threads(1)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(ValueError, OSError):
        limit = _vm_size() + ADDRESS_SPACE_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _set_cpu_budget(seconds: float) -> None:
    """Let the next program use ``seconds`` more CPU time; past that the kernel sends SIGXCPU."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def handle(request: tuple[Any, ...]) -> tuple[Any, ...]:
    """One request -> ("ok", result) | ("limit", reason, line, limit) | ("refused", reason,
    line) | ("crash", message)."""
    kind, code, limits, backward = request
    try:
        if kind == "graph":
            return ("ok", autograd_graph(code, backward, limits))
        return ("ok", run_program(code, limits))
    except SandboxLimitExceeded as exc:
        return ("limit", exc.reason, exc.line, exc.limit)
    except SandboxRefused as exc:
        return ("refused", exc.reason, exc.line)
    except MemoryError:
        return ("limit", "the program ran out of memory", None, "max_total_bytes")
    except Exception as exc:  # a bug in the sandbox itself: report it and keep serving
        return ("crash", f"{type(exc).__name__}: {exc}")


def serve(conn: Connection) -> None:
    _limit_self()
    run_program(_WARM_UP)
    try:
        conn.send(("ready",))
    except OSError:  # the server stopped (or gave up on us) while we warmed up
        return
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        _set_cpu_budget(request[2].max_seconds + CPU_MARGIN_SECONDS)
        try:
            conn.send(handle(request))
        except (OSError, ValueError):
            return


def main() -> None:
    serve(Connection(int(sys.argv[1])))


if __name__ == "__main__":
    main()
