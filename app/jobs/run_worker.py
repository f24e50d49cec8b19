"""The worker side of a run: what runs inside the run's own process, started by
``app.jobs.runner.LocalRunner``.

``worker_main`` validates the config, loads the checkpoint it resumes from, calls the task's
training loop, sends the metrics and progress to the supervisor over a one-way pipe (batched by
``_Outbox``), and writes the run's artefacts (checkpoint, state_dict, TensorBoard summary) with
each file moved into place only once whole. It never touches the run store: the supervisor in
the server process is the one writer (see ``app.jobs.runner``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import shutil
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from app.jobs import tracking
from app.jobs.tasks import (
    CHECKPOINT_FILE,
    STATE_DICT_FILE,
    Task,
    load_checkpoint,
    save_checkpoint,
)

# The worker writes its checkpoint files here first and moves each into place only once it is
# whole, so a run that fails while saving (a full disk, a kill) never leaves a torn checkpoint.
STAGING_DIR = ".saving"
RUN_NICENESS = 10  # added to a run worker's nice value (lower CPU priority)


def describe_error(exc: BaseException, artifacts_dir: str) -> str:
    """The run's error message; a full disk says so in words, naming where it wrote."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no disk space left for the run's artifacts in {artifacts_dir} ({text}): free some "
            "space and start the run again"
        )
    return text


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


def worker_main(
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
