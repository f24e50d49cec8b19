"""Issue 11: the bounds on live event streams (``GET /api/runs/{id}/events``), each refused over
HTTP with a 429 naming its setting before any stream starts (gathered by test_limits_enforced.py).
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.support import wait_for
from tests.web.limit_helpers import Make, refused

# A run that sleeps for half an hour unless cancelled: cheap to watch, never over by itself.
SLEEPY = {"task": "test-sleepy", "config": {"steps": 100_000}}


def _launch(c: TestClient, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        response = c.post("/api/runs", json=SLEEPY)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def _watch(stack: contextlib.ExitStack, c: TestClient, run_id: str) -> httpx.Response:
    """An open stream of the run (its first event read), closed when ``stack`` closes."""
    response = stack.enter_context(c.stream("GET", f"/api/runs/{run_id}/events"))
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    assert next(response.iter_lines()).startswith("event: ")
    return response


def _streams(c: TestClient) -> Any:
    return c.app.state.runs.streams  # type: ignore[attr-defined]


def _too_many(response: httpx.Response, name: str) -> None:
    body = refused(response, name, 429)
    assert body["limit"] == name  # not merely a longer name that contains it
    assert int(response.headers["retry-after"]) > 0


def _cancel(c: TestClient, ids: list[str]) -> None:
    for run_id in ids:
        c.post(f"/api/runs/{run_id}/cancel")


def case_max_streams(make: Make) -> None:
    c = make(max_streams=2, runs_max_concurrent=1)
    a, b = ids = _launch(c, 2)  # one runs, one waits in line: both can be watched
    try:
        with contextlib.ExitStack() as stack:
            _watch(stack, c, a)
            _watch(stack, c, b)
            _too_many(c.get(f"/api/runs/{b}/events"), "max_streams")
            assert _streams(c).open_streams == 2
        # Streams that end give their places back.
        wait_for(lambda: _streams(c).open_streams == 0, 10)
        with contextlib.ExitStack() as stack:
            _watch(stack, c, b)
    finally:
        _cancel(c, ids)


def case_max_streams_per_run(make: Make) -> None:
    c = make(max_streams_per_run=1, runs_max_concurrent=1)
    a, b = ids = _launch(c, 2)
    try:
        with contextlib.ExitStack() as stack:
            _watch(stack, c, a)
            _too_many(c.get(f"/api/runs/{a}/events"), "max_streams_per_run")
            _watch(stack, c, b)  # another run has its own share
    finally:
        _cancel(c, ids)


def case_max_streams_per_client(make: Make) -> None:
    c = make(max_streams_per_client=1)
    ids = _launch(c, 1)
    # The same app seen from another address (the app and its runs are already started).
    other = TestClient(c.app, client=("10.0.0.2", 50000))
    try:
        with contextlib.ExitStack() as stack:
            _watch(stack, c, ids[0])
            _too_many(c.get(f"/api/runs/{ids[0]}/events"), "max_streams_per_client")
            _watch(stack, other, ids[0])  # another client has its own share
            assert _streams(c).open_streams == 2
    finally:
        _cancel(c, ids)
