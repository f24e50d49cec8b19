"""Server start-up: spawn to the first 200 from /healthz, next to a bare ``import torch``.

Both sides are timed the same way: a fresh ``python`` process is spawned and polled every 20 ms,
the server until ``/healthz`` answers 200, the bare interpreter until it has exited. Starts
alternate (app, bare, app, bare, ...) so both see the same machine; the median of the starts
is reported. ``import app.main`` (same way, to exit) splits the server's time into imports and
the rest (building the app, uvicorn binding its socket).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from bench.common import ROOT, Context, Row, Timing, free_port, server_env, stop, wait_for_200

GROUP = "start-up (median of n spawns, polled every 20 ms)"
POLL = 0.02


def time_server(ctx: Context, run: int) -> float:
    """Seconds from spawning ``python -m app`` to its first 200 from /healthz."""
    port = free_port()
    env = server_env(ctx.tmp / f"data-start-{run}", EXPLORER_PORT=str(port))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_200(f"http://127.0.0.1:{port}/healthz", proc, interval=POLL)
        return time.perf_counter() - started
    finally:
        stop(proc)


def time_exit(code: str) -> float:
    """Seconds from spawning ``python -c code`` to seeing it exited, polled like the server."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    while proc.poll() is None:
        time.sleep(POLL)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"python -c {code!r} exited with {proc.returncode}")
    return elapsed


def run(ctx: Context) -> list[Row]:
    starts = 3
    server: list[float] = []
    torch_import: list[float] = []
    app_import: list[float] = []
    for i in range(starts):
        server.append(time_server(ctx, i))
        torch_import.append(time_exit("import torch"))
        app_import.append(time_exit("import app.main"))
    interpreter = statistics.median(time_exit("pass") for _ in range(3))
    server_t, torch_t, app_t = (
        Timing(tuple(server)),
        Timing(tuple(torch_import)),
        Timing(tuple(app_import)),
    )
    floor = f"python -c pass {interpreter * 1e3:.0f} ms"
    return [
        Row(
            GROUP,
            "python -m app -> first 200 /healthz",
            "s",
            server_t.median,
            torch_t.median,
            notes=f"bare = python -c 'import torch' to exit; {floor}",
            n=starts,
            extra={"app_samples": server, "bare_samples": torch_import},
        ),
        Row(
            GROUP,
            "python -c 'import app.main'",
            "s",
            app_t.median,
            torch_t.median,
            notes="imports + create_app(), no server; bare = import torch",
            n=starts,
            extra={"app_samples": app_import, "bare_samples": torch_import},
        ),
    ]
