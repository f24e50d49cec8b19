"""The run store on both of its databases: SQLite (a single server) and PostgreSQL (a class
deployment). Every test that takes ``store`` or ``db_url`` runs once on each."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    Integer,
    String,
    column,
    create_engine,
    func,
    insert,
    inspect,
    select,
    table,
    text,
    update,
)

from app.jobs.store import (
    FINAL_STATUSES,
    NOTIFY_CHANNEL,
    STATUSES,
    ArtifactRow,
    QueueFull,
    RunNotFound,
    RunRow,
    RunStore,
)
from tests import pg

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of the backend: a new SQLite file, or the session's PostgreSQL one."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'other.db'}"


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    if backend == "postgresql":
        s = RunStore(str(request.getfixturevalue("pg_url")))
    else:
        s = RunStore(data_dir=tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[RunStore]:
    """PostgreSQL only: what SQLite does not have (NOTIFY, several processes' stores)."""
    s = RunStore(pg_url)
    yield s
    s.close()


def _set_time(store: RunStore, run_id: str, column_name: str, seconds_ago: float) -> None:
    """Put one of the run's times in the past, as a worker that went silent would leave it."""
    when = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    with store.engine.begin() as conn:
        conn.execute(update(RunRow).where(RunRow.id == run_id).values({column_name: when}))


def _all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; their results (or exceptions), in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return results


def _near_now(value: datetime | None, slack_s: float = 30.0) -> bool:
    return value is not None and abs((datetime.now(UTC) - value).total_seconds()) < slack_s


def test_statuses() -> None:
    assert STATUSES == ("queued", "running", "completed", "failed", "cancelled", "interrupted")
    assert {"completed", "failed", "cancelled", "interrupted"} == FINAL_STATUSES


def test_round_trip(store: RunStore, tmp_path: Path) -> None:
    if not store.is_postgresql:
        assert (tmp_path / "data" / "runs.db").exists()
    first = store.create("linear-regression", {"epochs": 3, "stage": "nn"})
    second = store.create("linear-regression", {"epochs": 4}, resume_from=first.id)
    assert first.status == "queued" and first.progress == 0.0 and first.started_at is None
    assert [r.id for r in store.list()] == [second.id, first.id]
    assert store.get(second.id).resume_from == first.id

    assert store.mark_running(first.id)
    store.update_progress(first.id, 0.5)
    store.add_metrics(first.id, [(1, "loss", 2.0), (1, "w", 0.5), (2, "loss", 1.0)])
    run = store.get(first.id)
    assert run.status == "running" and run.progress == 0.5 and run.started_at is not None
    assert run.started_at.tzinfo is not None
    assert store.metrics(first.id) == {"loss": [[1, 2.0], [2, 1.0]], "w": [[1, 0.5]]}

    events = store.metrics_since(first.id)
    assert [(e.step, e.name, e.value) for e in events][0] == (1, "loss", 2.0)
    later = store.metrics_since(first.id, events[0].id)
    assert len(later) == 2 and later[0].id > events[0].id
    assert store.metrics_since(first.id, events[-1].id) == []

    assert store.finish(first.id, "completed")
    done = store.get(first.id)
    assert done.status == "completed" and done.progress == 1.0 and done.finished_at is not None
    # The first final word wins.
    assert not store.finish(first.id, "failed", "late")
    assert store.get(first.id).status == "completed"
    assert done.to_dict()["config"] == {"epochs": 3, "stage": "nn"}

    with pytest.raises(RunNotFound):
        store.get("nope")
    with pytest.raises(ValueError):
        store.finish(second.id, "running")


def test_store_reopens_from_url(db_url: str) -> None:
    a = RunStore(db_url)
    run = a.create("linear-regression", {})
    a.add_metrics(run.id, [(1, "loss", 3.0)])
    a.close()
    b = RunStore(db_url)
    assert b.get(run.id).task == "linear-regression"
    assert b.metrics(run.id) == {"loss": [[1, 3.0]]}
    b.close()


def test_recover_marks_interrupted_and_keeps_metrics(store: RunStore, tmp_path: Path) -> None:
    running = store.create("linear-regression", {})
    queued = store.create("linear-regression", {})
    done = store.create("linear-regression", {})
    store.mark_running(running.id)
    store.add_metrics(running.id, [(1, "loss", 1.5), (2, "loss", 1.2)])
    store.mark_running(done.id)
    store.finish(done.id, "completed")
    store.close()

    # A new process (server restart) opens the same database.
    reopened = RunStore(store.url) if store.is_postgresql else RunStore(data_dir=tmp_path / "data")
    assert sorted(reopened.recover()) == sorted([running.id, queued.id])
    assert reopened.get(running.id).status == "interrupted"
    assert reopened.get(queued.id).status == "interrupted"
    assert reopened.get(done.id).status == "completed"
    assert reopened.metrics(running.id) == {"loss": [[1, 1.5], [2, 1.2]]}
    assert not [r for r in reopened.list() if r.status in ("queued", "running")]
    reopened.close()


def test_latest_gives_each_runs_last_value_of_each_metric(store: RunStore) -> None:
    a = store.create("linear-regression", {}).id
    b = store.create("linear-regression", {}).id
    quiet = store.create("linear-regression", {}).id
    store.add_metrics(a, [(1, "loss", 3.0), (1, "w", 0.5), (2, "loss", 2.0)])
    store.add_metrics(b, [(1, "loss", 9.0)])
    store.add_metrics(a, [(3, "loss", 1.5)])
    assert store.latest([a, b, quiet]) == {
        a: {"loss": 1.5, "w": 0.5},
        b: {"loss": 9.0},
        quiet: {},
    }
    assert store.latest([]) == {}


# -- the queue -------------------------------------------------------------------------------


def test_create_over_max_queued_raises_queue_full_and_a_finished_run_frees_a_place(
    store: RunStore,
) -> None:
    a = store.create("linear-regression", {}, max_queued=2)
    b = store.create("linear-regression", {}, max_queued=2)
    with pytest.raises(QueueFull) as full:
        store.create("linear-regression", {}, max_queued=2)
    assert full.value.limit == 2
    assert "2 runs waiting" in str(full.value)
    assert store.queued_ids() == [a.id, b.id]
    assert len(store.list()) == 2  # the refused run was not stored

    # No bound: the queue takes it (a single server's own queue has its own limit).
    unbounded = store.create("linear-regression", {})
    with pytest.raises(QueueFull):
        store.create("linear-regression", {}, max_queued=3)

    store.finish(unbounded.id, "cancelled")
    c = store.create("linear-regression", {}, max_queued=3)
    # A run taken by a worker waits no more either.
    assert store.claim(a.id, "w1") is not None
    d = store.create("linear-regression", {}, max_queued=3)
    assert store.queued_ids() == [b.id, c.id, d.id]


def test_queue_position_counts_queued_runs_in_creation_order(store: RunStore) -> None:
    a, b, c = (store.create("linear-regression", {"i": i}).id for i in range(3))
    assert store.queued_ids() == [a, b, c]
    assert [store.queue_position(r) for r in (a, b, c)] == [1, 2, 3]

    store.claim(a, "w1")
    assert [store.queue_position(r) for r in (a, b, c)] == [None, 1, 2]
    store.finish(b, "cancelled")
    assert [store.queue_position(r) for r in (a, b, c)] == [None, None, 1]
    store.finish(a, "completed")
    assert store.queue_position(a) is None
    assert store.queue_position("nope") is None
    assert store.queued_ids() == [c]


# -- workers ---------------------------------------------------------------------------------


def test_claim_takes_a_queued_run_once(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    claimed = store.claim(run_id, "host-a:123")
    assert claimed is not None
    assert claimed.status == "running" and claimed.worker == "host-a:123"
    assert claimed.attempts == 1 and not claimed.cancel_requested
    assert _near_now(claimed.heartbeat_at) and claimed.heartbeat_at == claimed.started_at
    assert store.get(run_id) == claimed

    # A second delivery of the same message does nothing.
    assert store.claim(run_id, "host-b:456") is None
    again = store.get(run_id)
    assert again.worker == "host-a:123" and again.attempts == 1
    assert store.claim("nope", "host-b:456") is None

    cancelled = store.create("linear-regression", {}).id
    store.request_cancel(cancelled)
    assert store.claim(cancelled, "host-b:456") is None
    after = store.get(cancelled)
    assert after.status == "cancelled" and after.worker is None and after.attempts == 0


def test_claim_does_not_take_a_queued_run_whose_cancel_was_asked(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    with store.engine.begin() as conn:  # the flag written, the final status not yet
        conn.execute(update(RunRow).where(RunRow.id == run_id).values(cancel_requested=True))
    assert store.claim(run_id, "w1") is None
    assert store.get(run_id).status == "queued"


def test_heartbeat_refreshes_only_the_holding_workers_run(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    store.claim(run_id, "w1")
    _set_time(store, run_id, "heartbeat_at", 60)
    old = store.get(run_id).heartbeat_at
    assert old is not None

    seen = store.heartbeat(run_id, "w2")  # not its run: nothing changes, and it can tell
    assert seen.worker == "w1" and seen.heartbeat_at == old and seen.status == "running"

    beat = store.heartbeat(run_id, "w1")
    assert beat.worker == "w1" and beat.status == "running" and not beat.cancel_requested
    assert beat.heartbeat_at is not None and beat.heartbeat_at > old
    assert _near_now(beat.heartbeat_at)
    assert store.get(run_id).heartbeat_at == beat.heartbeat_at

    with pytest.raises(RunNotFound):
        store.heartbeat("nope", "w1")


def test_request_cancel_on_a_queued_run(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    run = store.request_cancel(run_id)
    assert run.status == "cancelled" and run.cancel_requested
    assert run.worker is None and run.finished_at is not None
    assert store.get(run_id) == run
    assert store.queued_ids() == []
    with pytest.raises(RunNotFound):
        store.request_cancel("nope")


def test_request_cancel_on_a_running_run_keeps_its_worker_until_release(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    store.claim(run_id, "w1")
    store.add_metrics(run_id, [(1, "loss", 2.0)])
    run = store.request_cancel(run_id)
    assert run.status == "cancelled" and run.cancel_requested and run.worker == "w1"

    # The worker's next heartbeat tells it; it stores its last metric and lets go.
    beat = store.heartbeat(run_id, "w1")
    assert beat.status == "cancelled" and beat.cancel_requested
    store.add_metrics(run_id, [(2, "loss", 1.0)])
    assert not store.release(run_id, "w2")
    assert store.get(run_id).worker == "w1"
    assert store.release(run_id, "w1")
    assert store.get(run_id).worker is None
    assert not store.release(run_id, "w1")
    assert store.metrics(run_id) == {"loss": [[1, 2.0], [2, 1.0]]}

    # The first final word wins: a later cancel leaves a completed run completed.
    done = store.create("linear-regression", {}).id
    store.claim(done, "w1")
    store.finish(done, "completed")
    assert store.request_cancel(done).status == "completed"


# -- the sweep -------------------------------------------------------------------------------

LEASE_S = 30.0


def test_sweep_requeues_a_run_whose_worker_went_silent(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    first = store.claim(run_id, "dead:1")
    assert first is not None
    store.add_metrics(run_id, [(1, "loss", 2.0)])
    _set_time(store, run_id, "heartbeat_at", 2 * LEASE_S)

    assert store.sweep(LEASE_S, max_attempts=3, time_limit_s=3600) == ([run_id], [])
    run = store.get(run_id)
    assert run.status == "queued" and run.worker is None and run.attempts == 1
    assert run.finished_at is None and run.error is None
    assert store.queue_position(run_id) == 1
    assert store.metrics(run_id) == {"loss": [[1, 2.0]]}
    # Done once: a second sweep finds nothing.
    assert store.sweep(LEASE_S, max_attempts=3, time_limit_s=3600) == ([], [])

    # Taken again, it carries on: a second start, the first start time kept.
    second = store.claim(run_id, "alive:2")
    assert second is not None
    assert second.attempts == 2 and second.worker == "alive:2"
    assert second.started_at == first.started_at
    assert second.heartbeat_at is not None and first.heartbeat_at is not None
    assert second.heartbeat_at > first.heartbeat_at


def test_sweep_ends_a_run_interrupted_after_max_attempts(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    store.claim(run_id, "dead:1")
    store.add_metrics(run_id, [(1, "loss", 2.0), (2, "loss", 1.5)])
    _set_time(store, run_id, "heartbeat_at", 2 * LEASE_S)

    assert store.sweep(LEASE_S, max_attempts=1, time_limit_s=3600) == ([], [run_id])
    run = store.get(run_id)
    assert run.status == "interrupted" and run.worker is None and run.attempts == 1
    assert run.error is not None and "dead:1" in run.error and "runs_max_attempts" in run.error
    assert _near_now(run.finished_at)
    assert store.metrics(run_id) == {"loss": [[1, 2.0], [2, 1.5]]}
    assert store.queued_ids() == []


def test_sweep_fails_a_run_past_its_time_limit(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    store.claim(run_id, "dead:1")
    _set_time(store, run_id, "started_at", 7200)
    _set_time(store, run_id, "heartbeat_at", 2 * LEASE_S)

    assert store.sweep(LEASE_S, max_attempts=3, time_limit_s=3600) == ([], [run_id])
    run = store.get(run_id)
    assert run.status == "failed" and run.worker is None
    assert run.error is not None and "runs_max_seconds" in run.error and "dead:1" in run.error
    assert _near_now(run.finished_at)


def test_sweep_leaves_live_runs_and_lets_go_of_final_ones(store: RunStore) -> None:
    live = store.create("linear-regression", {}).id
    store.claim(live, "alive:1")
    waiting = store.create("linear-regression", {}).id
    local = store.create("linear-regression", {}).id
    store.mark_running(local)  # a single server's run: no worker, no heartbeat
    done = store.create("linear-regression", {}).id
    store.claim(done, "dead:2")
    store.finish(done, "completed")
    _set_time(store, done, "heartbeat_at", 2 * LEASE_S)

    assert store.sweep(LEASE_S, max_attempts=3, time_limit_s=3600) == ([], [])
    assert (store.get(live).status, store.get(live).worker) == ("running", "alive:1")
    assert store.get(waiting).status == "queued"
    assert (store.get(local).status, store.get(local).worker) == ("running", None)
    finished = store.get(done)
    assert finished.status == "completed" and finished.worker is None


def test_two_stores_sweeping_at_once_requeue_each_run_once(db_url: str) -> None:
    # Two engines on one database, as two processes' sweepers would have.
    a, b = RunStore(db_url), RunStore(db_url)
    try:
        stale = []
        for i in range(12):
            run_id = a.create("linear-regression", {"i": i}).id
            a.claim(run_id, f"dead:{i % 3}")
            _set_time(a, run_id, "heartbeat_at", 2 * LEASE_S)
            stale.append(run_id)
        sweeps = _all_at_once(
            [lambda: a.sweep(LEASE_S, 3, 3600), lambda: b.sweep(LEASE_S, 3, 3600)]
        )
        for result in sweeps:
            assert not isinstance(result, Exception), result
        requeued = sweeps[0][0] + sweeps[1][0]
        assert sorted(requeued) == sorted(stale)  # each once, none twice
        assert sweeps[0][1] == sweeps[1][1] == []
        assert sorted(b.queued_ids()) == sorted(stale)
        assert {b.get(r).worker for r in stale} == {None}
    finally:
        a.close()
        b.close()


# -- artefacts -------------------------------------------------------------------------------


def test_artifacts_round_trip_bytes_and_replace_keeps_one_row(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    other = store.create("linear-regression", {}).id
    big = b"\x00" + os.urandom(1024 * 1024) + b"\x00"
    store.put_artifact(run_id, "model.pt", big)
    store.put_artifact(run_id, "empty", b"")
    store.put_artifact(other, "model.pt", b"other")
    assert store.get_artifact(run_id, "model.pt") == big
    assert store.get_artifact(run_id, "empty") == b""
    assert store.get_artifact(run_id, "missing") is None
    assert store.get_artifact("nope", "model.pt") is None

    stamp = store.artifact_stamp(run_id, "model.pt")
    assert stamp is not None and stamp[0] == len(big) and _near_now(stamp[1])
    empty = store.artifact_stamp(run_id, "empty")
    assert empty is not None and empty[0] == 0
    assert store.artifact_stamp(run_id, "missing") is None

    store.put_artifact(run_id, "model.pt", b"\x00v2")
    assert store.get_artifact(run_id, "model.pt") == b"\x00v2"
    replaced = store.artifact_stamp(run_id, "model.pt")
    assert replaced is not None and replaced[0] == 3 and replaced[1] >= stamp[1]
    with store.engine.connect() as conn:
        rows = conn.scalar(
            select(func.count())
            .select_from(ArtifactRow)
            .where(ArtifactRow.run_id == run_id, ArtifactRow.name == "model.pt")
        )
    assert rows == 1
    assert store.get_artifact(other, "model.pt") == b"other"


def test_artifact_names_and_delete_by_prefix(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    other = store.create("linear-regression", {}).id
    for name in ("tensorboard/b.tfevents", "summary.json", "tensorboard/a.tfevents", "model.pt"):
        store.put_artifact(run_id, name, name.encode())
    store.put_artifact(other, "tensorboard/x.tfevents", b"x")

    assert store.artifact_names(run_id) == [
        "model.pt",
        "summary.json",
        "tensorboard/a.tfevents",
        "tensorboard/b.tfevents",
    ]
    assert store.artifact_names(run_id, "tensorboard/") == [
        "tensorboard/a.tfevents",
        "tensorboard/b.tfevents",
    ]
    assert store.artifact_names(run_id, "nothing/") == []
    assert store.artifact_names("nope") == []

    store.delete_artifacts(run_id, "tensorboard/")
    assert store.artifact_names(run_id) == ["model.pt", "summary.json"]
    assert store.artifact_names(other) == ["tensorboard/x.tfevents"]
    store.delete_artifacts(run_id)
    assert store.artifact_names(run_id) == []
    assert store.get_artifact(other, "tensorboard/x.tfevents") == b"x"


def test_artifact_prefix_is_literal(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    for name in ("ckpt_1.pt", "ckptX1.pt", "100%.txt", "100a.txt"):
        store.put_artifact(run_id, name, b"")
    assert store.artifact_names(run_id, "ckpt_") == ["ckpt_1.pt"]
    assert store.artifact_names(run_id, "100%") == ["100%.txt"]
    store.delete_artifacts(run_id, "ckpt_")
    assert store.artifact_names(run_id) == ["100%.txt", "100a.txt", "ckptX1.pt"]


# -- metrics ---------------------------------------------------------------------------------


def test_last_steps_gives_each_metrics_largest_step(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    other = store.create("linear-regression", {}).id
    store.add_metrics(run_id, [(1, "loss", 3.0), (2, "loss", 2.0), (1, "acc", 0.5)])
    store.add_metrics(run_id, [(5, "loss", 1.0), (3, "loss", 1.1)])  # out of order
    store.add_metrics(other, [(9, "loss", 1.0)])
    assert store.last_steps(run_id) == {"loss": 5, "acc": 1}
    assert store.last_steps(store.create("linear-regression", {}).id) == {}


def test_timed_metrics_keep_the_logged_at_time(store: RunStore) -> None:
    run_id = store.create("linear-regression", {}).id
    t = time.time()
    assert store.add_metrics(run_id, [(1, "loss", 2.0, t), (1, "acc", 0.25)]) == 2
    assert store.add_metrics(run_id, [(2, "loss", 1.0, t + 0.5)]) == 1
    assert store.add_metrics(run_id, []) == 0
    assert store.timed_metrics(run_id) == [
        (1, "loss", 2.0, t),
        (1, "acc", 0.25, None),
        (2, "loss", 1.0, t + 0.5),
    ]
    # The fourth item changes nothing the other readers give.
    assert store.metrics(run_id) == {"loss": [[1, 2.0], [2, 1.0]], "acc": [[1, 0.25]]}
    assert store.timed_metrics("nope") == []


# -- an older database -----------------------------------------------------------------------


def _old_schema(backend: str) -> list[str]:
    """The first release's tables, before the class deployment's columns."""
    metric_id = "SERIAL PRIMARY KEY" if backend == "postgresql" else "INTEGER PRIMARY KEY"
    return [
        "CREATE TABLE runs (id VARCHAR(32) NOT NULL PRIMARY KEY, task VARCHAR(64) NOT NULL, "
        "config JSON NOT NULL, status VARCHAR(16) NOT NULL, "
        "created_at TIMESTAMP WITH TIME ZONE NOT NULL, started_at TIMESTAMP WITH TIME ZONE, "
        "finished_at TIMESTAMP WITH TIME ZONE, error TEXT, progress FLOAT NOT NULL, "
        "resume_from VARCHAR(32))",
        "CREATE INDEX ix_runs_status ON runs (status)",
        "CREATE INDEX ix_runs_created_at ON runs (created_at)",
        f"CREATE TABLE metrics (id {metric_id}, "
        "run_id VARCHAR(32) NOT NULL REFERENCES runs (id), step INTEGER NOT NULL, "
        "name VARCHAR(64) NOT NULL, value FLOAT NOT NULL)",
        "CREATE INDEX ix_metrics_run_id ON metrics (run_id)",
    ]


def test_an_older_database_gets_the_new_columns(backend: str, db_url: str) -> None:
    created = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    old_runs = table(
        "runs",
        column("id", String),
        column("task", String),
        column("config", JSON),
        column("status", String),
        column("created_at", DateTime(timezone=True)),
        column("progress", Float),
    )
    old_metrics = table(
        "metrics",
        column("run_id", String),
        column("step", Integer),
        column("name", String),
        column("value", Float),
    )
    engine = create_engine(db_url)
    with engine.begin() as conn:
        for ddl in _old_schema(backend):
            conn.execute(text(ddl))
        conn.execute(
            insert(old_runs).values(
                id="oldrun",
                task="linear-regression",
                config={"epochs": 2},
                status="queued",
                created_at=created,
                progress=0.0,
            )
        )
        conn.execute(insert(old_metrics).values(run_id="oldrun", step=1, name="loss", value=0.5))
    engine.dispose()

    store = RunStore(db_url)
    try:
        columns = inspect(store.engine)
        runs_columns = {c["name"] for c in columns.get_columns("runs")}
        assert {"cancel_requested", "worker", "heartbeat_at", "attempts"} <= runs_columns
        assert "logged_at" in {c["name"] for c in columns.get_columns("metrics")}
        assert "artifacts" in columns.get_table_names()

        run = store.get("oldrun")
        assert run.created_at == created and run.config == {"epochs": 2}
        assert run.status == "queued" and not run.cancel_requested and run.attempts == 0
        assert run.worker is None and run.heartbeat_at is None
        assert store.timed_metrics("oldrun") == [(1, "loss", 0.5, None)]

        # And the old run works with the new methods.
        assert store.queue_position("oldrun") == 1
        claimed = store.claim("oldrun", "w1")
        assert claimed is not None and claimed.attempts == 1
        store.put_artifact("oldrun", "model.pt", b"\x00")
        store.add_metrics("oldrun", [(2, "loss", 0.25, 1.5)])
        assert store.last_steps("oldrun") == {"loss": 2}
    finally:
        store.close()
    # Opening it again migrates nothing twice.
    again = RunStore(db_url)
    assert again.get("oldrun").attempts == 1
    again.close()


# -- PostgreSQL only -------------------------------------------------------------------------


def test_postgresql_notifies_the_run_id_for_each_transaction_with_news(
    pg_store: RunStore,
) -> None:
    store = pg_store
    quiet = store.create("linear-regression", {}).id
    final = store.create("linear-regression", {}).id
    store.finish(final, "completed")
    news = store.create("linear-regression", {}).id

    with psycopg.connect(pg.libpq_url(store.url), autocommit=True) as listener:
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        # Transactions that change nothing send nothing.
        assert store.add_metrics(quiet, []) == 0
        assert not store.finish(final, "failed")
        assert store.claim(final, "w1") is None
        assert not store.release(quiet, "w1")
        # These do, each once.
        store.add_metrics(news, [(1, "loss", 2.0), (2, "loss", 1.0)])
        store.claim(news, "w1")
        store.finish(news, "completed")

        got = list(listener.notifies(timeout=2, stop_after=3))
        assert [(n.channel, n.payload) for n in got] == [(NOTIFY_CHANNEL, news)] * 3
        assert list(listener.notifies(timeout=0.2)) == []


def test_postgresql_bounds_the_queue_across_stores_and_threads(pg_store: RunStore) -> None:
    # Three more web processes; within one store its threads take turns, between stores only
    # the database can keep the count.
    others = [RunStore(pg_store.url) for _ in range(3)]
    try:
        limit = 5

        def attempt(store: RunStore) -> str:
            try:
                return store.create("linear-regression", {}, max_queued=limit).id
            except QueueFull as exc:
                assert exc.limit == limit
                return "full"

        stores = [pg_store, *others] * 4
        results = _all_at_once([functools.partial(attempt, s) for s in stores])
        for result in results:
            assert not isinstance(result, Exception), result
        created = [r for r in results if r != "full"]
        assert len(created) == limit
        assert sorted(pg_store.queued_ids()) == sorted(created)
    finally:
        for other in others:
            other.close()
