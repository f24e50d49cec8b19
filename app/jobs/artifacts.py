"""Where a run's files are read from: its checkpoint, state_dict, TensorBoard event files and
summary.

Alone, a run's files are in its folder of the data dir (``DirArtifacts``). In a class deployment
they are rows of the run store (``StoredArtifacts``), so any web process on any host reads what a
worker on another host wrote; a file is copied into this host's cache folder the first time it is
read, and again only when the stored one has changed. Both answer the same questions, so the
routes and lessons do not know which deployment they run in.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.jobs.store import RunStore, run_dir
from app.jobs.tracking import SUMMARY_FILE, TENSORBOARD_DIR, parse_summary, read_summary

# In the store, a run's event files are named by their path under the run's folder.
TENSORBOARD_PREFIX = f"{TENSORBOARD_DIR}/"


def zip_event_files(files: Iterable[tuple[str, bytes]], run_id: str) -> bytes:
    """Event files (path under ``tensorboard/``, bytes) as a zip whose top folder is the run id,
    so several runs unzip side by side into one ``--logdir`` and TensorBoard lists them apart."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(f"{run_id}/{name}", data)
    return buffer.getvalue()


class Artifacts(ABC):
    """A run's files, by name (``checkpoint.pth``, ``state_dict.pth``, ``summary.json``)."""

    @abstractmethod
    def path(self, run_id: str, name: str) -> Path | None:
        """A local file holding the run's file ``name`` (None: the run has not written it)."""

    @abstractmethod
    def has_tensorboard(self, run_id: str) -> bool:
        """Whether the run has written TensorBoard event files."""

    @abstractmethod
    def event_files(self, run_id: str) -> list[tuple[str, bytes]]:
        """The run's TensorBoard event files: (path under ``tensorboard/``, bytes), sorted."""

    @abstractmethod
    def summary(self, run_id: str) -> dict[str, Any] | None:
        """The run's ``summary.json`` (architecture, held-out predictions, samples)."""

    def exists(self, run_id: str, name: str) -> bool:
        """Whether the run has written ``name`` (without copying it anywhere)."""
        return self.path(run_id, name) is not None

    def read(self, run_id: str, name: str) -> bytes | None:
        path = self.path(run_id, name)
        return path.read_bytes() if path is not None else None

    def tensorboard_zip(self, run_id: str) -> bytes:
        return zip_event_files(self.event_files(run_id), run_id)

    @abstractmethod
    def size(self, run_id: str) -> int:
        """Bytes the run's files take."""

    @abstractmethod
    def remove(self, run_id: str) -> None:
        """Delete every file of the run kept on this host (after the store forgot the run)."""


class DirArtifacts(Artifacts):
    """Files in ``<data dir>/runs/<id>/``, as the local runner's workers write them."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def folder(self, run_id: str) -> Path:
        return run_dir(self.data_dir, run_id)

    def path(self, run_id: str, name: str) -> Path | None:
        path = self.folder(run_id) / name
        return path if path.is_file() else None

    def has_tensorboard(self, run_id: str) -> bool:
        return (self.folder(run_id) / TENSORBOARD_DIR).is_dir()

    def event_files(self, run_id: str) -> list[tuple[str, bytes]]:
        root = self.folder(run_id) / TENSORBOARD_DIR
        if not root.is_dir():
            return []
        return [
            (path.relative_to(root).as_posix(), path.read_bytes())
            for path in sorted(root.rglob("*"))
            if path.is_file()
        ]

    def summary(self, run_id: str) -> dict[str, Any] | None:
        return read_summary(self.folder(run_id))

    def size(self, run_id: str) -> int:
        """Every file under the run's folder; one written or moved away meanwhile (a running
        run's worker saves through a temporary folder) is skipped, never an error."""
        total = 0
        for root, _dirs, names in os.walk(self.folder(run_id)):
            for name in names:
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
        return total

    def remove(self, run_id: str) -> None:
        shutil.rmtree(self.folder(run_id), ignore_errors=True)


class StoredArtifacts(Artifacts):
    """Files kept as rows of the run store; ``cache_dir`` holds this host's copies."""

    def __init__(self, store: RunStore, cache_dir: Path) -> None:
        self.store = store
        self.cache_dir = Path(cache_dir)

    def path(self, run_id: str, name: str) -> Path | None:
        stamp = self.store.artifact_stamp(run_id, name)
        if stamp is None:
            return None
        size, written = stamp
        mtime_ns = int(written.timestamp() * 1e9)
        local = self.cache_dir / run_id / name
        with contextlib.suppress(OSError):
            info = local.stat()
            if info.st_size == size and info.st_mtime_ns == mtime_ns:
                return local
        data = self.store.get_artifact(run_id, name)
        if data is None:
            return None
        local.parent.mkdir(parents=True, exist_ok=True)
        # Written beside it, then moved into place: a reader never sees half a file.
        handle, partial = tempfile.mkstemp(dir=local.parent, prefix=f".{local.name}.")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.utime(partial, ns=(mtime_ns, mtime_ns))
            os.replace(partial, local)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        return local

    def exists(self, run_id: str, name: str) -> bool:
        return self.store.artifact_stamp(run_id, name) is not None

    def has_tensorboard(self, run_id: str) -> bool:
        return bool(self.store.artifact_names(run_id, TENSORBOARD_PREFIX))

    def event_files(self, run_id: str) -> list[tuple[str, bytes]]:
        files = []
        for name in self.store.artifact_names(run_id, TENSORBOARD_PREFIX):
            data = self.store.get_artifact(run_id, name)
            if data is not None:
                files.append((name[len(TENSORBOARD_PREFIX) :], data))
        return files

    def summary(self, run_id: str) -> dict[str, Any] | None:
        return parse_summary(self.store.get_artifact(run_id, SUMMARY_FILE))

    def size(self, run_id: str) -> int:
        return self.store.artifact_bytes(run_id)

    def remove(self, run_id: str) -> None:
        shutil.rmtree(self.cache_dir / run_id, ignore_errors=True)
