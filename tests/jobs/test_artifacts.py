"""Where a run's files are read from: ``DirArtifacts`` (a run's folder in the data dir) and
``StoredArtifacts`` (rows of a PostgreSQL run store, copied into this host's cache folder). Both
answer the same questions the same way; the store's copies are fetched again only when the
stored file has changed."""

from __future__ import annotations

import io
import json
import os
import secrets
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.jobs.artifacts import Artifacts, DirArtifacts, StoredArtifacts
from app.jobs.store import RunStore, run_dir

CHECKPOINT = "checkpoint.pth"
SUMMARY = "summary.json"
EVENTS = {
    "events.out.tfevents.1700000000.host.1.0": b"first event file \x00\x01",
    "sub/events.out.tfevents.1700000001.host.1.0": b"second \xff event file",
}


@dataclass
class Files:
    """One implementation, a run of it, and how a worker writes that run's files."""

    artifacts: Artifacts
    run_id: str
    put: Callable[[str, bytes], None]


@pytest.fixture(params=["dir", "stored"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> Files:
    if request.param == "dir":
        data_dir = tmp_path / "data"
        run_id = secrets.token_hex(6)

        def write(name: str, data: bytes) -> None:
            path = run_dir(data_dir, run_id) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        return Files(DirArtifacts(data_dir), run_id, write)
    store: RunStore = request.getfixturevalue("store")
    run = store.create("digits-cnn", {})
    return Files(
        StoredArtifacts(store, tmp_path / "cache"),
        run.id,
        lambda name, data: store.put_artifact(run.id, name, data),
    )


@pytest.fixture
def stored(store: RunStore, tmp_path: Path) -> tuple[StoredArtifacts, str]:
    run = store.create("digits-cnn", {})
    return StoredArtifacts(store, tmp_path / "cache"), run.id


# -- both implementations ---------------------------------------------------------------------


def test_path_is_a_local_file_with_the_runs_bytes_and_none_when_missing(files: Files) -> None:
    data = secrets.token_bytes(3000)
    assert files.artifacts.path(files.run_id, CHECKPOINT) is None
    assert files.artifacts.read(files.run_id, CHECKPOINT) is None
    assert not files.artifacts.exists(files.run_id, CHECKPOINT)

    files.put(CHECKPOINT, data)
    assert files.artifacts.exists(files.run_id, CHECKPOINT)

    path = files.artifacts.path(files.run_id, CHECKPOINT)
    assert path is not None and path.is_file()
    assert path.name == CHECKPOINT
    assert path.read_bytes() == data
    assert files.artifacts.read(files.run_id, CHECKPOINT) == data
    assert files.artifacts.path(files.run_id, "state_dict.pth") is None
    assert files.artifacts.path("nosuchrun", CHECKPOINT) is None


def test_a_rewritten_file_is_read_anew(files: Files) -> None:
    first, same_size, longer = b"a" * 64, b"b" * 64, b"c" * 100
    files.put(CHECKPOINT, first)
    assert files.artifacts.read(files.run_id, CHECKPOINT) == first

    files.put(CHECKPOINT, same_size)
    assert files.artifacts.read(files.run_id, CHECKPOINT) == same_size

    files.put(CHECKPOINT, longer)
    path = files.artifacts.path(files.run_id, CHECKPOINT)
    assert path is not None and path.read_bytes() == longer


def test_event_files_are_those_under_tensorboard_sorted_and_zip_under_the_run_id(
    files: Files,
) -> None:
    assert files.artifacts.has_tensorboard(files.run_id) is False
    assert files.artifacts.event_files(files.run_id) == []
    empty = zipfile.ZipFile(io.BytesIO(files.artifacts.tensorboard_zip(files.run_id)))
    assert empty.namelist() == []

    files.put(CHECKPOINT, b"not an event file")
    files.put("tensorboardish.txt", b"nor this: beside the folder, not in it")
    assert files.artifacts.has_tensorboard(files.run_id) is False
    for name, data in reversed(EVENTS.items()):
        files.put(f"tensorboard/{name}", data)

    assert files.artifacts.has_tensorboard(files.run_id) is True
    assert files.artifacts.event_files(files.run_id) == sorted(EVENTS.items())
    archive = zipfile.ZipFile(io.BytesIO(files.artifacts.tensorboard_zip(files.run_id)))
    assert archive.testzip() is None
    assert sorted(archive.namelist()) == sorted(f"{files.run_id}/{name}" for name in EVENTS)
    for name, data in EVENTS.items():
        assert archive.read(f"{files.run_id}/{name}") == data
    assert {n.split("/")[0] for n in archive.namelist()} == {files.run_id}

    # A file in a subfolder is a path too; the folder itself is no file.
    nested = files.artifacts.path(files.run_id, f"tensorboard/{next(reversed(EVENTS))}")
    assert nested is not None and nested.read_bytes() == EVENTS[next(reversed(EVENTS))]
    assert files.artifacts.path(files.run_id, "tensorboard") is None


def test_summary_is_the_parsed_json_object(files: Files) -> None:
    assert files.artifacts.summary(files.run_id) is None
    summary = {"architecture": [{"name": "fc", "parameters": 1290}], "classes": ["0", "1"]}

    files.put(SUMMARY, json.dumps(summary).encode())
    assert files.artifacts.summary(files.run_id) == summary

    files.put(SUMMARY, b"[1, 2]")  # JSON, but not an object
    assert files.artifacts.summary(files.run_id) is None


# -- StoredArtifacts' cache -------------------------------------------------------------------


def test_exists_copies_nothing_into_the_cache(store: RunStore, tmp_path: Path) -> None:
    run_id = store.create("digits-cnn", {}).id
    store.put_artifact(run_id, CHECKPOINT, b"weights")
    cache = tmp_path / "cache"
    assert StoredArtifacts(store, cache).exists(run_id, CHECKPOINT)
    assert not cache.exists()


def test_a_stored_file_is_copied_into_the_cache_once(
    store: RunStore, stored: tuple[StoredArtifacts, str], tmp_path: Path
) -> None:
    artifacts, run_id = stored
    data = secrets.token_bytes(5000)
    store.put_artifact(run_id, CHECKPOINT, data)

    path = artifacts.path(run_id, CHECKPOINT)
    assert path == tmp_path / "cache" / run_id / CHECKPOINT
    assert path.read_bytes() == data
    before = path.stat()
    stamp = store.artifact_stamp(run_id, CHECKPOINT)
    assert stamp is not None
    assert before.st_mtime == pytest.approx(stamp[1].timestamp(), abs=1e-5)  # the store's time

    again = artifacts.path(run_id, CHECKPOINT)
    assert again == path
    after = path.stat()
    # Not fetched again: a new copy is written beside and moved in place (a new inode).
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in path.parent.iterdir()) == [CHECKPOINT]  # no half-written copy


def test_a_changed_stored_file_replaces_the_cached_copy(
    store: RunStore, stored: tuple[StoredArtifacts, str]
) -> None:
    artifacts, run_id = stored
    store.put_artifact(run_id, CHECKPOINT, b"x" * 256)
    path = artifacts.path(run_id, CHECKPOINT)
    assert path is not None
    first = path.stat()

    store.put_artifact(run_id, CHECKPOINT, b"y" * 256)  # the same size: only its time tells

    assert artifacts.read(run_id, CHECKPOINT) == b"y" * 256
    assert path.stat().st_ino != first.st_ino


def test_a_damaged_cached_copy_is_fetched_again(
    store: RunStore, stored: tuple[StoredArtifacts, str]
) -> None:
    artifacts, run_id = stored
    data = secrets.token_bytes(1000)
    store.put_artifact(run_id, CHECKPOINT, data)
    path = artifacts.path(run_id, CHECKPOINT)
    assert path is not None

    path.write_bytes(b"\x00" * 1000)  # the same size, written now: its time no longer matches

    assert artifacts.read(run_id, CHECKPOINT) == data


def test_a_deleted_stored_file_is_missing_even_with_a_cached_copy(
    store: RunStore, stored: tuple[StoredArtifacts, str]
) -> None:
    artifacts, run_id = stored
    store.put_artifact(run_id, "partial/checkpoint.pth", b"partial")
    assert artifacts.read(run_id, "partial/checkpoint.pth") == b"partial"

    store.delete_artifacts(run_id, "partial/")

    assert artifacts.path(run_id, "partial/checkpoint.pth") is None


def test_many_readers_at_once_each_get_the_whole_file(
    store: RunStore, stored: tuple[StoredArtifacts, str]
) -> None:
    artifacts, run_id = stored
    data = secrets.token_bytes(200_000)
    store.put_artifact(run_id, CHECKPOINT, data)
    seen: list[bytes | None] = []
    lock = threading.Lock()

    def read() -> None:
        got = artifacts.read(run_id, CHECKPOINT)
        with lock:
            seen.append(got)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert seen == [data] * 8
    folder = artifacts.cache_dir / run_id
    assert sorted(os.listdir(folder)) == [CHECKPOINT]
