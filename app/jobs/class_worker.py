"""One run trained on a class deployment's Celery worker (``app.jobs.celery`` calls ``train``).

The store is the truth, and this module talks only to it:

* ``claim`` takes the run (queued -> running) for this worker; a second delivery of its message,
  or one for a run that was cancelled meanwhile, does nothing.
* A heartbeat thread says every ``lease / 4`` (at most every 0.5 s) that the worker is alive,
  and reads the run's row every 0.1 s: a cancel from any web process, the time limit, or another
  worker that took it over stop the training loop at its next step.
* A writer thread commits the metrics in batches (at most every ``FLUSH_S``, each with a NOTIFY
  that wakes every web process's streams), retrying while the store is unreachable.
* After each epoch (at most every ``CHECKPOINT_EVERY_S``) the training state is saved in the store
  as ``partial/checkpoint.pth``. A worker killed mid-run stops heartbeating; a sweeper
  (``app.jobs.class_runner.Sweeper``) puts the run back in line, and the next worker continues it
  from that checkpoint, skipping every step the store already has, so no metric is logged twice
  or lost.
* At the end the checkpoint, state_dict, summary and TensorBoard event files (written from the
  store's metrics, with the times they were logged) go into the store, where every host reads
  them, and the run is let go of (``release``) after its final status.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import itertools
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from app.jobs import store as st
from app.jobs import tracking
from app.jobs.run_worker import describe_error
from app.jobs.store import RunStore
from app.jobs.tasks import CHECKPOINT_FILE, Task, TrainResult, get_task, save_checkpoint

log = logging.getLogger("app.jobs.class_worker")

PARTIAL_CHECKPOINT = "partial/checkpoint.pth"
FLUSH_S = 0.02
CHECKPOINT_EVERY_S = 0.5
# An epoch checkpoint waits at most this long for the metrics before it to be committed.
SYNC_TIMEOUT_S = 2.0
# A heartbeat is written at least this often; between two, the run's row is read every
# CANCEL_POLL_S, so a cancel from any web process stops the loop within about a tenth of a second.
HEARTBEAT_MAX_S = 0.5
CANCEL_POLL_S = 0.1
RETRY_PAUSE_S = (0.05, 0.1, 0.25, 0.5, 1.0)

T = TypeVar("T")


def worker_name() -> str:
    """This worker process, as the store records who holds a run: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def retrying(fn: Callable[[], T], give_up_after_s: float, what: str) -> T:
    """``fn()``, tried again while the store refuses it (a restart, a dropped connection), for at
    most ``give_up_after_s``; the last error is raised after that."""
    deadline = time.monotonic() + give_up_after_s
    for attempt in itertools.count():
        try:
            return fn()
        except st.RunLost:
            raise  # another worker holds the run: trying again cannot help
        except Exception as exc:  # noqa: BLE001 - a database error of any kind: wait, try again
            if time.monotonic() >= deadline:
                raise
            pause = RETRY_PAUSE_S[min(attempt, len(RETRY_PAUSE_S) - 1)]
            log.warning("%s failed (%s: %s); retrying", what, type(exc).__name__, exc)
            time.sleep(pause)
    raise AssertionError("itertools.count() never ends")


class MetricWriter:
    """The run's metrics on their way to the store, committed in batches by one thread."""

    def __init__(
        self, store: RunStore, run_id: str, worker: str, skip: dict[str, int], retry_s: float
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.worker = worker
        self.skip = skip  # {name: last stored step}: a continued run logs only what is new
        self.retry_s = retry_s
        self.lock = threading.Lock()
        self.items: list[tuple[int, str, float, float]] = []
        self.progress: float | None = None
        self.wake = threading.Event()
        self.closed = False
        self.error: BaseException | None = None
        self.failed = threading.Event()  # the training loop stops at its next step
        self._tried = False  # the batch being committed was tried before
        self.added = 0  # metrics added, and how many of them are committed
        self.committed = 0
        self.synced = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=f"metrics-{run_id}", daemon=True)
        self.thread.start()

    def add(self, step: int, name: str, value: float) -> None:
        if step <= self.skip.get(name, -1):
            return  # stored by the attempt before this one
        with self.lock:
            self.items.append((int(step), str(name), float(value), time.time()))
            self.added += 1

    def sync(self, timeout_s: float) -> bool:
        """Wait until every metric added so far is committed; False when that took longer than
        ``timeout_s`` (the store is unreachable) or the writer has failed."""
        with self.lock:
            target = self.added
        self.wake.set()
        with self.synced:
            return (
                self.synced.wait_for(
                    lambda: self.committed >= target or self.error is not None, timeout_s
                )
                and self.error is None
            )

    def set_progress(self, fraction: float) -> None:
        with self.lock:
            self.progress = fraction

    def _flush(self) -> None:
        with self.lock:
            items, self.items = self.items, []
            progress, self.progress = self.progress, None
        if items:
            retrying(lambda: self._commit(items), self.retry_s, "storing metrics")
            with self.synced:
                self.committed += len(items)
                self.synced.notify_all()
        if progress is not None:
            retrying(
                lambda: self.store.update_progress(self.run_id, progress, worker=self.worker),
                self.retry_s,
                "storing progress",
            )

    def _commit(self, items: list[tuple[int, str, float, float]]) -> None:
        """One batch; tried again, it first drops what the store already has (a commit whose
        answer was lost on the way may have gone through), since each name's steps only grow."""
        if self._tried:
            stored = self.store.last_steps(self.run_id)
            items = [m for m in items if m[0] > stored.get(m[1], -1)]
        self._tried = True
        if items:
            self.store.add_metrics(self.run_id, items, worker=self.worker)
        self._tried = False

    def _run(self) -> None:
        while True:
            closing = self.closed
            try:
                self._flush()
            except BaseException as exc:  # noqa: BLE001 - the store stayed down, or the run is lost
                with self.synced:
                    self.error = exc
                    self.synced.notify_all()
                self.failed.set()
                return
            if closing:
                return
            self.wake.wait(FLUSH_S)
            self.wake.clear()

    def close(self) -> None:
        """Commit everything logged so far; raises the store's error if it could not."""
        self.closed = True
        self.wake.set()
        self.thread.join()
        if self.error is not None:
            raise self.error


class Heartbeat:
    """Says the worker is alive; reads back whether the run must stop, and why."""

    def __init__(
        self, store: RunStore, run: st.Run, worker: str, lease_s: float, time_limit_s: float
    ) -> None:
        self.store = store
        self.run_id = run.id
        self.worker = worker
        self.every_s = min(lease_s / 4, HEARTBEAT_MAX_S)
        started = run.started_at.timestamp() if run.started_at else time.time()
        self.deadline = started + time_limit_s
        self.time_limit_s = time_limit_s
        self.stop = threading.Event()
        self.lost = False  # another worker holds the run now: this one must write nothing more
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"heartbeat-{run.id}", daemon=True)
        self.thread.start()

    def _beat(self, write: bool) -> None:
        try:
            if write:
                run = self.store.heartbeat(self.run_id, self.worker)
            else:
                run = self.store.get(self.run_id)
        except Exception as exc:  # noqa: BLE001 - the store is unreachable: keep training
            log.warning("run %s: heartbeat failed (%s)", self.run_id, exc)
            return
        if run.worker != self.worker:
            self.lost = True
            self.stop.set()
        elif run.is_final or run.cancel_requested:
            self.stop.set()
        elif time.time() > self.deadline:
            with contextlib.suppress(Exception):
                self.store.finish(
                    self.run_id,
                    st.FAILED,
                    f"time limit exceeded: the run took longer than {self.time_limit_s:g} s "
                    "(setting runs_max_seconds)",
                    worker=self.worker,
                )
            self.stop.set()

    def _run(self) -> None:
        beaten = time.monotonic()
        while not self.done.wait(CANCEL_POLL_S):
            write = time.monotonic() - beaten >= self.every_s
            if write:
                beaten = time.monotonic()
            self._beat(write)

    def close(self) -> None:
        self.done.set()
        self.thread.join()


def _load(data: bytes) -> dict[str, Any]:
    import torch

    loaded = torch.load(io.BytesIO(data), weights_only=True)
    if not isinstance(loaded, dict):
        raise ValueError("the stored checkpoint is not a checkpoint dictionary")
    return loaded


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    with contextlib.suppress(TypeError, ValueError):
        return name in inspect.signature(fn).parameters
    return False


class Checkpointer:
    """``on_epoch``: the training state saved in the store, at most every ``CHECKPOINT_EVERY_S``
    (the first epoch always), as ``torch.load(weights_only=True)`` opens it."""

    def __init__(
        self,
        store: RunStore,
        run: st.Run,
        start_epoch: int,
        heartbeat: Heartbeat,
        writer: MetricWriter,
    ) -> None:
        self.store = store
        self.run = run
        self.start_epoch = start_epoch
        self.heartbeat = heartbeat
        self.writer = writer
        self.saved_at: float | None = None

    def __call__(self, epoch: int, snapshot: Callable[[], TrainResult]) -> None:
        now = time.monotonic()
        if self.heartbeat.lost or (
            self.saved_at is not None and now - self.saved_at < CHECKPOINT_EVERY_S
        ):
            return
        # Every metric up to this epoch is stored before the checkpoint that a continuation starts
        # from: a run continued from it then never misses a step in between.
        if not self.writer.sync(SYNC_TIMEOUT_S):
            return
        import torch

        result = snapshot()
        buffer = io.BytesIO()
        torch.save(
            {
                "model": result.model_state,
                "optimizer": result.optimizer_state,
                "epoch": int(epoch),
                "task": self.run.task,
                "config": dict(self.run.config),
                "run_start_epoch": self.start_epoch,
            },
            buffer,
        )
        try:
            self.store.put_artifact(
                self.run.id, PARTIAL_CHECKPOINT, buffer.getvalue(), worker=self.heartbeat.worker
            )
        except st.RunLost:
            self.heartbeat.lost = True
            self.heartbeat.stop.set()
            return
        except Exception as exc:  # noqa: BLE001 - an older checkpoint stays: training goes on
            log.warning("run %s: epoch %d checkpoint not stored (%s)", self.run.id, epoch, exc)
            return
        self.saved_at = now


def _starting_point(
    store: RunStore, run: st.Run, task: Task
) -> tuple[dict[str, Any] | None, int, Any, float]:
    """(the checkpoint to start from, the run's own first epoch, the config to train with, the
    share of the run already done): a run continued after its worker died starts from its last
    epoch checkpoint with the epochs it has left."""
    cfg = task.validate(run.config)
    base: dict[str, Any] | None = None
    if run.resume_from is not None:
        data = store.get_artifact(run.resume_from, CHECKPOINT_FILE)
        if data is None:
            raise ValueError(f"run {run.resume_from} has no checkpoint to resume from")
        base = _load(data)
    start_epoch = int(base["epoch"]) if base else 0
    partial = store.get_artifact(run.id, PARTIAL_CHECKPOINT)
    if partial is None:
        return base, start_epoch, cfg, 0.0
    saved = _load(partial)
    start_epoch = int(saved.get("run_start_epoch", start_epoch))
    done = int(saved["epoch"]) - start_epoch
    total = int(getattr(cfg, "epochs", 0) or 0)
    if total <= 0 or done <= 0:
        return base, start_epoch, cfg, 0.0
    update: dict[str, Any] = {"epochs": max(1, total - done)}
    if "resume_optimizer" in type(cfg).model_fields:
        update["resume_optimizer"] = True  # the same run goes on: its momentum too
    return saved, start_epoch, cfg.model_copy(update=update), min(1.0, done / total)


def _save_artifacts(
    store: RunStore, run: st.Run, task: Task, cfg: Any, result: Any, worker: str
) -> None:
    """Checkpoint, state_dict, summary and TensorBoard files, written in a scratch folder, then
    into the store (each file whole, in one transaction)."""
    with tempfile.TemporaryDirectory(prefix=f"run-{run.id}-") as scratch:
        folder = Path(scratch)
        save_checkpoint(folder, task.name, cfg.model_dump(), result)
        writer = tracking.open_writer(folder)
        for step, name, value, logged_at in store.timed_metrics(run.id):
            writer.add_scalar(name, value, step, walltime=logged_at)
        tracking.write_summary(writer, folder, result.summary, result.epoch)
        writer.close()
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                store.put_artifact(run.id, name, path.read_bytes(), worker=worker)


def train(
    store: RunStore,
    run_id: str,
    *,
    lease_s: float,
    time_limit_s: float,
    retry_s: float,
    worker: str | None = None,
) -> str | None:
    """Train the run if it is queued; returns its final status (None: nothing to do here)."""
    worker = worker or worker_name()
    run = retrying(lambda: store.claim(run_id, worker), retry_s, "claiming the run")
    if run is None:
        return None
    heartbeat = Heartbeat(store, run, worker, lease_s, time_limit_s)
    writer: MetricWriter | None = None
    try:
        task = get_task(run.task)
        resume, start_epoch, cfg, done = _starting_point(store, run, task)
        skip = store.last_steps(run.id) if run.attempts > 1 else {}
        writer = MetricWriter(store, run.id, worker, skip, retry_s)
        last = [-1.0]

        def progress(fraction: float) -> None:
            overall = done + (1.0 - done) * fraction
            if overall - last[0] >= 0.01 or fraction >= 1.0:
                last[0] = overall
                assert writer is not None
                writer.set_progress(overall)

        kwargs: dict[str, Any] = {"progress": progress, "resume": resume}
        if _accepts(task.train, "on_epoch"):
            kwargs["on_epoch"] = Checkpointer(store, run, start_epoch, heartbeat, writer)
        assert writer is not None
        should_stop = writer.failed.is_set

        def stop() -> bool:
            return heartbeat.stop.is_set() or should_stop()

        result = task.train(cfg, writer.add, stop, **kwargs)
        writer.close()
        if heartbeat.lost:
            log.warning("run %s: another worker holds it now; this one stops", run.id)
            return None  # another worker continues it: its files are that worker's to write
        final_cfg = task.validate(run.config)
        retrying(
            lambda: _save_artifacts(store, run, task, final_cfg, result, worker),
            retry_s,
            "storing files",
        )
        retrying(
            lambda: store.finish(run.id, st.COMPLETED, worker=worker), retry_s, "finishing the run"
        )
    except st.RunLost as lost:
        heartbeat.lost = True  # another worker continues it
        log.warning("%s; this worker stops and writes nothing more for it", lost)
    except BaseException as exc:  # noqa: BLE001 - every failure ends the run, naming why
        if writer is not None:
            with contextlib.suppress(BaseException):
                writer.close()  # every metric logged before the error is kept
        if not heartbeat.lost:
            text = describe_error(exc, "the run store")
            with contextlib.suppress(Exception):
                retrying(
                    lambda: store.finish(run.id, st.FAILED, text, worker=worker), retry_s, "failing"
                )
        if not isinstance(exc, Exception):
            raise
    finally:
        heartbeat.close()
        if not heartbeat.lost:
            with contextlib.suppress(Exception):
                store.delete_artifacts(run.id, "partial/")
            with contextlib.suppress(Exception):
                retrying(lambda: store.release(run.id, worker), retry_s, "letting go of the run")
    if heartbeat.lost:
        return None
    try:
        return store.get(run.id).status
    except Exception:  # noqa: BLE001 - the store went away again; the run's state is stored
        return None
