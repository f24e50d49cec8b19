"""Runners: where runs execute. ``Runner`` is the interface routes use; ``LocalRunner`` runs each
training run in its own worker process on this machine.

Metrics path (design choice): the worker sends ``("metrics", [(step, name, value, wall time),
...])`` batches over a one-way pipe (at most every 20 ms, see ``_Outbox``), and one supervisor
thread in the parent writes them to the store (a commit per batch that arrived together) and to
the run's TensorBoard scalars. Why the parent and not the worker:

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
import select
import shutil
import signal
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from app.jobs import store as st
from app.jobs import tracking
from app.jobs.store import RunStore
from app.jobs.tasks import (
    CHECKPOINT_FILE,
    STATE_DICT_FILE,
    ConfigError,
    Task,
    get_task,
    load_checkpoint,
    save_checkpoint,
)

STOP_GRACE_S = 5.0
LOCK_FILE = "runner.lock"  # in the data dir: one runner (one server) per data dir
# The worker writes its checkpoint files here first and moves each into place only once it is
# whole, so a run that fails while saving (a full disk, a kill) never leaves a torn checkpoint.
STAGING_DIR = ".saving"


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


def describe_error(exc: BaseException, artifacts_dir: str) -> str:
    """The run's error message; a full disk says so in words, naming where it wrote."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no disk space left for the run's artifacts in {artifacts_dir} ({text}): free some "
            "space and start the run again"
        )
    return text


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


def _die_with_parent(conn: Connection) -> None:
    """Make sure a worker never outlives the server that started it.

    Two guards: ``PR_SET_PDEATHSIG`` (Linux) kills this process when its parent (the fork server,
    which exits when the server does) goes; and a thread that waits on the metrics pipe and exits
    the process as soon as the server's end of it is gone (a killed server closes it), even while
    the training loop is busy and sends nothing.
    """
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if not hasattr(select, "poll"):
        return
    fd = conn.fileno()

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLERR | select.POLLHUP)
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            except OSError:
                return
            if any(
                mask & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, mask in events
            ):
                if any(mask & select.POLLNVAL for _, mask in events):
                    return  # our own end was closed: the worker is finishing
                os._exit(70)  # the server is gone: nobody will read what this run makes

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _probe_writes(staging: Path) -> None:
    """Write a block to each file torch was writing; raises the ``OSError`` (``ENOSPC``, ...)
    that torch's message left out, or returns when plain writes work there."""
    for name in (CHECKPOINT_FILE, STATE_DICT_FILE):
        with (staging / name).open("wb") as probe:
            probe.write(bytes(4096))
            probe.flush()
            os.fsync(probe.fileno())


def _save_artifacts(artifacts_dir: Path, task: Task, cfg: Any, result: Any) -> None:
    """The checkpoint and state_dict, each moved into place only once fully written."""
    staging = artifacts_dir / STAGING_DIR
    try:
        try:
            save_checkpoint(staging, task.name, cfg.model_dump(), result)
        except RuntimeError as exc:
            # torch's C++ writer reports a failed write as "basic_ios::clear: iostream error",
            # without the errno: the same files written with plain I/O say what it was.
            _probe_writes(staging)
            raise exc from None
        for path in sorted(staging.iterdir()):
            if path.is_file() and not path.is_symlink():
                os.replace(path, artifacts_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class QueueFull(RuntimeError):
    """The queue already holds ``limit`` waiting runs."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the run queue is full ({limit} runs waiting); try again later")
        self.limit = limit


class Runner(ABC):
    """What the web layer calls; a distributed backend implements the same four methods."""

    @abstractmethod
    def submit(
        self, task: str, config: dict[str, Any] | None = None, resume_from: str | None = None
    ) -> str:
        """Validate, store as ``queued`` and enqueue; returns the run id.
        Raises ``ConfigError`` (bad config / task / resume_from) or ``QueueFull``."""

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


def _mp_context() -> Any:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        # The fork server imports torch once; each run then starts in milliseconds.
        ctx.set_forkserver_preload(["app.jobs.preload"])
        return ctx
    return mp.get_context("spawn")


class _Outbox:
    """Metrics on their way to the parent, sent in small batches.

    The first metric after a quiet spell goes at once; a burst (a step logs several, a fast
    loop logs hundreds a second) is sent at most every ``FLUSH_S``, so the parent commits and the
    live streams wake a few dozen times a second instead of once per number. A worker that dies
    outright loses at most the last ``FLUSH_S`` of metrics.
    """

    FLUSH_S = 0.02

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.items: list[tuple[int, str, float, float]] = []  # step, name, value, wall time
        self.sent_at = 0.0

    def add(self, step: int, name: str, value: float) -> None:
        self.items.append((step, name, value, time.time()))
        if time.monotonic() - self.sent_at >= self.FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self.items:
            self.conn.send(("metrics", self.items))
            self.items = []
        self.sent_at = time.monotonic()


RUN_NICENESS = 10  # added to a run worker's nice value (lower CPU priority)


def _worker_main(
    task: Task,
    config: dict[str, Any],
    artifacts_dir: str,
    resume_path: str | None,
    conn: Connection,
    stop_event: Any,
    threads: int = 1,
) -> None:
    """Entry point of a worker process; torch uses ``threads`` threads in it."""
    import torch

    _die_with_parent(conn)
    # Training is batch work: below the web process and the sandbox, so a class's page loads
    # and slider moves are answered first while runs use whatever CPU is left.
    with contextlib.suppress(OSError):
        os.nice(RUN_NICENESS)
    torch.set_num_threads(threads)
    outbox = _Outbox(conn)
    try:
        cfg = task.validate(config)
        resume = load_checkpoint(Path(resume_path)) if resume_path else None
        last_progress = [-1.0]

        def emit(step: int, name: str, value: float) -> None:
            outbox.add(int(step), str(name), float(value))

        def progress(fraction: float) -> None:
            if fraction - last_progress[0] >= 0.01 or fraction >= 1.0:
                last_progress[0] = fraction
                outbox.flush()
                conn.send(("progress", float(fraction)))

        result = task.train(cfg, emit, stop_event.is_set, progress=progress, resume=resume)
        outbox.flush()
        _save_artifacts(Path(artifacts_dir), task, cfg, result)
        writer = tracking.open_writer(Path(artifacts_dir))
        tracking.write_summary(writer, Path(artifacts_dir), result.summary, result.epoch)
        writer.close()
        conn.send(("done", result.epoch))
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        text = describe_error(exc, artifacts_dir)
        with contextlib.suppress(OSError, ValueError):  # a broken pipe: the server is gone
            outbox.flush()  # every metric logged before the error is kept
            conn.send(("error", text, traceback.format_exc()))
        with contextlib.suppress(OSError):
            conn.close()
        os._exit(1)
    conn.close()


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
        time_limit_s: float = 600.0,
        recover: bool = True,
        poll_s: float = 0.05,
        threads_per_run: int = 1,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.max_concurrent = max(1, max_concurrent or os.cpu_count() or 1)
        self.max_queue = max(0, max_queue)
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
        self, task: str, config: dict[str, Any] | None = None, resume_from: str | None = None
    ) -> str:
        spec = get_task(task)
        cfg = spec.validate(config).model_dump()
        resume_path: str | None = None
        if resume_from is not None:
            # A resumed run keeps the original's config unless the request changes a field.
            try:
                previous = self.store.get(resume_from)
            except st.RunNotFound:
                raise ConfigError(f"resume_from: no run {resume_from!r}", "resume_from") from None
            ckpt = self.artifacts_dir(resume_from) / "checkpoint.pth"
            if previous.task != task or not ckpt.exists():
                raise ConfigError(
                    f"resume_from: run {resume_from!r} has no {task} checkpoint", "resume_from"
                )
            resume_path = str(ckpt)
            kept = {k: v for k, v in previous.config.items() if k in spec.config_model.model_fields}
            cfg = spec.validate({**kept, **(config or {})}).model_dump()
        with self._lock:
            if self._closed:
                raise RuntimeError("runner is shut down")
            free = self.max_concurrent - len(self._active) - len(self._starting)
            waiting = max(0, len(self._queue) - free)
            if waiting >= self.max_queue and len(self._queue) >= free:
                raise QueueFull(self.max_queue)
            run = self.store.create(task, cfg, resume_from)
            self._queue.append(_Pending(run.id, spec, cfg, resume_path))
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
            target=_worker_main,
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
            self.store.add_metrics(active.run_id, [m[:3] for m in active.buffered])
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
