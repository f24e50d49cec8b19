"""``/healthz`` keeps answering while the server is attacked (issue 11, reproduction 3), against
the server as it ships (``python -m app``): 60 and then 120 clients sending slow programs, and 200
event streams on one run. ``/healthz`` used to share the thread pool with requests waiting for a
sandbox worker and with every stream's store reads (5.9 s, 19.8 s and 9 s); now it runs on the
event loop, programs wait in their gate's own threads and streams read on their own. Clients that
drop their streams leave one log line each, never a traceback.
"""

from __future__ import annotations

import re
import selectors
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.faults.guarded_server import p99, port_of, probe_health, serving
from tests.faults.server import Server
from tests.support import wait_for

HEALTH_BOUND_S = 0.5
# Seconds of 200 x 200 matrix products in the sandbox (about 3 s on a quiet two-core machine;
# on a busy one it may pass program_max_seconds, 5 s, and be refused with a 422 naming it).
SLOW_PROGRAM = "x = torch.ones(200, 200)\nfor i in range(2500):\n    y = x @ x\n"
STREAMS = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(
        tmp_path_factory.mktemp("health"),
        # Every stream of the attack is let in (the default lets 100 watch one run), so the
        # server carries all of them; the caps themselves are tested in tests/web/limits_server.py.
        max_streams_per_run=STREAMS + 50,
        runs_max_concurrent=1,
    ) as running:
        # The first program waits for a sandbox worker to start (seconds on a busy machine): not
        # part of any attack.
        warm = httpx.post(f"{running.url}/api/tensors/run", json={"code": "x = 1"}, timeout=180)
        assert warm.status_code == 200, warm.text
        yield running


def address(i: int) -> str:
    """A client address of its own for attacker ``i`` (the server trusts X-Forwarded-For from
    127.0.0.1), so the per-client share does not simply refuse them."""
    return f"10.{i // 250}.{i % 250}.1"


def attack_with_programs(
    server: Server, attackers: int, seconds: float
) -> tuple[list[float], list[tuple[int, str, float]]]:
    """``attackers`` clients each keep one slow program in flight for ``seconds`` while /healthz
    is probed; the probes' times, and each answer's (status, limit named, seconds)."""
    answers: list[tuple[int, str, float]] = []
    lock = threading.Lock()
    start = threading.Barrier(attackers + 1)
    deadline: list[float] = []
    # Idle connections are let go before the server's keep-alive (5 s) closes them: reusing one
    # as the server closes it is a client's race, not an answer of the server's.
    pool = httpx.Limits(
        max_connections=attackers, max_keepalive_connections=attackers, keepalive_expiry=2.0
    )

    def attacker(client: httpx.Client, i: int) -> None:
        headers = {"X-Forwarded-For": address(i)}
        start.wait()
        while time.monotonic() < deadline[0]:
            sent = time.perf_counter()
            try:
                response = client.post(
                    "/api/tensors/run", json={"code": SLOW_PROGRAM}, headers=headers
                )
            except httpx.TransportError as exc:  # a dropped connection counts against the server
                with lock:
                    answers.append((0, type(exc).__name__, time.perf_counter() - sent))
                continue
            took = time.perf_counter() - sent
            limit = response.json().get("limit", "") if response.status_code != 200 else ""
            with lock:
                answers.append((response.status_code, str(limit or ""), took))
            if response.status_code == 429:
                time.sleep(0.5)  # and then again: an attacker does not wait Retry-After

    with httpx.Client(base_url=server.url, timeout=60, limits=pool) as client:
        threads = [threading.Thread(target=attacker, args=(client, i)) for i in range(attackers)]
        for thread in threads:
            thread.start()
        deadline.append(time.monotonic() + seconds + 2)
        start.wait()
        time.sleep(0.5)  # every attacker's first program is in
        probes = probe_health(server.url, int(seconds / 0.03), 0.02)
        for thread in threads:
            thread.join(timeout=120)
    return probes, answers


@pytest.mark.parametrize("attackers", [60, 120])
def test_healthz_answers_within_500ms_while_many_clients_send_slow_programs(
    server: Server, attackers: int
) -> None:
    probes, answers = attack_with_programs(server, attackers, seconds=8.0)
    print(f"{attackers} attackers: /healthz p99 {p99(probes) * 1000:.0f} ms over {len(probes)}")
    assert p99(probes) < HEALTH_BOUND_S, sorted(probes)[-5:]
    statuses = {status for status, _, _ in answers}
    dropped = [limit for status, limit, _ in answers if status == 0]
    assert not dropped, dropped[:5]  # every request answered: no connection reset or closed
    assert statuses <= {200, 422, 429}, statuses  # never a 5xx, never a hang
    assert {limit for status, limit, _ in answers if status == 422} <= {"max_seconds"}
    # Programs ran (to their end, or to their time limit), and the rest were turned away.
    assert statuses & {200, 422} and 429 in statuses
    # A request over the gate's bounds is refused at once; one that waited in line for a worker
    # is refused after program_queue_seconds (2 s), never later. (Times are as the attackers saw
    # them: a hundred threads of this process share its GIL, so "at once" is generous here.)
    refused = [(limit, took) for status, limit, took in answers if status == 429]
    at_once = sorted(took for limit, took in refused if limit != "program_queue_seconds")
    assert at_once, refused[:5]
    waited = [took for limit, took in refused if limit == "program_queue_seconds"]
    print(
        f"{attackers} attackers: {len(answers)} answers, {len(at_once)} refused at once "
        f"(median {at_once[len(at_once) // 2] * 1000:.0f} ms), {len(waited)} after waiting"
    )
    # Most well under a second, nine in ten before a waiting request would have been refused.
    assert at_once[len(at_once) // 2] < 1.0, at_once[len(at_once) // 2]
    assert at_once[int(0.9 * len(at_once))] < 2.0, at_once[-5:]
    assert all(took < 2.0 + 3.0 for took in waited), sorted(waited)[-5:]
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


class StreamReaders:
    """Raw event-stream clients, each posing as its own address, all read by one thread."""

    def __init__(self, server: Server, run_id: str, count: int) -> None:
        self.heads = [b""] * count  # the start of each answer
        self.metrics = [False] * count  # whether each has had a metric event
        self.socks = []
        self.selector = selectors.DefaultSelector()
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", port_of(server)), timeout=30)
            sock.sendall(
                f"GET /api/runs/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"X-Forwarded-For: {address(i)}\r\n\r\n".encode()
            )
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, i)
            self.socks.append(sock)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.selector.select(timeout=0.1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    chunk = sock.recv(65536)
                except (BlockingIOError, ConnectionError):
                    continue
                i = key.data
                self.heads[i] = self.heads[i] or chunk[:64]
                self.metrics[i] = self.metrics[i] or b"event: metric" in chunk

    def streaming(self) -> int:
        """How many have had their answer and a metric."""
        return sum(self.metrics)

    def drop_all(self) -> None:
        """Every client goes away at once, without a word."""
        self.stop.set()
        self.thread.join(timeout=10)
        for sock in self.socks:
            self.selector.unregister(sock)
            sock.close()


def test_healthz_answers_within_500ms_while_200_event_streams_watch_one_run(
    server: Server,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run = client.post("/api/runs", json={"task": "test-sleepy", "config": {"steps": 100_000}})
        assert run.status_code == 202, run.text
        run_id = run.json()["id"]
        wait_for(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "running")
        before = server.log_text()
        readers = StreamReaders(server, run_id, STREAMS)
        try:
            wait_for(lambda: readers.streaming() == STREAMS, 60)
            assert all(head.startswith(b"HTTP/1.1 200 OK\r\n") for head in readers.heads)
            probes = probe_health(server.url, 200, 0.02)
            # The streams keep flowing while /healthz is probed.
            assert readers.streaming() == STREAMS
        finally:
            readers.drop_all()
        print(f"{STREAMS} streams: /healthz p99 {p99(probes) * 1000:.0f} ms over {len(probes)}")
        assert p99(probes) < HEALTH_BOUND_S, sorted(probes)[-5:]

        # Each client that went away left one line in the log, and no traceback.
        def went_away() -> list[str]:
            log = server.log_text()[len(before) :]
            return re.findall(rf"run {run_id}: the event stream to \S+ ended .*went away", log)

        wait_for(lambda: len(went_away()) == STREAMS, 30)
        log = server.log_text()[len(before) :]
        assert "Traceback" not in log and "Exception in ASGI" not in log and "ERROR" not in log
        assert client.post(f"/api/runs/{run_id}/cancel").json()["status"] == "cancelled"
        assert client.get("/healthz").status_code == 200


def test_a_dropped_stream_leaves_one_log_line_naming_the_run_and_the_client(
    server: Server,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        run_id = client.post(
            "/api/runs", json={"task": "test-sleepy", "config": {"steps": 100_000}}
        ).json()["id"]
        before = server.log_text()
        headers = {"X-Forwarded-For": "10.77.0.9"}
        with client.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as stream:
            next(stream.iter_lines())
        wait_for(lambda: "10.77.0.9 ended" in server.log_text()[len(before) :], 30)
        lines = [
            line for line in server.log_text()[len(before) :].splitlines() if "went away" in line
        ]
        assert len(lines) == 1 and run_id in lines[0] and lines[0].startswith("INFO:")
        client.post(f"/api/runs/{run_id}/cancel")
