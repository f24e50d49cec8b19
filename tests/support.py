"""Helpers the test packages share (importable as ``tests.support``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Generous: a busy two-core machine may take seconds to start the runs' fork server.
TIMEOUT_S = 60.0


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
