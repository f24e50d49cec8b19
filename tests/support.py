"""Helpers the test packages share (importable as ``tests.support``)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

# Generous: a busy two-core machine may take seconds to start the runs' fork server.
TIMEOUT_S = 60.0


@contextlib.contextmanager
def started_apps() -> Iterator[Callable[[Any], Any]]:
    """``start(settings)``: a TestClient on ``create_app(settings)`` with its lifespan started;
    every one is stopped when the block ends (a test that starts several, as two servers would)."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    clients: list[TestClient] = []

    def start(settings: Any) -> TestClient:
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    try:
        yield start
    finally:
        for client in clients:
            client.__exit__(None, None, None)


def wait_for(check: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    """Poll ``check`` every 50 ms until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:g} s")
        time.sleep(0.05)


FINAL = ("completed", "failed", "cancelled", "interrupted")


def launch(client: Any, task: str, config: dict[str, Any] | None = None) -> str:
    """POST /api/runs; the new run's id (the answer must be 202)."""
    response = client.post("/api/runs", json={"task": task, "config": config or {}})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def finished(client: Any, run_id: str, timeout: float = 90.0) -> dict[str, Any]:
    """Wait for the run's final status; the run as GET /api/runs/{id} gives it."""
    wait_for(lambda: client.get(f"/api/runs/{run_id}").json()["status"] in FINAL, timeout)
    return dict(client.get(f"/api/runs/{run_id}").json())


def parse_sse(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The events of an event stream's lines: {"event", "id", "data"} (comments left out)."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if not line:
            if "event" in current:
                events.append(current)
            current = {}
        elif line.startswith("event: "):
            current["event"] = line[7:]
        elif line.startswith("id: "):
            current["id"] = int(line[4:])
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
    return events


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS), VmSize... of a process from /proc, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Vm"):
            out[key] = int(value.split()[0]) * 1024
    return out


def peak_rss(pid: int) -> int:
    """A process's peak RSS so far (VmHWM), in bytes."""
    return proc_status(pid)["VmHWM"]
