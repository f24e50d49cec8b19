"""Issue 11's limits on programs' answers and admission, gathered by test_limits_enforced.py.

``max_answer_bytes`` bounds what an answer holds; ``program_max_waiting`` and
``program_max_per_client`` refuse a program at once (429 with Retry-After) when the program gate
is full, or when the client already has its share running or waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from fastapi.testclient import TestClient

from tests.support import wait_for
from tests.web.limit_helpers import Make, ok, program, refused

# Holds a sandbox worker about a second: the interpreter stops it at program_max_seconds.
SLOW = "x = torch.ones(200, 200)\nfor i in range(10**8):\n    y = x @ x\n"
SLOW_SETTINGS = {
    "program_max_seconds": 1.5,
    "program_max_statements": 10**9,
    "program_max_loop_iterations": 10**9,
}


@contextmanager
def busy(client: TestClient, count: int) -> Iterator[list[httpx.Response]]:
    """``count`` slow programs admitted by the app's program gate while the block runs."""
    gate = client.app.state.program_gate  # type: ignore[attr-defined]
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(target=lambda: answers.append(program(client, SLOW))) for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: gate.admitted == count, timeout=30)
        yield answers
    finally:
        for thread in threads:
            thread.join(60)


def case_program_max_waiting(make: Make) -> None:
    c = make(program_max_waiting=0, program_max_per_client=100, **SLOW_SETTINGS)
    slots = c.app.state.program_gate.settings.slots  # type: ignore[attr-defined]
    with busy(c, slots):  # every slot at work, nobody may wait
        r = program(c, "x = 1")
        body = refused(r, "program_max_waiting", 429)
        assert body["limit"] == "program_max_waiting" and "= 0" in body["detail"]
        assert int(r.headers["Retry-After"]) >= 1
        assert c.get("/healthz").status_code == 200  # pages and health never wait in that line
    assert ok(program(c, "x = 1"))["error"] is None  # once they are done, programs run again


def case_program_max_per_client(make: Make) -> None:
    c = make(program_max_per_client=1, **SLOW_SETTINGS)
    with busy(c, 1):  # this client's one program is running
        r = program(c, "x = 1")
        body = refused(r, "program_max_per_client", 429)
        assert body["limit"] == "program_max_per_client" and "= 1" in body["detail"]
        assert "Retry-After" in r.headers
        page = c.get("/lessons/tensors?example=view")  # a page that runs a program: a 429 page
        assert page.status_code == 429 and "text/html" in page.headers["content-type"]
        assert "program_max_per_client" in page.text
    assert ok(program(c, "x = 1"))["error"] is None


def bound_max_answer_bytes(make: Make) -> None:
    budget = 64 * 1024
    c = make(max_answer_bytes=budget)
    code = "t = torch.rand(20, 20)\nfor i in range(200):\n    t = t + 1\n"
    for steps in ("full", "changes"):
        r = c.post("/api/tensors/run", json={"code": code, "steps": steps})
        body = ok(r)
        assert len(r.content) <= budget and body["truncated"] is True
        assert any(f"{budget} bytes (max_answer_bytes)" in n for n in body["notices"])
    # With the default budget the same program is recorded to its end.
    assert ok(program(make(), code))["truncated"] is False
    # The backward steps of the autograd graph share it.
    stacks = "x = torch.ones(400, requires_grad=True)\ns = x.sum()\n"
    stacks += "s = s + torch.stack([x] * 10).sum()\n" * 20
    r = c.post("/api/autograd/graph", json={"code": stacks, "backward": "s"})
    graph = ok(r)
    assert len(r.content) <= budget and graph["error"] is None
    assert any(f"{budget} bytes (max_answer_bytes)" in n for n in graph["notices"])
    assert graph["variables"]["x"]["grad"] == [201.0] * 400  # 20 stacks of 10, and x.sum()
