"""Faults inside one run, with the app in this process: a worker killed with SIGKILL, and a disk
with no space left for the run's artifacts. Each run must end in a clear final state, keep every
metric it committed, and leave the runner working for the next run."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from app.config import Settings
from app.jobs.run_worker import STAGING_DIR
from app.jobs.tasks import CHECKPOINT_FILE, STATE_DICT_FILE
from app.main import create_app
from tests.support import finished, launch, wait_for


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data", warm_lessons=False, program_prewarm=False, runs_max_concurrent=2
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def losses(client: TestClient, run_id: str) -> np.ndarray:
    metrics = client.get(f"/api/runs/{run_id}").json()["metrics"]
    return np.array(metrics.get("loss", []), dtype=float).reshape(-1, 2)


def test_a_worker_killed_with_sigkill_fails_naming_the_signal_and_keeps_its_metrics(
    client: TestClient,
) -> None:
    run_id = launch(client, "test-sleepy", {})
    wait_for(lambda: len(losses(client, run_id)) >= 5)
    runner = client.app.state.runs.runner  # type: ignore[attr-defined]
    pid = runner._active[run_id].process.pid
    seen = losses(client, run_id)
    os.kill(pid, signal.SIGKILL)

    run = finished(client, run_id)
    assert run["status"] == "failed"
    assert "died" in run["error"] and "signal 9" in run["error"] and "SIGKILL" in run["error"]
    kept = losses(client, run_id)
    # Every metric committed before the kill is still there, in order: the worker logged
    # loss = 1 / step for steps 1, 2, 3, ...
    assert len(kept) >= len(seen) and np.array_equal(kept[: len(seen)], seen)
    steps = np.arange(1, len(kept) + 1)
    assert np.allclose(kept[:, 0], steps) and np.allclose(kept[:, 1], 1.0 / steps)
    wait_for(lambda: runner.active_count() == 0)

    # The runner keeps working: the next run completes and fits its line.
    after = finished(client, launch(client, "linear-regression", {"epochs": 20}))
    assert after["status"] == "completed", after["error"]
    assert len(after["metrics"]["loss"]) == 20


def test_no_disk_space_for_the_checkpoint_fails_the_run_naming_it(client: TestClient) -> None:
    steps = 60
    run_id = launch(client, "test-sleepy", {"steps": steps})
    runs = client.app.state.runs  # type: ignore[attr-defined]
    artifacts = runs.artifacts_dir(run_id)
    wait_for(lambda: artifacts.is_dir())
    # A real ENOSPC: every write to /dev/full fails with "No space left on device". The worker
    # stages its checkpoint files here before moving them into place.
    staging = artifacts / STAGING_DIR
    staging.mkdir()
    for name in (CHECKPOINT_FILE, STATE_DICT_FILE):
        (staging / name).symlink_to("/dev/full")

    run = finished(client, run_id)
    assert run["status"] == "failed"
    assert "no disk space" in run["error"] and "No space left on device" in run["error"]
    assert str(artifacts) in run["error"]
    # Every metric of the run was committed before it tried to save: loss = 1 / step.
    kept = losses(client, run_id)
    assert np.allclose(kept[:, 0], np.arange(1, steps + 1))
    assert np.allclose(kept[:, 1], 1.0 / np.arange(1, steps + 1))
    # No torn checkpoint is left to download or resume from.
    assert not (artifacts / CHECKPOINT_FILE).exists() and not staging.exists()
    response = client.get(f"/api/runs/{run_id}/checkpoint")
    assert response.status_code == 404 and "failed" in response.json()["detail"]
    assert client.get("/healthz").status_code == 200

    # Space is back (nothing is redirected any more): the next run completes with a checkpoint
    # that plain torch.load opens.
    after = finished(client, launch(client, "linear-regression", {"epochs": 10}))
    assert after["status"] == "completed", after["error"]
    ckpt = torch.load(runs.artifacts_dir(after["id"]) / CHECKPOINT_FILE, weights_only=True)
    assert ckpt["epoch"] == 10 and ckpt["task"] == "linear-regression"


# TensorBoard's writer thread dies of the ENOSPC on purpose; pytest would only warn about it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_full_disk_under_the_tensorboard_files_does_not_stop_the_supervisor(
    client: TestClient,
) -> None:
    """The supervisor writes each run's TensorBoard scalars; when that writer fails, the run's
    metrics still reach the store and every other run is still looked after."""
    run_id = launch(client, "test-sleepy", {"steps": 40})
    runs = client.app.state.runs  # type: ignore[attr-defined]
    runner = runs.runner
    wait_for(lambda: run_id in runner._active and runner._active[run_id].scalars is not None)
    active = runner._active[run_id]
    # The writer's file now goes to /dev/full: its next flush fails with ENOSPC.
    event_file = Path(
        os.fsdecode(active.scalars.file_writer.event_writer._general_file_writer.filename)
    )
    # Swapped in one rename: the writer appends by path, and may recreate an unlinked file.
    swap = event_file.with_name(event_file.name + ".full")
    swap.symlink_to("/dev/full")
    os.replace(swap, event_file)
    active.scalars.flush()

    run = finished(client, run_id)
    assert run["status"] == "completed", run["error"]
    assert len(run["metrics"]["loss"]) == 40
    after = finished(client, launch(client, "linear-regression", {"epochs": 5}))
    assert after["status"] == "completed", after["error"]


def test_a_full_database_fails_the_run_naming_it_and_the_server_recovers(
    client: TestClient,
) -> None:
    """SQLite itself reports "database or disk is full" (SQLITE_FULL) once the file may not grow:
    ``PRAGMA max_page_count`` caps it at its present size on every connection the store opens."""
    from sqlalchemy import event, text

    runs = client.app.state.runs  # type: ignore[attr-defined]
    engine = runs.store.engine
    run_id = launch(client, "test-sleepy", {})
    wait_for(lambda: len(losses(client, run_id)) >= 3)
    with engine.connect() as connection:
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()

    def cap(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(engine, "connect", cap)
    engine.dispose()  # every connection from now on is capped
    try:
        run = finished(client, run_id)
        assert run["status"] == "failed"
        assert "database or disk is full" in run["error"] and "run store" in run["error"]
        assert len(losses(client, run_id)) >= 3  # what was committed stays
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/runs").status_code == 200
    finally:
        event.remove(engine, "connect", cap)
        engine.dispose()
    # Space is back: the next run completes.
    after = finished(client, launch(client, "linear-regression", {"epochs": 5}))
    assert after["status"] == "completed", after["error"]


def test_a_final_status_the_store_refuses_is_written_once_it_takes_writes_again(
    client: TestClient,
) -> None:
    """With every write refused (``PRAGMA query_only``: SQLite answers "attempt to write a
    readonly database"), the run's worker is stopped and its final word waits in the runner;
    the moment the store takes writes again, the run ends ``failed`` naming why."""
    from sqlalchemy import event

    runs = client.app.state.runs  # type: ignore[attr-defined]
    runner, engine = runs.runner, runs.store.engine
    run_id = launch(client, "test-sleepy", {})
    wait_for(lambda: len(losses(client, run_id)) >= 3)

    def read_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only=ON")

    event.listen(engine, "connect", read_only)
    engine.dispose()
    try:
        wait_for(lambda: run_id in runner._unwritten and runner.active_count() == 0)
        assert client.get(f"/api/runs/{run_id}").json()["status"] == "running"
        assert client.get("/healthz").status_code == 200
    finally:
        event.remove(engine, "connect", read_only)
        engine.dispose()
    run = finished(client, run_id)
    assert run["status"] == "failed" and "readonly database" in run["error"]
    assert run_id not in runner._unwritten and len(losses(client, run_id)) >= 3
