"""Each learner's runs are theirs (issue 16, item 2): lists show a learner's own runs, cancel,
delete and resume-from are the owner's (others get 403), any run is readable by its link and
marked read-only, ids carry 128 bits, and runs made before learners existed are "earlier runs"
listed only on the machine the app runs alone on. Real apps on real SQLite."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from app.jobs.store import ArtifactRow, MetricRow, RunStore
from app.web.identity import COOKIE
from tests.support import finished, launch, wait_for

HEADER = "X-Explorer-Learner"
QUICK = {"stage": "manual", "epochs": 5}


@pytest.fixture
def a(apps: Callable[..., TestClient]) -> TestClient:
    return apps()


def other(client: TestClient, host: str = "testclient") -> TestClient:
    """Another browser on the same app, with no cookie yet (``host``: where it connects from)."""
    return TestClient(client.app, client=(host, 50000))


def listed(client: TestClient) -> list[str]:
    return [run["id"] for run in client.get("/api/runs").json()["runs"]]


def test_a_run_id_carries_128_random_bits(a: TestClient) -> None:
    ids = {launch(a, "linear-regression", QUICK) for _ in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", run_id) for run_id in ids)


def test_another_learner_reads_a_run_by_its_link_but_cannot_change_it(a: TestClient) -> None:
    b = other(a)
    running = launch(a, "test-sleepy", {"steps": 2000})
    wait_for(lambda: a.get(f"/api/runs/{running}").json()["status"] == "running")

    # B does not see A's run in a list, but reads it by its id, read-only.
    assert running not in listed(b) and running in listed(a)
    seen = b.get(f"/api/runs/{running}").json()
    assert seen["read_only"] is True and seen["mine"] is False and seen["owner_name"] is None
    assert a.get(f"/api/runs/{running}").json()["read_only"] is False

    refused = b.post(f"/api/runs/{running}/cancel")
    assert refused.status_code == 403
    body = refused.json()
    assert "another learner's" in body["detail"] and f"/runs/{running}" in body["detail"]
    assert body["read_only"] is True and body["run"] == running
    assert a.get(f"/api/runs/{running}").json()["status"] == "running"  # nothing changed

    # Another learner's raw id in the header is not their identity: only a signed token is.
    owner = a.get("/api/me").json()
    forged = b.post(f"/api/runs/{running}/cancel", headers={HEADER: owner["learner"]})
    assert forged.status_code == 403
    tampered = owner["token"][:-2] + ("AA" if not owner["token"].endswith("AA") else "BB")
    assert b.post(f"/api/runs/{running}/cancel", headers={HEADER: tampered}).status_code == 403
    fake_cookie = other(a)
    fake_cookie.cookies.set(COOKIE, owner["learner"] + ".forged")
    assert fake_cookie.post(f"/api/runs/{running}/cancel").status_code == 403

    # The owner's own signed token works from a script with no cookie.
    script = other(a)
    cancelled = script.post(f"/api/runs/{running}/cancel", headers={HEADER: owner["token"]})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_the_run_page_is_read_only_for_another_learner(a: TestClient) -> None:
    run_id = launch(a, "test-sleepy", {"steps": 2000})
    b = other(a)
    theirs = b.get(f"/runs/{run_id}")
    assert theirs.status_code == 200
    assert 'id="read-only"' in theirs.text and 'id="cancel-run"' not in theirs.text
    own = a.get(f"/runs/{run_id}")
    assert 'id="read-only"' not in own.text and 'id="cancel-run"' in own.text
    # /runs lists it for its owner only (the table names it by its first 8 characters).
    assert f'data-run="{run_id}"' in a.get("/runs").text
    assert f'data-run="{run_id}"' not in b.get("/runs").text
    a.post(f"/api/runs/{run_id}/cancel")


def test_resuming_from_another_learners_run_is_refused(a: TestClient) -> None:
    source = launch(a, "linear-regression", {"stage": "nn", "epochs": 3})
    assert finished(a, source)["status"] == "completed"
    b = other(a)
    body = {"task": "linear-regression", "config": {"stage": "nn", "epochs": 6}}
    refused = b.post("/api/runs", json=body | {"resume_from": source})
    assert refused.status_code == 403 and "resume from" in refused.json()["detail"]
    assert listed(b) == []  # nothing was queued for B
    resumed = a.post("/api/runs", json=body | {"resume_from": source})
    assert resumed.status_code == 202
    assert finished(a, resumed.json()["id"])["status"] == "completed"


def test_the_owner_deletes_a_finished_run_with_every_file(a: TestClient) -> None:
    run_id = launch(a, "linear-regression", {"stage": "nn", "epochs": 3})
    assert finished(a, run_id)["status"] == "completed"
    store: RunStore = a.app.state.runs.store  # type: ignore[attr-defined]
    folder = a.app.state.runs.artifacts.folder(run_id)  # type: ignore[attr-defined]
    assert (folder / "checkpoint.pth").is_file() and store.metric_count(run_id) > 0

    b = other(a)
    assert b.delete(f"/api/runs/{run_id}").status_code == 403
    assert a.get(f"/api/runs/{run_id}").status_code == 200

    deleted = a.delete(f"/api/runs/{run_id}")
    assert deleted.status_code == 200 and deleted.json() == {"id": run_id, "deleted": True}
    assert a.get(f"/api/runs/{run_id}").status_code == 404
    assert a.get(f"/api/runs/{run_id}/checkpoint").status_code == 404
    assert not folder.exists()
    with store.engine.connect() as conn:
        for table in (MetricRow, ArtifactRow):
            count = select(func.count()).select_from(table).where(table.run_id == run_id)
            assert conn.execute(count).scalar_one() == 0
    assert a.delete(f"/api/runs/{run_id}").status_code == 404


def test_a_run_in_use_is_not_deleted(a: TestClient) -> None:
    running = launch(a, "test-sleepy", {"steps": 2000})
    busy = a.delete(f"/api/runs/{running}")
    assert busy.status_code == 409 and "cancel it first" in busy.json()["detail"]
    a.post(f"/api/runs/{running}/cancel")
    finished(a, running)

    # A run that a queued or running run resumes from keeps its checkpoint until that one ends.
    store: RunStore = a.app.state.runs.store  # type: ignore[attr-defined]
    source = launch(a, "linear-regression", {"stage": "nn", "epochs": 3})
    assert finished(a, source)["status"] == "completed"
    learner = store.get(source).owner
    resuming = store.create("linear-regression", {"epochs": 6}, source, owner=learner)
    refused = a.delete(f"/api/runs/{source}")
    assert refused.status_code == 409 and resuming.id in refused.json()["detail"]
    store.finish(resuming.id, "cancelled")
    assert a.delete(f"/api/runs/{source}").status_code == 200


def test_earlier_runs_are_listed_only_on_this_machine(a: TestClient, tmp_path: Path) -> None:
    store: RunStore = a.app.state.runs.store  # type: ignore[attr-defined]
    earlier = store.create("linear-regression", {"epochs": 5})
    store.finish(earlier.id, "completed")

    here = other(a, host="127.0.0.1")
    runs = {run["id"]: run for run in here.get("/api/runs").json()["runs"]}
    assert runs[earlier.id]["earlier"] is True and runs[earlier.id]["read_only"] is False
    page = here.get("/runs").text
    assert "Earlier runs" in page and f'data-run="{earlier.id}"' in page

    remote = other(a, host="203.0.113.7")
    assert earlier.id not in listed(remote) and "Earlier runs" not in remote.get("/runs").text
    assert remote.get(f"/api/runs/{earlier.id}").json()["read_only"] is True
    assert remote.delete(f"/api/runs/{earlier.id}").status_code == 403
    assert here.delete(f"/api/runs/{earlier.id}").status_code == 200


def test_an_existing_data_dir_migrates(tmp_path: Path) -> None:
    """A runs table from before issue 16 (no owner, no stored_bytes, no classes) opens, and its
    runs belong to nobody."""
    data_dir = tmp_path / "old"
    store = RunStore(data_dir=data_dir)
    old = store.create("linear-regression", {"epochs": 5})
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_runs_owner"))
        conn.execute(text("ALTER TABLE runs DROP COLUMN owner"))
        conn.execute(text("ALTER TABLE runs DROP COLUMN stored_bytes"))
        conn.execute(text("DROP TABLE class_members"))
        conn.execute(text("DROP TABLE classes"))
    store.close()
    reopened = RunStore(data_dir=data_dir)
    try:
        assert reopened.get(old.id).owner is None
        assert reopened.stored_bytes([old.id]) == {old.id: None}
        made, _token = reopened.create_class("Tuesday", "t" * 22)
        assert reopened.role_in(made.id, "t" * 22) == "teacher"
        assert [run.id for run in reopened.visible("t" * 22, earlier=True)] == [old.id]
    finally:
        reopened.close()


def test_a_teacher_sees_and_controls_their_class_runs_on_the_runs_page(a: TestClient) -> None:
    store: RunStore = a.app.state.runs.store  # type: ignore[attr-defined]
    teacher = other(a)
    teacher_id = teacher.get("/api/me").json()["learner"]
    made, _token = store.create_class("Period 3", teacher_id)
    learner = a.get("/api/me").json()["learner"]
    a.post("/api/me", json={"name": "<b>Ada</b>"})
    before = launch(a, "test-sleepy", {"steps": 2000})  # launched before joining: not the class's
    store.join_class(made.id, learner)
    during = launch(a, "test-sleepy", {"steps": 2000})

    assert before not in listed(teacher)
    runs = {run["id"]: run for run in teacher.get("/api/runs").json()["runs"]}
    assert runs[during]["read_only"] is False and runs[during]["owner_name"] == "<b>Ada</b>"
    page = teacher.get("/runs").text
    assert "Your classes&#39; runs" in page and "&lt;b&gt;Ada&lt;/b&gt;" in page
    assert "<b>Ada</b>" not in page
    assert teacher.post(f"/api/runs/{before}/cancel").status_code == 403
    assert teacher.post(f"/api/runs/{during}/cancel").json()["status"] == "cancelled"

    store.leave_class(made.id, learner)
    assert during not in listed(teacher)
    assert teacher.delete(f"/api/runs/{during}").status_code == 403
    a.post(f"/api/runs/{before}/cancel")


def test_a_lesson_offers_the_learners_own_runs_and_opens_anothers_read_only(
    a: TestClient,
) -> None:
    run_id = launch(a, "digits-cnn", {"epochs": 1})
    assert finished(a, run_id)["status"] == "completed"
    b = other(a)
    b_own = launch(b, "digits-cnn", {"epochs": 1})
    assert finished(b, b_own)["status"] == "completed"

    def view(client: TestClient, query: str) -> dict[str, Any]:
        answer = client.get(f"/api/lessons/saving-loading/view?{query}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json()["result"])

    mine = view(a, f"run={run_id}")
    assert [c["id"] for c in mine["choices"]] == [run_id]
    assert mine["run"]["read_only"] is False and mine["run"]["resumable"] is True
    theirs = view(b, f"run={run_id}")
    assert [c["id"] for c in theirs["choices"]] == [run_id, b_own]  # the linked run, then B's
    assert theirs["run"]["read_only"] is True and theirs["run"]["resumable"] is False
    offered = b.get("/api/lessons/cnn-feature-maps/view").json()["result"]["runs"]
    assert [r["id"] for r in offered] == [b_own]
