"""The store's side of issue 16 on SQLite and PostgreSQL: who sees which run (own, taught, the
earlier runs), classes and their members, join codes, and deleting a run with what it keeps."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from app.jobs.store import (
    CODE_ALPHABET,
    TEACHER,
    ArtifactRow,
    ClassNotFound,
    ClassRow,
    MetricRow,
    RunBusy,
    RunRow,
    RunStore,
)

TEACHER_ID, ADA, BOB = "t" * 22, "a" * 22, "b" * 22


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    if request.param == "postgresql":
        s = RunStore(str(request.getfixturevalue("pg_url")))
    else:
        s = RunStore(data_dir=tmp_path / "data")
    yield s
    s.close()


def ids(runs: list) -> list[str]:
    return [run.id for run in runs]


def test_a_learner_sees_their_own_runs_and_a_teacher_their_class(store: RunStore) -> None:
    earlier = store.create("linear-regression", {})
    before = store.create("linear-regression", {}, owner=ADA)
    made, token = store.create_class("Tuesday", TEACHER_ID)
    assert store.join_class(made.id, ADA) == "learner"
    during = store.create("linear-regression", {}, owner=ADA)
    bobs = store.create("linear-regression", {}, owner=BOB)  # not in the class
    own = store.create("linear-regression", {}, owner=TEACHER_ID)

    assert ids(store.visible(ADA)) == [during.id, before.id]
    assert ids(store.visible(BOB)) == [bobs.id]
    assert ids(store.visible(TEACHER_ID)) == [own.id, during.id]
    assert ids(store.visible(BOB, earlier=True)) == [bobs.id, earlier.id]
    assert store.teaches(TEACHER_ID, store.get(during.id))
    assert not store.teaches(TEACHER_ID, store.get(before.id))  # launched before joining
    assert not store.teaches(TEACHER_ID, store.get(bobs.id))
    assert not store.teaches(ADA, store.get(own.id))  # a learner teaches no one
    assert ids(store.class_runs(made.id)) == [own.id, during.id]

    # A teacher link's token is never stored, only its SHA-256.
    with store.engine.connect() as conn:
        kept = conn.execute(select(ClassRow.teacher_key_hash)).scalar_one()
    assert kept == hashlib.sha256(token.encode()).hexdigest() and token not in kept
    assert store.class_by_teacher_token(token).id == made.id
    with pytest.raises(ClassNotFound):
        store.class_by_teacher_token(token + "x")

    assert store.leave_class(made.id, ADA)
    assert ids(store.visible(TEACHER_ID)) == [own.id]
    assert not store.teaches(TEACHER_ID, store.get(during.id))


def test_join_codes_are_read_as_people_type_them(store: RunStore) -> None:
    made, _ = store.create_class("Tuesday", TEACHER_ID)
    code = made.code
    assert len(code) == 8 and set(code) <= set(CODE_ALPHABET)
    for typed in (code, code.lower(), f"{code[:4]}-{code[4:]}", f" {code[:4]} {code[4:]} "):
        assert store.class_by_code(typed).id == made.id
    with pytest.raises(ClassNotFound):
        store.class_by_code("ZZZZ-ZZZ0")
    codes = {store.create_class(f"class {i}", TEACHER_ID)[0].code for i in range(20)}
    assert len(codes) == 20


def test_roles_members_and_names(store: RunStore) -> None:
    made, _ = store.create_class("Tuesday", TEACHER_ID)
    store.set_learner_name(ADA, "Ada")
    store.join_class(made.id, ADA)
    store.join_class(made.id, BOB)
    assert store.join_class(made.id, ADA) == "learner"  # joining twice changes nothing
    assert store.join_class(made.id, BOB, TEACHER) == TEACHER  # the teacher link
    assert store.join_class(made.id, BOB) == TEACHER  # a teacher stays one
    members = store.members(made.id)
    assert [(m.learner, m.role) for m in members] == [
        (TEACHER_ID, "teacher"),
        (BOB, "teacher"),
        (ADA, "learner"),
    ]
    assert {m.learner: m.name for m in members}[ADA] == "Ada"
    assert [(info.id, role) for info, role in store.classes_of(BOB)] == [(made.id, "teacher")]
    assert store.role_in(made.id, "x" * 22) is None
    with pytest.raises(ClassNotFound):
        store.join_class("0" * 32, ADA)


def test_deleting_a_run_takes_its_metrics_and_stored_files(store: RunStore) -> None:
    run = store.create("linear-regression", {}, owner=ADA)
    with pytest.raises(RunBusy, match="cancel it first"):
        store.delete_run(run.id)
    store.add_metrics(run.id, [(1, "loss", 1.0), (2, "loss", 0.5)])
    store.put_artifact(run.id, "checkpoint.pth", b"x" * 100)
    store.finish(run.id, "completed")
    assert store.artifact_bytes(run.id) == 100 and store.metric_count(run.id) == 2
    store.set_stored_bytes(run.id, 420)
    assert store.stored_bytes([run.id]) == {run.id: 420}

    resuming = store.create("linear-regression", {}, run.id, owner=ADA)
    with pytest.raises(RunBusy, match=resuming.id):
        store.delete_run(run.id)
    store.finish(resuming.id, "cancelled")
    assert store.delete_run(run.id).id == run.id
    with store.engine.connect() as conn:
        for table in (MetricRow, ArtifactRow):
            left = conn.execute(select(func.count()).where(table.run_id == run.id)).scalar_one()
            assert left == 0
    assert ids(store.visible(ADA)) == [resuming.id]


def test_expired_and_owners_for_retention(store: RunStore) -> None:
    old = store.create("linear-regression", {}, owner=ADA)
    new = store.create("linear-regression", {}, owner=BOB)
    running_old = store.create("linear-regression", {}, owner=ADA)
    for run in (old, new):
        store.finish(run.id, "completed")
    store.mark_running(running_old.id)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    with store.engine.begin() as conn:
        conn.execute(
            update(RunRow)
            .where(RunRow.id.in_([old.id, running_old.id]))
            .values(created_at=long_ago)
        )
    assert store.expired(datetime.now(UTC) - timedelta(days=30)) == [old.id]
    assert sorted(store.owners()) == sorted([ADA, BOB])
