"""Runners: where runs execute. ``Runner`` is the interface routes use; ``LocalRunner`` runs each
training run in its own worker process on this machine. This module is the supervisor side
(the queue, starting and stopping processes, time limits, the store writes); what runs inside
the worker process is ``app.jobs.run_worker``.

Metrics path (design choice): the worker sends ``("metrics", [(step, name, value, wall time),
...])`` batches over a one-way pipe (at most every 20 ms, see ``run_worker._Outbox``), and one
supervisor thread in the parent writes them to the store (a commit per batch that arrived
together) and to the run's TensorBoard scalars. Why the parent and not the worker:

* one writer: N workers never contend for SQLite's write lock with each other or the web process;
* workers need no database URL, engine or credentials, and a worker killed mid-write (time limit,
  crash, ``os._exit``) can never leave a half-written transaction;
* the parent sees every metric in order and drains the pipe before deciding a final status, so
  the store has every metric a run produced, and a crash is told apart from a clean end;
* the training loop pays nothing for TensorBoard: SummaryWriter's writer thread, in the worker,
  took the GIL from the loop for every scalar and slowed a small CNN by about 8 % (``make bench``
  and a worker-only timing measured it); in the parent it runs beside the web process instead.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import multiprocessing as mp
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from app.jobs import store as st
from app.jobs import tracking
from app.jobs.artifacts import Artifacts, DirArtifacts
from app.jobs.run_worker import describe_error, worker_main
from app.jobs.store import QueueFull, RunStore
from app.jobs.tasks import (
    CHECKPOINT_FILE,
    CheckResume,
    ConfigError,
    Task,
    get_task,
    load_checkpoint,
)

STOP_GRACE_S = 5.0
LOCK_FILE = "runner.lock"  # in the data dir: one runner (one server) per data dir


class DataDirInUse(RuntimeError):
    """Another server's runner holds the data dir; starting a second one would interrupt its
    runs and mix two writers' artifacts."""

    def __init__(self, data_dir: Path, pid: str) -> None:
        who = f"pid {pid}" if pid else "a process whose pid is not recorded"
        super().__init__(
            f"The data dir {data_dir} is already used by another PyTorch Explorer server "
            f"({who}, holding {Path(data_dir) / LOCK_FILE}): stop that server first, or start "
            "this one with another EXPLORER_DATA_DIR."
        )
        self.data_dir = Path(data_dir)
        self.pid = pid


def _lock_data_dir(data_dir: Path) -> Any:
    """Take the data dir's exclusive lock (``flock``; the kernel drops it when the process dies,
    a ``kill -9`` included) and write this process's pid into it; raises ``DataDirInUse``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    handle = path.open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip()[:32]
        handle.close()
        raise DataDirInUse(data_dir, pid) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def exit_reason(exitcode: int | None) -> str:
    """Why a worker process ended, in words: ``-9`` is "killed by signal 9 (SIGKILL)"."""
    if exitcode is None:
        return "the worker process ended without an exit code"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"the worker process died (killed by signal {-exitcode}, {name})"
    return f"worker process exited with code {exitcode}"


def store_error(exc: BaseException) -> str:
    """Why the server could not record a run's news (its database write failed), in words."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {first}".rstrip(": ")
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if full or "database or disk is full" in first:
        return (
            f"no disk space left for the run store: the database refused a write ({text}); the "
            "metrics recorded before this are kept. Free some space and start the run again"
        )
    return f"the server could not record this run: {text}"


class Runner(ABC):
    """What the web layer calls; a distributed backend implements the same four methods."""

    @abstractmethod
    def submit(
        self,
        task: str,
        config: dict[str, Any] | None = None,
        resume_from: str | None = None,
        owner: str | None = None,
    ) -> str:
        """Validate, store as ``queued`` (of ``owner``, a learner id) and enqueue; returns the run
        id. Raises ``ConfigError`` (bad config / task / resume_from) or ``QueueFull``."""

    @abstractmethod
    def cancel(self, run_id: str) -> str:
        """Cancel a queued or running run; returns its status afterwards."""

    @abstractmethod
    def position(self, run_id: str) -> int | None:
        """1-based place in line while queued, 0 while its process runs (a cancelled run's too,
        until it has stopped and its last metrics are stored), None otherwise."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop everything; unfinished runs become ``interrupted``."""


def _check_resume(check: CheckResume, config: BaseModel, resume_from: str, ckpt: Path) -> None:
    """The task's own check that a run can continue this checkpoint: a ``ConfigError`` (422)
    naming the run when it cannot, before anything is queued."""
    try:
        checkpoint = load_checkpoint(ckpt)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged file: say so, never a 500
        raise ConfigError(
            f"resume_from: run {resume_from!r}'s checkpoint cannot be read "
            f"({type(error).__name__}: {str(error).strip()[:200]})",
            "resume_from",
        ) from None
    try:
        check(config, checkpoint)
    except ConfigError as error:
        raise ConfigError(f"resume_from {resume_from!r}: {error}", error.field) from None


@dataclass(frozen=True)
class Submission:
    """A run request checked before anything is stored: the task, its validated config and, for
    a resumed run, the checkpoint it continues (a local file)."""

    task: Task
    config: dict[str, Any]
    resume_from: str | None = None
    resume_path: Path | None = None


def prepare(
    store: RunStore,
    artifacts: Artifacts,
    task: str,
    config: dict[str, Any] | None,
    resume_from: str | None,
) -> Submission:
    """Validate a run request as every runner does: the task and its config, and for a resumed
    run the run it continues, its checkpoint and the task's own resume check. A resumed run keeps
    the original's config unless the request changes a field. Raises ``ConfigError`` (422)."""
    spec = get_task(task)
    if resume_from is None:
        return Submission(spec, spec.validate(config).model_dump())
    try:
        previous = store.get(resume_from)
    except st.RunNotFound:
        raise ConfigError(f"resume_from: no run {resume_from!r}", "resume_from") from None
    ckpt = artifacts.path(resume_from, CHECKPOINT_FILE) if previous.task == task else None
    if ckpt is None:
        raise ConfigError(
            f"resume_from: run {resume_from!r} has no {task} checkpoint", "resume_from"
        )
    kept = {k: v for k, v in previous.config.items() if k in spec.config_model.model_fields}
    validated = spec.validate({**kept, **(config or {})})
    if spec.check_resume is not None:
        _check_resume(spec.check_resume, validated, resume_from, ckpt)
    return Submission(spec, validated.model_dump(), resume_from, ckpt)


def _mp_context() -> Any:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # The fork server imports torch once; each run then starts in milliseconds.
        ctx.set_forkserver_preload(["app.jobs.preload"])
        return ctx
    return mp.get_context("spawn")


@dataclass
class _Pending:
    run_id: str
    task: Task
    config: dict[str, Any]
    resume_path: str | None


@dataclass
class _Active:
    run_id: str
    process: Any
    conn: Connection
    stop_event: Any
    deadline: float
    stop_requested_at: float | None = None
    final: tuple[str, str | None] | None = None  # decided by cancel / time limit
    done: bool = False
    error: str | None = None
    eof: bool = False
    buffered: list[tuple[int, str, float, float]] = field(default_factory=list)
    scalars: Any = None  # the run's SummaryWriter for its scalars, written by the supervisor


class LocalRunner(Runner):
    """Worker processes on this machine, a bounded queue and a concurrency limit.

    ``recover=True`` (the default) first marks runs a previous server left queued/running as
    ``interrupted``.
    """

    def __init__(
        self,
        store: RunStore,
        data_dir: Path,
        *,
        max_concurrent: int | None = None,
        max_queue: int = 16,
        max_per_learner: int | None = None,
        time_limit_s: float = 600.0,
        recover: bool = True,
        poll_s: float = 0.05,
        threads_per_run: int = 1,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.artifacts = DirArtifacts(self.data_dir)
        self.max_concurrent = max(1, max_concurrent or os.cpu_count() or 1)
        self.max_queue = max(0, max_queue)
        # Runs one learner may have queued or running at once (None: no bound of its own).
        self.max_per_learner = max_per_learner
        self.time_limit_s = time_limit_s
        self._poll_s = poll_s
        self.threads_per_run = max(1, threads_per_run)
        self._on_change = on_change
        self._ctx = _mp_context()
        self._lock = threading.Lock()
        self._queue: deque[_Pending] = deque()
        self._active: dict[str, _Active] = {}
        self._starting: set[str] = set()  # taken off the queue, process not started yet
        # Final statuses the store refused to write (its disk was full): retried every round.
        self._unwritten: dict[str, tuple[str, str | None]] = {}
        self._closed = False
        self._wake = threading.Event()  # set by submit/cancel/shutdown: the supervisor acts now
        # One runner per data dir, taken before anything is touched: a second server on the same
        # data dir must not mark this one's running runs interrupted (recover) or share its runs.
        self._dir_lock = _lock_data_dir(self.data_dir)
        if recover:
            try:
                store.recover()
            except BaseException:
                self._release_dir()
                raise
        self._thread = threading.Thread(target=self._supervise, name="run-supervisor", daemon=True)
        self._thread.start()

    def artifacts_dir(self, run_id: str) -> Path:
        return st.run_dir(self.data_dir, run_id)

    # -- public API -----------------------------------------------------------------------------

    def submit(
        self,
        task: str,
        config: dict[str, Any] | None = None,
        resume_from: str | None = None,
        owner: str | None = None,
    ) -> str:
        sub = prepare(self.store, self.artifacts, task, config, resume_from)
        resume_path = str(sub.resume_path) if sub.resume_path is not None else None
        with self._lock:
            if self._closed:
                raise RuntimeError("runner is shut down")
            free = self.max_concurrent - len(self._active) - len(self._starting)
            waiting = max(0, len(self._queue) - free)
            if waiting >= self.max_queue and len(self._queue) >= free:
                raise QueueFull(self.max_queue)
            run = self.store.create(
                task, sub.config, resume_from, owner=owner, max_per_owner=self.max_per_learner
            )
            self._queue.append(_Pending(run.id, sub.task, sub.config, resume_path))
        self._wake.set()
        return run.id

    def cancel(self, run_id: str) -> str:
        with self._lock:
            for item in self._queue:
                if item.run_id == run_id:
                    self._queue.remove(item)
                    self._finish(run_id, st.CANCELLED)
                    return st.CANCELLED
            active = self._active.get(run_id)
            if active is not None:
                self._request_stop(active, st.CANCELLED, None)
        run = self.store.get(run_id)
        if not run.is_final:
            self._finish(run_id, st.CANCELLED)
        return self.store.get(run_id).status

    def position(self, run_id: str) -> int | None:
        with self._lock:
            if run_id in self._active or run_id in self._starting:
                return 0
            for index, item in enumerate(self._queue):
                if item.run_id == run_id:
                    return index + 1
        return None

    def active_count(self) -> int:
        with self._lock:
            return len(self._active)

    def shutdown(self, timeout_s: float = STOP_GRACE_S) -> None:
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            for active in self._active.values():
                self._request_stop(active, st.INTERRUPTED, "the server stopped while it ran")
        self._wake.set()
        for item in queued:
            self._finish(item.run_id, st.INTERRUPTED, "the server stopped while it was queued")
        self._thread.join(timeout=timeout_s + 5)
        self._release_dir()

    def _release_dir(self) -> None:
        handle, self._dir_lock = self._dir_lock, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()  # closing the file drops the flock

    # -- supervisor -----------------------------------------------------------------------------

    def _changed(self, run_id: str) -> None:
        """Tell the listener (the web layer's live streams) that a run has news in the store."""
        if self._on_change is not None:
            with contextlib.suppress(Exception):
                self._on_change(run_id)

    def _finish(self, run_id: str, status: str, error: str | None = None) -> bool:
        try:
            changed = self.store.finish(run_id, status, error)
        except st.RunNotFound:
            raise
        except Exception:  # noqa: BLE001 - the store cannot write now (full disk, locked)
            # The final word is kept here and written once the store takes writes again, so the
            # run does not stay "running" while this server lives.
            self._unwritten.setdefault(run_id, (status, error))
            return False
        self._changed(run_id)
        return changed

    def _retry_unwritten(self) -> None:
        for run_id, (status, error) in list(self._unwritten.items()):
            try:
                self.store.finish(run_id, status, error)
            except Exception:  # noqa: BLE001 - still failing: try again on the next round
                return
            self._unwritten.pop(run_id, None)
            self._changed(run_id)

    def _request_stop(self, active: _Active, status: str, error: str | None) -> None:
        """Caller holds the lock. The first final word wins; the store is updated at once."""
        if active.final is None:
            active.final = (status, error)
            self._finish(active.run_id, status, error)
        active.stop_event.set()
        if active.stop_requested_at is None:
            active.stop_requested_at = time.monotonic()

    def _start_queued(self) -> None:
        """Start waiting runs while there is room. The lock is held only to take a run off the
        queue: starting a process can wait on the fork server, and submit(), cancel() and
        position() must answer meanwhile."""
        while True:
            with self._lock:
                room = len(self._active) + len(self._starting) < self.max_concurrent
                if not self._queue or not room or self._closed:
                    return
                item = self._queue.popleft()
                self._starting.add(item.run_id)
            active: _Active | None = None
            try:
                active = self._start(item)
            finally:
                with self._lock:
                    self._starting.discard(item.run_id)
                    if active is not None:
                        self._active[item.run_id] = active
            if active is None:
                continue
            with self._lock:
                if self._closed:  # the server began to stop while this process started
                    self._request_stop(active, st.INTERRUPTED, "the server stopped while it ran")
                elif self.store.get(item.run_id).is_final:  # cancelled while it started
                    self._request_stop(active, st.CANCELLED, None)

    def _start(self, item: _Pending) -> _Active | None:
        if not self.store.mark_running(item.run_id):
            return None  # cancelled while queued
        self._changed(item.run_id)
        artifacts = self.artifacts_dir(item.run_id)
        try:
            artifacts.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._finish(item.run_id, st.FAILED, describe_error(exc, str(artifacts)))
            return None
        recv, send = self._ctx.Pipe(duplex=False)
        stop_event = self._ctx.Event()
        process = self._ctx.Process(
            target=worker_main,
            args=(
                item.task,
                item.config,
                str(artifacts),
                item.resume_path,
                send,
                stop_event,
                self.threads_per_run,
            ),
            name=f"run-{item.run_id}",
            daemon=True,
        )
        try:
            process.start()
        except Exception as exc:  # noqa: BLE001
            self._finish(item.run_id, st.FAILED, f"worker did not start: {exc}")
            recv.close()
            send.close()
            return None
        send.close()
        active = _Active(
            item.run_id, process, recv, stop_event, time.monotonic() + self.time_limit_s
        )
        try:
            active.scalars = tracking.open_writer(artifacts)
        except Exception:  # noqa: BLE001 - no TensorBoard files (full disk?); the store has all
            active.scalars = None
        return active

    def _drain(self, active: _Active) -> None:
        progress: float | None = None
        try:
            while not active.eof and active.conn.poll():
                msg = active.conn.recv()
                kind = msg[0]
                if kind == "metrics":
                    active.buffered.extend(msg[1])
                elif kind == "progress":
                    progress = msg[1]
                elif kind == "done":
                    active.done = True
                elif kind == "error":
                    active.error = msg[1]
        except (EOFError, OSError):
            active.eof = True
        news = bool(active.buffered) or progress is not None
        if active.buffered:
            self.store.add_metrics(active.run_id, active.buffered)
            if active.scalars is not None:
                try:
                    for step, name, value, wall_time in active.buffered:
                        active.scalars.add_scalar(name, value, step, walltime=wall_time)
                except Exception:  # noqa: BLE001 - e.g. a full disk: the store has the metrics
                    self._drop_scalars(active)
            active.buffered = []
        if progress is not None:
            self.store.update_progress(active.run_id, progress)
        if news:
            self._changed(active.run_id)

    @staticmethod
    def _drop_scalars(active: _Active) -> None:
        """Stop writing the run's TensorBoard scalars (their writer failed, e.g. no disk space
        left); the metrics stay in the store, which is what the app shows."""
        writer, active.scalars = active.scalars, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()

    def _fail_broken(self, active: _Active, exc: BaseException) -> None:
        """The supervisor could not look after a run (its store write failed, say): the run
        fails naming why, its process is stopped, and the other runs go on."""
        with self._lock, contextlib.suppress(Exception):
            self._request_stop(active, st.FAILED, store_error(exc))
        with contextlib.suppress(Exception):
            active.process.kill()

    def _finalize(self, active: _Active) -> None:
        active.process.join(timeout=1)
        self._drain(active)
        active.conn.close()
        if active.scalars is not None:
            with contextlib.suppress(Exception):  # the store has the metrics either way
                active.scalars.close()  # flushed before the run is seen to end
        # Let go of the run first, then say so: a stream that hears the news and finds the run
        # no longer held knows every metric it will ever have is in the store.
        with self._lock:
            self._active.pop(active.run_id, None)
        if active.final is not None:
            self._changed(active.run_id)  # cancel / time limit / shutdown already recorded
        elif active.done and active.process.exitcode == 0:
            self._finish(active.run_id, st.COMPLETED)
        else:
            error = active.error or exit_reason(active.process.exitcode)
            self._finish(active.run_id, st.FAILED, error)

    def _supervise(self) -> None:
        if self._ctx.get_start_method() == "forkserver":
            # Start the fork server (and its one-time torch import) here, outside the lock, so
            # submit()/cancel()/position() never wait on it.
            from multiprocessing import forkserver

            # On failure Process.start() retries and the run fails with the reason.
            with contextlib.suppress(Exception):
                forkserver.ensure_running()
        with contextlib.suppress(Exception):
            import torch.utils.tensorboard  # noqa: F401  (here, not in the first run's path)
        while True:
            if self._unwritten:
                self._retry_unwritten()
            try:
                self._start_queued()
            except Exception:  # noqa: BLE001 - the supervisor must outlive any one run's start
                time.sleep(self._poll_s)
            with self._lock:
                actives = list(self._active.values())
                closed = self._closed
            if closed and not actives:
                self._retry_unwritten()
                return
            handles: list[Any] = [a.conn for a in actives if not a.eof]
            handles += [a.process.sentinel for a in actives]
            if handles:
                wait(handles, timeout=self._poll_s)
            else:
                self._wake.wait(self._poll_s)
            self._wake.clear()
            now = time.monotonic()
            for active in actives:
                try:
                    self._drain(active)
                except Exception as exc:  # noqa: BLE001 - one run's trouble never stops the rest
                    self._fail_broken(active, exc)
                if not active.process.is_alive():
                    try:
                        self._finalize(active)
                    except Exception as exc:  # noqa: BLE001
                        self._fail_broken(active, exc)
                        with self._lock:
                            self._active.pop(active.run_id, None)
                        self._drop_scalars(active)
                        with contextlib.suppress(Exception):
                            active.conn.close()
                    continue
                if active.final is None and now > active.deadline:
                    with self._lock:
                        self._request_stop(
                            active,
                            st.FAILED,
                            f"time limit exceeded: the run took longer than "
                            f"{self.time_limit_s:g} s (setting runs_max_seconds)",
                        )
                if (
                    active.stop_requested_at is not None
                    and now - active.stop_requested_at > STOP_GRACE_S
                ):
                    active.process.terminate()
                    if now - active.stop_requested_at > STOP_GRACE_S + 2:
                        active.process.kill()
