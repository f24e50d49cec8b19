"""Live event streams (issue 11): a heartbeat while idle, ``after``/``Last-Event-ID`` checked
against the store's id range, one store reader per watched run however many streams watch it,
and every place among the open streams given back when a stream ends or its client goes."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from app.config import Settings
from app.jobs.store import MAX_EVENT_ID, MetricEvent, RunStore
from app.main import create_app
from app.web.live import MAX_PENDING_METRICS, Snapshot, Watcher
from tests.support import finished, launch, parse_sse, wait_for

SLEEPY_FOREVER = {"steps": 100_000}  # about half an hour of 20 ms sleeps unless cancelled


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        settings = Settings(
            data_dir=tmp_path / f"data{len(clients)}",
            warm_lessons=False,
            program_prewarm=False,
            **overrides,
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def stored_metrics(client: TestClient, run_id: str) -> list[list[float]]:
    return list(client.get(f"/api/runs/{run_id}").json()["metrics"].get("loss", []))


def streamed_metrics(events: list[dict[str, Any]]) -> list[list[float]]:
    return [[e["data"]["step"], e["data"]["value"]] for e in events if e["event"] == "metric"]


def test_an_idle_stream_sends_a_heartbeat_comment_every_stream_heartbeat_seconds(
    make: Callable[..., TestClient],
) -> None:
    client = make(stream_heartbeat_seconds=0.3, runs_max_concurrent=1)
    running = launch(client, "test-sleepy", SLEEPY_FOREVER)
    queued = launch(client, "test-sleepy", SLEEPY_FOREVER)  # waits in line: nothing happens
    try:
        beats: list[float] = []
        with client.stream("GET", f"/api/runs/{queued}/events") as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines) == "event: status"
            assert json.loads(next(lines)[6:]) == {"status": "queued", "progress": 0.0}
            for line in lines:
                if line == ": heartbeat":
                    beats.append(time.monotonic())
                elif line:
                    raise AssertionError(f"an idle stream sent {line!r}")
                if len(beats) == 5:
                    break
        gaps = [b - a for a, b in zip(beats, beats[1:], strict=False)]
        # One every 0.3 s: never early, and late by at most a busy machine's scheduling.
        assert all(0.25 <= gap <= 1.5 for gap in gaps), gaps
    finally:
        for run_id in (queued, running):
            client.post(f"/api/runs/{run_id}/cancel")


@pytest.mark.parametrize("where", ["after", "Last-Event-ID"])
def test_an_event_id_outside_the_id_range_is_a_422_naming_the_range(
    make: Callable[..., TestClient], where: str
) -> None:
    client = make()
    run_id = launch(client, "test-sleepy", {"steps": 3})
    finished(client, run_id)
    url = f"/api/runs/{run_id}/events"
    for bad in ("9" * 30, str(MAX_EVENT_ID + 1), "-1"):
        sent: dict[str, Any] = (
            {"params": {"after": bad}} if where == "after" else {"headers": {where: bad}}
        )
        response = client.get(url, **sent)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert f"from 0 to {MAX_EVENT_ID}" in detail and where.lower() in detail.lower()
        assert response.headers["content-type"] == "application/json"
    # The edges of the range are accepted: from 0 every metric, from the top none.
    with client.stream("GET", url, params={"after": 0}) as response:
        every = parse_sse(response.iter_lines())
    assert (
        streamed_metrics(every)
        == stored_metrics(client, run_id)
        == [[1, 1.0], [2, 0.5], [3, 1 / 3]]
    )
    top = str(MAX_EVENT_ID)
    cursor: dict[str, Any] = (
        {"params": {"after": top}} if where == "after" else {"headers": {where: top}}
    )
    with client.stream("GET", url, **cursor) as response:
        assert response.status_code == 200
        none = parse_sse(response.iter_lines())
    assert none == [{"event": "status", "data": {"status": "completed", "progress": 1.0}}]


def test_streams_of_one_run_share_one_store_reader_and_each_gets_every_metric(
    make: Callable[..., TestClient],
) -> None:
    watchers = 20
    client = make(max_streams_per_client=watchers)
    hub = client.app.state.runs.streams  # type: ignore[attr-defined]
    events = client.app.state.runs.events  # type: ignore[attr-defined]
    run_id = launch(client, "test-sleepy", {"steps": 100})  # about 2 s of metrics
    with contextlib.ExitStack() as stack:
        streams = [
            stack.enter_context(client.stream("GET", f"/api/runs/{run_id}/events"))
            for _ in range(watchers)
        ]
        assert all(s.status_code == 200 for s in streams)
        wait_for(lambda: run_id in hub._feeds)
        # Twenty streams, one feed: one reader of the store for the run, one subscription.
        assert hub.open_streams == watchers and list(hub._feeds) == [run_id]
        assert len(events._waiters[run_id]) == 1
        received = [parse_sse(s.iter_lines()) for s in streams]
    stored = stored_metrics(client, run_id)
    assert len(stored) == 100
    for got in received:
        assert streamed_metrics(got) == stored  # every metric, once, in order
        assert got[-1] == {"event": "status", "data": {"status": "completed", "progress": 1.0}}
    wait_for(lambda: hub.open_streams == 0 and not hub._feeds and run_id not in events._waiters)


def test_a_stream_joining_a_watched_run_late_replays_what_it_missed(
    make: Callable[..., TestClient],
) -> None:
    client = make()
    run_id = launch(client, "test-sleepy", {"steps": 150})
    with client.stream("GET", f"/api/runs/{run_id}/events") as first:
        lines = first.iter_lines()
        wait_for(
            lambda: len(client.get(f"/api/runs/{run_id}").json()["metrics"].get("loss", [])) > 40
        )
        # The run's feed is running; a second stream starts from the store, then joins it.
        with client.stream("GET", f"/api/runs/{run_id}/events") as late:
            late_events = parse_sse(late.iter_lines())
        first_events = parse_sse(lines)
    stored = stored_metrics(client, run_id)
    assert streamed_metrics(late_events) == stored == streamed_metrics(first_events)


def test_closed_streams_give_their_places_back(make: Callable[..., TestClient]) -> None:
    client = make(max_streams_per_client=2)
    hub = client.app.state.runs.streams  # type: ignore[attr-defined]
    run_id = launch(client, "test-sleepy", SLEEPY_FOREVER)
    try:
        for _ in range(5):  # far more streams over time than the client may hold at once
            with contextlib.ExitStack() as stack:
                for _ in range(2):
                    response = stack.enter_context(
                        client.stream("GET", f"/api/runs/{run_id}/events")
                    )
                    assert response.status_code == 200
                    next(response.iter_lines())
                assert client.get(f"/api/runs/{run_id}/events").status_code == 429
            wait_for(lambda: hub.open_streams == 0, 10)
        assert hub._feeds == {}
    finally:
        client.post(f"/api/runs/{run_id}/cancel")


def test_an_unknown_run_is_a_404_before_any_stream_and_takes_no_place(
    make: Callable[..., TestClient],
) -> None:
    client = make()
    response = client.get("/api/runs/nosuchrun/events")
    assert response.status_code == 404 and "nosuchrun" in response.json()["detail"]
    assert client.app.state.runs.streams.open_streams == 0  # type: ignore[attr-defined]


def test_the_store_answers_a_cursor_past_its_id_range_with_nothing(tmp_path: Path) -> None:
    store = RunStore(data_dir=tmp_path)
    run = store.create("test-sleepy", {})
    store.add_metrics(run.id, [(1, "loss", 1.0), (2, "loss", 0.5), (3, "loss", 0.25)])
    ids = [m.id for m in store.metrics_since(run.id)]
    assert len(ids) == 3 and store.last_metric_id(run.id) == ids[-1]
    assert store.last_metric_id("no-such-run") == 0
    # Past SQLite's INTEGER the old query raised OverflowError; now there is simply nothing.
    assert store.metrics_since(run.id, 10**30) == [] == store.metrics_since(run.id, MAX_EVENT_ID)
    assert [m.step for m in store.metrics_since(run.id, 0, limit=2)] == [1, 2]
    assert [m.step for m in store.metrics_since(run.id, ids[1], limit=2)] == [3]
    store.close()


def test_a_stream_that_falls_far_behind_drops_its_backlog_and_rereads_the_store() -> None:
    watcher = Watcher()
    watcher.behind = False
    half = MAX_PENDING_METRICS // 2 + 1
    batch = tuple(MetricEvent(id=i, step=i, name="loss", value=1.0) for i in range(half))
    snapshot = Snapshot("running", 0.5, final=False, ended=False, metrics=batch)
    watcher.post(snapshot)
    assert not watcher.behind and watcher.pending_metrics == half
    # A client that reads slower than its run logs: memory stays bounded, nothing is lost.
    watcher.post(snapshot)
    assert watcher.behind and watcher.pending_metrics == 0 and not watcher.pending
    assert watcher.wake.is_set()


def counted_reads(store: RunStore) -> list[int]:
    """Record the ``after`` of every metrics read of ``store`` (the real method still answers)."""
    calls: list[int] = []
    read = store.metrics_since

    def counting(run_id: str, after_id: int = 0, limit: int | None = None) -> list[MetricEvent]:
        calls.append(after_id)
        return read(run_id, after_id, limit)

    store.metrics_since = counting  # type: ignore[method-assign]
    return calls


def test_streams_that_join_late_or_reconnect_replay_from_the_feeds_memory(
    make: Callable[..., TestClient],
) -> None:
    """A reconnect storm (tabs reopening from the start) costs no store reads: the watched run's
    feed keeps its encoded metrics, and every replay equals the store's metrics."""
    client = make()
    runs = client.app.state.runs  # type: ignore[attr-defined]
    run_id = launch(client, "test-sleepy", {"steps": 120})
    with client.stream("GET", f"/api/runs/{run_id}/events") as first:
        lines = first.iter_lines()
        wait_for(lambda: len(stored_metrics(client, run_id)) > 40)
        feed = runs.streams._feeds[run_id]
        wait_for(lambda: len(feed.cached) > 40)
        assert feed.cached_after == 0  # the feed holds every metric from the first
        reads = counted_reads(runs.store)
        replays = []
        for _ in range(5):
            with client.stream("GET", f"/api/runs/{run_id}/events") as late:
                replays.append(parse_sse(late.iter_lines()))
        first_events = parse_sse(lines)
    stored = stored_metrics(client, run_id)
    assert len(stored) == 120
    assert streamed_metrics(first_events) == stored
    for events in replays:
        assert streamed_metrics(events) == stored
    # The feed's own reads follow the run (each after the newest id it has); no replay from 0.
    assert 0 not in reads
    wait_for(lambda: runs.streams.cached_metrics == 0 and not runs.streams._feeds)


def test_a_replay_older_than_the_feeds_memory_reads_the_store(
    make: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.web import live

    monkeypatch.setattr(live, "FEED_CACHED_METRICS", 20)  # trimmed past 22: 20 + a tenth
    client = make()
    runs = client.app.state.runs  # type: ignore[attr-defined]
    run_id = launch(client, "test-sleepy", {"steps": 100})
    with client.stream("GET", f"/api/runs/{run_id}/events") as first:
        lines = first.iter_lines()
        wait_for(lambda: len(stored_metrics(client, run_id)) > 60)
        feed = runs.streams._feeds[run_id]
        wait_for(lambda: (feed.cached_after or 0) > 0)
        assert len(feed.cached) <= 22 and runs.streams.cached_metrics == len(feed.cached)
        with client.stream("GET", f"/api/runs/{run_id}/events") as late:
            late_events = parse_sse(late.iter_lines())
        first_events = parse_sse(lines)
    stored = stored_metrics(client, run_id)
    assert streamed_metrics(late_events) == stored == streamed_metrics(first_events)
