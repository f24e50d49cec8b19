"""Retention and the storage bound (issue 16, items 4 and 5), on the real store: SQLite in the
data dir and PostgreSQL. Every test that takes ``runs`` runs once on each.

Runs are made in the store as a worker leaves them (rows, metrics, files in the run's folder),
then put in the past by updating their ``created_at``; a sweep must delete exactly the runs its
rules pick, with their rows, metrics, artefact rows and folders, and keep the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from app.config import Settings
from app.jobs.artifacts import StoredArtifacts
from app.jobs.retention import (
    METRIC_ROW_BYTES,
    Retention,
    StorageFull,
    check_storage,
    kept_bytes,
    learner_bytes,
)
from app.jobs.store import RunNotFound, RunRow, RunStore, run_dir
from app.web.live import Runs, start_runs
from tests.support import wait_for

A, B = "learner-a-0123456789ab", "learner-b-0123456789ab"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite in the data dir), or the session's PostgreSQL database, emptied."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        warm_lessons=False,
        program_prewarm=False,
        runs_retention_days=30,
        runs_kept_per_learner=100,
    )


@pytest.fixture
def runs(settings: Settings) -> Iterator[Runs]:
    """The web process's runs, as the app starts them (store, local runner, streams, files)."""
    started = start_runs(settings)
    yield started
    started.close()


def make_run(
    runs: Runs,
    *,
    owner: str | None = A,
    status: str = "completed",
    days_ago: float = 0.0,
    files: dict[str, bytes] | None = None,
    metrics: int = 3,
    resume_from: str | None = None,
) -> str:
    """A run as its worker leaves it: the row (created ``days_ago`` days ago), ``metrics``
    metric rows, one artefact row, and ``files`` in its folder of the data dir."""
    store = runs.store
    run_id = store.create("test-sleepy", {"steps": 1}, resume_from, owner=owner).id
    store.add_metrics(run_id, [(step, "loss", 1.0 / step) for step in range(1, metrics + 1)])
    store.put_artifact(run_id, "summary.json", b'{"steps": 1}')
    folder = run_dir(runs.data_dir, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (files if files is not None else {"checkpoint.pth": b"c" * 100}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    if status == "running":
        assert store.mark_running(run_id)
    elif status != "queued":
        assert store.finish(run_id, status)
    if days_ago:
        created = datetime.now(UTC) - timedelta(days=days_ago)
        with store.engine.begin() as conn:
            conn.execute(update(RunRow).where(RunRow.id == run_id).values(created_at=created))
    return run_id


def present(store: RunStore, run_id: str) -> bool:
    try:
        store.get(run_id)
    except RunNotFound:
        return False
    return True


def assert_gone(runs: Runs, run_id: str) -> None:
    """No row, no metrics, no artefact rows, no folder."""
    assert not present(runs.store, run_id)
    assert runs.store.metric_count(run_id) == 0
    assert runs.store.artifact_names(run_id) == []
    assert runs.store.artifact_bytes(run_id) == 0
    assert not run_dir(runs.data_dir, run_id).exists()


def assert_kept(runs: Runs, run_id: str, metrics: int = 3) -> None:
    """The row, its metrics, its artefact row and its folder, all still there."""
    assert present(runs.store, run_id)
    assert runs.store.metric_count(run_id) == metrics
    assert runs.store.artifact_names(run_id) == ["summary.json"]
    assert run_dir(runs.data_dir, run_id).is_dir()


# ---- retention by age ---------------------------------------------------------------------------


def test_retention_deletes_exactly_the_expired_runs_and_their_files(
    runs: Runs, settings: Settings
) -> None:
    expired = {
        make_run(runs, days_ago=45),
        make_run(runs, status="failed", days_ago=31),
        make_run(runs, owner=None, status="interrupted", days_ago=400),  # an earlier run
        make_run(runs, owner=B, status="cancelled", days_ago=30.01),
    }
    young = [
        make_run(runs, days_ago=29.9),
        make_run(runs, owner=B),
        make_run(runs, owner=None, days_ago=10),
    ]
    # Old but not final: retention never touches a queued or running run.
    unfinished = [
        make_run(runs, status="queued", days_ago=60),
        make_run(runs, owner=B, status="running", days_ago=60),
    ]

    deleted = Retention(runs, settings).sweep()

    assert sorted(deleted) == sorted(expired)
    for run_id in expired:
        assert_gone(runs, run_id)
    for run_id in young + unfinished:
        assert_kept(runs, run_id)
    assert Retention(runs, settings).sweep() == []  # nothing left to do


def test_zero_retention_days_keeps_old_runs(runs: Runs, settings: Settings) -> None:
    ancient = make_run(runs, days_ago=3650)
    assert Retention(runs, settings.model_copy(update={"runs_retention_days": 0})).sweep() == []
    assert_kept(runs, ancient)


def test_two_sweepers_at_once_delete_each_run_once(runs: Runs, settings: Settings) -> None:
    """Every web process of a class deployment may sweep: a run both pick is deleted by one,
    and the other skips it (RunNotFound), with no error."""
    expired = {make_run(runs, days_ago=40, metrics=50) for _ in range(12)}
    kept = make_run(runs, days_ago=1)
    results: list[list[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def sweep() -> None:
        try:
            start.wait()
            results.append(Retention(runs, settings).sweep())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    first, second = results
    assert set(first) | set(second) == expired
    assert not set(first) & set(second)
    for run_id in expired:
        assert_gone(runs, run_id)
    assert_kept(runs, kept)


# ---- what a sweep keeps -------------------------------------------------------------------------


def test_a_followed_run_and_one_a_queued_run_resumes_from_are_kept(
    runs: Runs, settings: Settings
) -> None:
    followed = make_run(runs, days_ago=40)
    source = make_run(runs, days_ago=40)
    resuming = make_run(runs, status="queued", resume_from=source)
    plain = make_run(runs, days_ago=40)
    retention = Retention(runs, settings)

    ticket = runs.streams.admit(followed, "10.0.0.7")  # an open live stream, as the route takes
    try:
        assert runs.streams.streams_on(followed) == 1
        assert retention.sweep() == [plain]
        assert_kept(runs, followed)
        assert_kept(runs, source)
        assert_kept(runs, resuming)
    finally:
        runs.streams.release(ticket)

    # The stream over and the resuming run finished, both go at the next sweep.
    assert runs.store.finish(resuming, "completed")
    assert sorted(retention.sweep()) == sorted([followed, source])
    assert_gone(runs, followed)
    assert_gone(runs, source)
    assert_kept(runs, resuming)  # created now: young


def test_a_running_run_that_resumes_keeps_its_source(runs: Runs, settings: Settings) -> None:
    source = make_run(runs, days_ago=40)
    resuming = make_run(runs, status="running", resume_from=source)
    assert Retention(runs, settings).sweep() == []
    assert_kept(runs, source)
    assert_kept(runs, resuming)


# ---- the kept-per-learner rule ------------------------------------------------------------------


def test_each_learner_keeps_their_newest_final_runs(runs: Runs, settings: Settings) -> None:
    a_runs = [make_run(runs, days_ago=10 - i) for i in range(5)]  # oldest first
    a_running = make_run(runs, status="running")
    b_runs = [make_run(runs, owner=B, days_ago=20 - i) for i in range(2)]
    earlier = [make_run(runs, owner=None, days_ago=5) for _ in range(4)]  # nobody's: no share
    retention = Retention(runs, settings.model_copy(update={"runs_kept_per_learner": 2}))

    assert sorted(retention.sweep()) == sorted(a_runs[:3])
    for run_id in a_runs[:3]:
        assert_gone(runs, run_id)
    for run_id in [*a_runs[3:], a_running, *b_runs, *earlier]:
        assert_kept(runs, run_id)

    # A's running run ends: it is the newest, so the oldest of A's last two goes.
    assert runs.store.finish(a_running, "completed")
    assert retention.sweep() == [a_runs[3]]
    assert [run.id for run in runs.store.owned(A)] == [a_running, a_runs[4]]


# ---- the thread ---------------------------------------------------------------------------------


def test_the_retention_thread_sweeps_at_start_and_stops_promptly(
    runs: Runs, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    expired = make_run(runs, days_ago=40)
    retention = Retention(runs, settings)  # every hour, and once at start-up
    with caplog.at_level(logging.INFO, logger="app.jobs.retention"):
        retention.start()
        try:
            wait_for(lambda: not present(runs.store, expired), timeout=30)
        finally:
            started = time.monotonic()
            retention.stop()
        assert time.monotonic() - started < 2.0
    assert retention._thread is not None and not retention._thread.is_alive()
    assert_gone(runs, expired)
    lines = [r.getMessage() for r in caplog.records if r.name == "app.jobs.retention"]
    assert len(lines) == 1 and "retention deleted 1 runs" in lines[0] and expired in lines[0]


# ---- what runs keep, and the bound --------------------------------------------------------------


def test_kept_bytes_is_files_plus_metric_rows_and_a_final_run_is_counted_once(
    runs: Runs,
) -> None:
    files = {"checkpoint.pth": b"x" * 1000, "tensorboard/events.out": b"y" * 234}
    done = make_run(runs, files=files, metrics=10)
    expected = 1000 + 234 + 10 * METRIC_ROW_BYTES
    assert kept_bytes(runs, runs.store.get(done)) == expected
    assert runs.store.stored_bytes([done]) == {done: expected}
    # Counted once: a file that appears later (it cannot, for a final run) is not re-measured.
    (run_dir(runs.data_dir, done) / "extra.bin").write_bytes(b"z" * 5000)
    assert kept_bytes(runs, runs.store.get(done)) == expected

    running = make_run(runs, status="running", files={"checkpoint.pth": b"x" * 10}, metrics=1)
    assert kept_bytes(runs, runs.store.get(running)) == 10 + METRIC_ROW_BYTES
    runs.store.add_metrics(running, [(2, "loss", 0.5)])
    (run_dir(runs.data_dir, running) / "checkpoint.pth").write_bytes(b"x" * 300)
    assert kept_bytes(runs, runs.store.get(running)) == 300 + 2 * METRIC_ROW_BYTES  # afresh
    assert runs.store.stored_bytes([running]) == {running: None}


def test_learner_bytes_sums_only_the_learners_own_runs(runs: Runs) -> None:
    make_run(runs, files={"a": b"1" * 700}, metrics=2)
    make_run(runs, status="running", files={"a": b"1" * 50}, metrics=0)
    make_run(runs, owner=B, files={"a": b"1" * 9000})
    make_run(runs, owner=None, files={"a": b"1" * 9000})
    assert learner_bytes(runs, A) == 700 + 2 * METRIC_ROW_BYTES + 50
    assert learner_bytes(runs, B) == 9000 + 3 * METRIC_ROW_BYTES
    assert learner_bytes(runs, "nobody-0123456789abcd") == 0


def test_in_a_class_deployment_the_stored_files_are_counted(runs: Runs, tmp_path: Path) -> None:
    """There a run's files are rows of the store (StoredArtifacts): those are what it keeps."""
    stored = replace(runs, artifacts=StoredArtifacts(runs.store, tmp_path / "cache"))
    run_id = make_run(stored, files={}, metrics=4)  # summary.json: 12 bytes in the store
    runs.store.put_artifact(run_id, "checkpoint.pth", b"w" * 4096)
    assert kept_bytes(stored, runs.store.get(run_id)) == 12 + 4096 + 4 * METRIC_ROW_BYTES
    stored.delete(run_id)
    assert runs.store.artifact_bytes(run_id) == 0 and not present(runs.store, run_id)


def test_check_storage_refuses_at_the_limit_and_names_it(runs: Runs, settings: Settings) -> None:
    make_run(runs, files={"checkpoint.pth": b"x" * (3 * 1024 * 1024)}, metrics=0)
    limit: dict[str, Any] = {"runs_max_bytes_per_learner": 3 * 1024 * 1024}
    with pytest.raises(StorageFull) as refused:
        check_storage(runs, A, settings.model_copy(update=limit))
    message = str(refused.value)
    assert refused.value.limit == 3 * 1024 * 1024 and refused.value.used == 3 * 1024 * 1024
    assert "runs_max_bytes_per_learner = 3145728 bytes" in message
    assert "keep 3.0 MB" in message and "/runs" in message and "DELETE /api/runs/{id}" in message
    check_storage(runs, B, settings.model_copy(update=limit))  # B keeps nothing
    limit["runs_max_bytes_per_learner"] += 1
    check_storage(runs, A, settings.model_copy(update=limit))  # one byte under
