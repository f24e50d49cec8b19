"""Clients that go away: mid-upload (a raw socket that promises a large body, sends part of it
and closes) and mid-stream (an event stream read for one event, then closed). The server keeps
answering, and nothing leaks: no stream subscriptions, threads or file descriptors left behind."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from app.config import Settings
from app.lessons.images import sample_png
from app.main import create_app
from tests.faults.server import free_port, open_fds
from tests.support import wait_for

REPEATS = 12


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """The app served by a real uvicorn in this process, so its insides can be checked."""
    settings = Settings(data_dir=tmp_path / "data", warm_lessons=False, program_prewarm=False)
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def half_upload(port: int, path: str) -> None:
    """Headers for a 5 MB multipart upload, 64 kB of it, then the connection closes."""
    boundary = "faultboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {5 * 1024 * 1024}\r\n\r\n"
            ).encode()
            + head
            + sample_png("flower")[:100]
            + bytes(64 * 1024)
        )
        time.sleep(0.05)


# Threads and fds are counted for the whole test process, which other tests share (pools that
# grow on demand, idle workers that exit later): a leak shows as growth with every repeat, so
# the count after a second round of repeats may exceed the first round's by this much at most.
SLACK = 4


def settled(baseline_threads: int, baseline_fds: int) -> bool:
    return (
        threading.active_count() <= baseline_threads + SLACK and open_fds() <= baseline_fds + SLACK
    )


def test_uploads_cut_off_midway_leave_the_server_answering_and_nothing_leaked(
    served: tuple[str, Any],
) -> None:
    url, _app = served
    port = int(url.rsplit(":", 1)[1])
    with httpx.Client(base_url=url, timeout=30) as client:
        warm = client.post("/api/cnn/image", data={"sample": "flower"})
        assert warm.status_code == 200, warm.text

        def cut_off() -> None:
            for _ in range(REPEATS):
                half_upload(port, "/api/cnn/image")
                half_upload(port, "/api/checkpoints/inspect")

        cut_off()  # the first round grows the pools to their working size
        threads, fds = threading.active_count(), open_fds()
        cut_off()  # a leak would grow with this round too
        wait_for(lambda: settled(threads, fds), 30)
        # Still answering, uploads included: the full picture is read by content and used.
        files = {"file": ("flower.png", sample_png("flower"), "image/png")}
        response = client.post("/api/cnn/image", files=files)
        assert response.status_code == 200, response.text
        assert client.get("/healthz").status_code == 200


def test_event_streams_closed_after_one_event_leave_no_subscription_behind(
    served: tuple[str, Any],
) -> None:
    url, app = served
    events = app.state.runs.events
    with httpx.Client(base_url=url, timeout=30) as client:
        run = client.post("/api/runs", json={"task": "test-sleepy", "config": {}})
        assert run.status_code == 202, run.text
        run_id = run.json()["id"]
        wait_for(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "running")

        def read_one_and_close() -> None:
            for _ in range(REPEATS):
                with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
                    assert stream.status_code == 200
                    lines = stream.iter_lines()
                    assert any(line.startswith("data: ") for line in lines)
                    # the stream, with nothing new to send, waits subscribed to the run's news
                    wait_for(lambda: run_id in events._waiters, 10)
                # closed after one event: the server notices and lets go
            wait_for(lambda: run_id not in events._waiters, 30)

        read_one_and_close()  # the first round grows the pools to their working size
        threads, fds = threading.active_count(), open_fds()
        read_one_and_close()  # a leak would grow with this round too
        wait_for(lambda: settled(threads, fds), 30)
        assert client.get("/healthz").status_code == 200
        assert client.post(f"/api/runs/{run_id}/cancel").json()["status"] == "cancelled"
        assert events._waiters == {}
