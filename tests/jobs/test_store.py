from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.jobs.store import FINAL_STATUSES, STATUSES, RunNotFound, RunStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(data_dir=tmp_path / "data")
    yield s
    s.close()


def test_statuses() -> None:
    assert STATUSES == ("queued", "running", "completed", "failed", "cancelled", "interrupted")
    assert {"completed", "failed", "cancelled", "interrupted"} == FINAL_STATUSES


def test_round_trip(store: RunStore, tmp_path: Path) -> None:
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


def test_store_reopens_from_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    a = RunStore(url)
    run = a.create("linear-regression", {})
    a.add_metrics(run.id, [(1, "loss", 3.0)])
    a.close()
    b = RunStore(url)
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

    # A new process (server restart) opens the same file.
    reopened = RunStore(data_dir=tmp_path / "data")
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
