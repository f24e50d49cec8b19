"""Issue 15: a class deployment survives its faults, with real processes on loopback.

Two web processes and two Celery workers (``app.deploy.ClassDeployment``), a private Redis as the
broker and a fresh PostgreSQL database behind a TCP proxy the tests can cut (``conftest.py``).
Each test breaks one thing the way it breaks in a classroom (a cancel from another web process,
a worker killed with ``kill -9``, a web process killed under its streams, Redis restarted with
runs queued, the store out of reach for seconds) and checks what a learner would see: every run
ends as it should, and its metrics hold every step exactly once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import psycopg
import pytest

from app.deploy import Process
from tests import pg
from tests.deploy.conftest import Stack

pytestmark = pytest.mark.timeout(600)

T = TypeVar("T")

FINAL = {"completed", "failed", "cancelled", "interrupted"}
HTTP_TIMEOUT = httpx.Timeout(10.0)
# What the digits CNN logs once per epoch, at the step of its last batch.
EPOCH_METRICS = ("accuracy", "val_loss", "val_accuracy", "epoch")


# -- helpers ----------------------------------------------------------------------------------


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(every_s)


def launch(http: httpx.Client, web: str, **config: Any) -> str:
    answer = http.post(f"{web}/api/runs", json={"task": "digits-cnn", "config": config})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def get_run(http: httpx.Client, web: str, run_id: str) -> dict[str, Any]:
    answer = http.get(f"{web}/api/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


def wait_final(http: httpx.Client, web: str, run_id: str, timeout_s: float) -> dict[str, Any]:
    return wait_for(
        lambda: (run := get_run(http, web, run_id))["status"] in FINAL and run,
        timeout_s,
        f"run {run_id} to end",
        every_s=0.2,
    )


def epochs_done(http: httpx.Client, web: str, run_id: str) -> int:
    return len(get_run(http, web, run_id)["metrics"].get("epoch", []))


@dataclass(frozen=True)
class Held:
    """What the store says of who trains a run (the API does not show it)."""

    status: str
    worker: str | None
    attempts: int
    error: str | None
    progress: float

    @property
    def pid(self) -> int:
        assert self.worker is not None
        return int(self.worker.rsplit(":", 1)[1])


def held(stack: Stack, run_id: str) -> Held:
    """The run's row, read straight from PostgreSQL (not through the proxy)."""
    with psycopg.connect(pg.libpq_url(stack.direct_url), connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT status, worker, attempts, error, progress FROM runs WHERE id = %s", (run_id,)
        ).fetchone()
    assert row is not None, f"no run {run_id} in the store"
    return Held(row[0], row[1], int(row[2] or 0), row[3], float(row[4] or 0))


def wait_progress(stack: Stack, run_id: str, fraction: float, timeout_s: float = 30) -> Held:
    """The run once its stored progress (updated after each epoch) reaches ``fraction``."""
    return wait_for(
        lambda: (h := held(stack, run_id)).progress >= fraction and h,
        timeout_s,
        f"run {run_id} to reach {fraction:.0%}",
    )


def last_logged(stack: Stack, run_id: str) -> float:
    """When (Unix time) the run's newest metric was logged by its training loop."""
    with psycopg.connect(pg.libpq_url(stack.direct_url), connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT max(logged_at) FROM metrics WHERE run_id = %s", (run_id,)
        ).fetchone()
    assert row is not None and row[0] is not None
    return float(row[0])


def holder(stack: Stack, run_id: str, not_worker: str | None = None) -> Held:
    """The run once a worker (other than ``not_worker``) holds it and is training it."""
    return wait_for(
        lambda: (
            (h := held(stack, run_id)).status == "running"
            and h.worker not in (None, not_worker)
            and h
        ),
        30,
        f"a worker other than {not_worker} to hold run {run_id}",
    )


def process_of(stack: Stack, worker: str) -> Process:
    """The deployment's worker process the store's ``host:pid`` names."""
    pid = int(worker.rsplit(":", 1)[1])
    found = [p for p in stack.deployment.worker if p.pid == pid]
    assert found, f"no worker process of the deployment has pid {pid}: {stack.tails()}"
    return found[0]


@dataclass(frozen=True)
class Event:
    id: int | None
    event: str
    data: Any


def sse_events(stream: httpx.Response) -> Iterator[Event]:
    """The complete events of an open ``text/event-stream`` (a blank line ends each; a comment,
    the heartbeat, is skipped). An event cut off by a dropped connection is never yielded."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in stream.iter_lines():
        if line == "":
            if data:
                raw = fields.get("id")
                yield Event(int(raw) if raw else None, fields.get("event", "message"),
                            json.loads("\n".join(data)))  # fmt: skip
            fields, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "data":
                data.append(value)
            else:
                fields[key] = value


def triples(metrics: dict[str, list[list[float]]]) -> Counter[tuple[int, str, float]]:
    """GET /api/runs/{id}'s metrics as a multiset of (step, name, value)."""
    return Counter((int(s), n, float(v)) for n, pairs in metrics.items() for s, v in pairs)


def steps(metrics: dict[str, list[list[float]]], name: str) -> list[int]:
    return [int(step) for step, _ in metrics.get(name, [])]


def listeners(stack: Stack) -> int:
    """Connections of the test database that last ran ``LISTEN`` (one per web process's
    ``StoreListener`` while it listens)."""
    name = stack.direct_url.rsplit("/", 1)[1]
    with psycopg.connect(pg.libpq_url(stack.direct_url), connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'LISTEN %%'",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


def check_every_step_once(metrics: dict[str, list[list[float]]], epochs: int | None) -> None:
    """ "loss" at steps 1..N exactly once, in order, and "epoch" 1..E once each with the other
    per-epoch metrics at the same steps; N = E x the batches per epoch (the step epoch 1 was
    logged at). ``epochs`` None: a run that stopped early, whose last epoch may be partial."""
    loss = steps(metrics, "loss")
    assert loss, "the run logged no loss"
    assert sorted(loss) == list(range(1, len(loss) + 1)), (
        f"loss steps are not 1..{len(loss)} once each: "
        f"{sorted(s for s, n in Counter(loss).items() if n > 1)[:10]} twice, "
        f"{sorted(set(range(1, max(loss) + 1)) - set(loss))[:10]} missing"
    )
    assert loss == sorted(loss), "loss steps were not stored in order"
    by_epoch = sorted((int(value), int(step)) for step, value in metrics.get("epoch", []))
    done = len(by_epoch)
    assert [e for e, _ in by_epoch] == list(range(1, done + 1)), f"epoch values: {by_epoch}"
    batches = by_epoch[0][1] if by_epoch else None
    if batches is not None:
        for name in EPOCH_METRICS:
            assert steps(metrics, name) == [batches * e for e in range(1, done + 1)], name
        assert done * batches <= len(loss)
    if epochs is not None:
        assert batches is not None and done == epochs, f"{done} of {epochs} epochs"
        assert len(loss) == epochs * batches, f"{len(loss)} losses, {epochs} x {batches} batches"
    elif batches is not None:
        assert len(loss) < (done + 1) * batches


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=HTTP_TIMEOUT) as client:
        yield client


@pytest.fixture(autouse=True)
def healthy(stack: Stack, http: httpx.Client) -> Iterator[None]:
    """Each test starts on a whole deployment with idle workers, whatever the one before broke."""
    stack.proxy.restore()
    if stack.redis.popen is None or stack.redis.popen.poll() is not None:
        stack.redis.start()
    dead = [p for p in [*stack.deployment.web, *stack.deployment.worker] if not p.alive()]
    if dead:
        stack.restart_all(dead)
    web = stack.deployment.urls[0]
    for run in http.get(f"{web}/api/runs").json()["runs"]:
        if run["status"] not in FINAL:
            http.post(f"{web}/api/runs/{run['id']}/cancel")
    yield


# -- 1. a cancel from another web process -----------------------------------------------------


def test_cancel_from_another_web_ends_its_stream_there_and_stops_the_run(
    stack: Stack, http: httpx.Client
) -> None:
    a, b = stack.deployment.urls
    run_id = launch(http, a, epochs=40)
    events: list[Event] = []
    cancelled_at = None
    with http.stream("GET", f"{b}/api/runs/{run_id}/events") as stream:
        assert stream.status_code == 200
        for event in sse_events(stream):
            events.append(event)
            if cancelled_at is None and sum(e.event == "metric" for e in events) >= 30:
                answer = http.post(f"{b}/api/runs/{run_id}/cancel")
                assert answer.status_code == 200, answer.text
                cancelled_at = time.monotonic()
    assert cancelled_at is not None, f"the stream ended before 30 metrics: {events[-3:]}"
    statuses = [e.data["status"] for e in events if e.event == "status"]
    assert statuses[-1] == "cancelled", statuses
    run = get_run(http, a, run_id)
    assert run["status"] == "cancelled"
    # The stream ends once the worker has let go: it carried every metric the run has.
    streamed = Counter(
        (e.data["step"], e.data["name"], e.data["value"]) for e in events if e.event == "metric"
    )
    assert streamed == triples(run["metrics"])
    time.sleep(1.0)
    later = get_run(http, a, run_id)
    assert triples(later["metrics"]) == triples(run["metrics"]), "metrics came after the cancel"
    check_every_step_once(later["metrics"], epochs=None)
    assert epochs_done(http, a, run_id) < 40
    print(f"cancel -> stream end {time.monotonic() - cancelled_at:.2f} s")


# -- 3. a web process killed under its streams -------------------------------------------------


def test_a_stream_cut_by_a_killed_web_resumes_on_the_other_with_every_metric_once(
    stack: Stack, http: httpx.Client
) -> None:
    survivor, victim = stack.deployment.web
    assert survivor.url is not None and victim.url is not None
    run_id = launch(http, survivor.url, epochs=40)
    received: list[Event] = []
    killed = False
    try:
        with http.stream("GET", f"{victim.url}/api/runs/{run_id}/events") as stream:
            assert stream.status_code == 200
            for event in sse_events(stream):
                received.append(event)
                if not killed and sum(e.event == "metric" for e in received) >= 100:
                    victim.kill()
                    killed = True
    except httpx.HTTPError as exc:
        cut_by = exc
    else:
        cut_by = None
    assert killed, f"the stream ended before 100 metrics: {received[-3:]}"
    assert cut_by is not None, "the stream ended cleanly after its web process was killed"
    assert get_run(http, survivor.url, run_id)["status"] == "running", "the run ended too soon"
    assert not any(e.event == "status" and e.data["status"] in FINAL for e in received)
    last_id = [e.id for e in received if e.id is not None][-1]
    resumed: list[Event] = []
    headers = {"Last-Event-ID": str(last_id)}
    with http.stream("GET", f"{survivor.url}/api/runs/{run_id}/events", headers=headers) as stream:
        assert stream.status_code == 200
        resumed.extend(sse_events(stream))
    statuses = [e.data["status"] for e in resumed if e.event == "status"]
    assert statuses[-1] == "completed", statuses
    metrics = [e for e in [*received, *resumed] if e.event == "metric"]
    ids = [e.id for e in metrics]
    assert all(isinstance(i, int) for i in ids)
    assert all(x < y for x, y in zip(ids, ids[1:], strict=False)), "event ids not increasing"
    assert len(set(ids)) == len(ids)
    run = get_run(http, survivor.url, run_id)
    streamed = Counter((e.data["step"], e.data["name"], e.data["value"]) for e in metrics)
    assert streamed == triples(run["metrics"])
    check_every_step_once(run["metrics"], epochs=40)
    print(f"web kill: {len(received)} events before ({type(cut_by).__name__}), "
          f"{len(resumed)} after, resumed after id {last_id}")  # fmt: skip
    started = time.monotonic()
    stack.deployment.restart(victim)
    print(f"web restart {time.monotonic() - started:.1f} s")


# -- 4. Redis restarted with runs queued -------------------------------------------------------


def test_runs_queued_when_redis_restarts_empty_still_complete(
    stack: Stack, http: httpx.Client
) -> None:
    a, b = stack.deployment.urls
    long = [launch(http, a, epochs=50, batch_size=16), launch(http, b, epochs=50, batch_size=16)]
    wait_for(
        lambda: all(get_run(http, a, r)["status"] == "running" for r in long),
        30,
        "both workers to train a long run",
    )
    queued = []
    for web in (a, b):
        answer = http.post(f"{web}/api/runs", json={"task": "digits-cnn", "config": {"epochs": 3}})
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "queued"
        queued.append(answer.json()["id"])
    assert [get_run(http, a, r)["status"] for r in queued] == ["queued", "queued"]
    stack.redis.kill()
    time.sleep(0.5)
    stack.redis.start()
    assert [get_run(http, a, r)["status"] for r in long] == ["running", "running"], (
        "the long runs ended before Redis was back: make them longer"
    )
    started = time.monotonic()
    runs = [wait_final(http, b, r, 90) for r in [*long, *queued]]
    assert [r["status"] for r in runs] == ["completed"] * 4, [
        (r["status"], r["error"]) for r in runs
    ]
    for run in runs:
        check_every_step_once(run["metrics"], epochs=run["config"]["epochs"])
    print(f"redis restart -> all four completed {time.monotonic() - started:.1f} s")


# -- 5. the store out of reach -----------------------------------------------------------------


def test_a_store_outage_answers_503_then_heals_and_the_run_completes_with_every_step_once(
    stack: Stack, http: httpx.Client
) -> None:
    a, b = stack.deployment.urls
    run_id = launch(http, a, epochs=50, batch_size=4)
    wait_progress(stack, run_id, 0.04)
    assert listeners(stack) == 2
    answers: list[tuple[str, int | str, float, httpx.Response | None]] = []
    stack.proxy.cut()
    cut_at = time.monotonic()
    while time.monotonic() - cut_at < 4.0:
        for web in (a, b):
            sent = time.monotonic()
            try:
                answer: httpx.Response | None = http.get(f"{web}/api/runs")
                code: int | str = answer.status_code if answer is not None else "none"
            except httpx.TimeoutException as exc:
                answer, code = None, type(exc).__name__
            answers.append((web, code, time.monotonic() - sent, answer))
        time.sleep(0.2)
    stack.proxy.restore()
    restored_at = time.monotonic()
    restored_wall = time.time()
    healed = {
        web: wait_for(
            lambda web=web: http.get(f"{web}/api/runs").status_code == 200 and time.monotonic(),
            10,
            f"{web} to answer 200 after the store came back",
        )
        - restored_at
        for web in (a, b)
    }
    wait_for(lambda: listeners(stack) == 2, 10, "both webs to LISTEN again")
    codes = Counter(code for _, code, _, _ in answers)
    assert set(codes) == {503}, f"answers during the outage: {codes}\n{stack.tails()}"
    slowest = max(took for _, _, took, _ in answers)
    assert slowest < 10
    for _, _, _, answer in answers:
        assert answer is not None
        assert int(answer.headers["Retry-After"]) >= 1
        assert answer.headers["content-type"].startswith("application/json")
        assert "run store" in answer.json()["detail"]
    run = wait_final(http, a, run_id, 60)
    row = held(stack, run_id)
    assert run["status"] == "completed", (run["status"], run["error"], row, stack.tails())
    trained_on = last_logged(stack, run_id) - restored_wall
    assert trained_on > 0, "the run was not training any more when the store came back"
    print(
        f"outage: {len(answers)} answers {dict(codes)}, slowest {slowest:.2f} s; healed after "
        f"{', '.join(f'{t:.2f}' for t in healed.values())} s; attempts {row.attempts}; "
        f"trained on {trained_on:.1f} s after it"
    )
    check_every_step_once(run["metrics"], epochs=50)


# -- 2. a worker killed mid-run ----------------------------------------------------------------


def test_a_run_whose_worker_is_killed_continues_on_the_other_with_every_step_once(
    stack: Stack, http: httpx.Client
) -> None:
    a, _ = stack.deployment.urls
    run_id = launch(http, a, epochs=40)
    wait_for(lambda: epochs_done(http, a, run_id) >= 3, 30, "three epochs")
    first = holder(stack, run_id)
    victim = process_of(stack, first.worker or "")
    victim.kill()
    killed_at = time.monotonic()
    second = holder(stack, run_id, not_worker=first.worker)
    took_over = time.monotonic() - killed_at
    assert second.attempts == 2
    survivor = process_of(stack, second.worker or "")
    assert survivor is not victim and survivor.alive()
    stack.restart_all([victim])  # while the run goes on: the next test needs two workers
    run = wait_final(http, a, run_id, 60)
    assert run["status"] == "completed", (run["error"], stack.tails())
    assert held(stack, run_id).attempts == 2
    check_every_step_once(run["metrics"], epochs=40)
    print(f"worker kill: taken over after {took_over:.1f} s")


def test_a_run_whose_workers_are_both_killed_ends_interrupted_naming_the_silent_worker(
    stack: Stack, http: httpx.Client
) -> None:
    a, _ = stack.deployment.urls
    run_id = launch(http, a, epochs=40)
    wait_for(lambda: epochs_done(http, a, run_id) >= 2, 30, "two epochs")
    first = holder(stack, run_id)
    process_of(stack, first.worker or "").kill()
    second = holder(stack, run_id, not_worker=first.worker)
    assert second.attempts == 2
    before = epochs_done(http, a, run_id)
    wait_for(lambda: epochs_done(http, a, run_id) > before, 30, "an epoch on the second worker")
    process_of(stack, second.worker or "").kill()
    killed_at = time.monotonic()
    run = wait_final(http, a, run_id, 30)
    print(f"second kill -> interrupted after {time.monotonic() - killed_at:.1f} s")
    assert run["status"] == "interrupted", (run["status"], run["error"])
    assert f"its worker ({second.worker}) stopped" in run["error"], run["error"]
    assert "runs_max_attempts" in run["error"]
    check_every_step_once(run["metrics"], epochs=None)
    assert len(run["metrics"]["epoch"]) > before, "the second worker's epochs were not kept"
    assert held(stack, run_id).worker is None
