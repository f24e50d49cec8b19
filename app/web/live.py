"""Runs in the web process: the store, the runner, and the bridge that wakes live streams.

The runner's supervisor thread writes metrics to the store and then calls ``RunEvents.publish``;
each server-sent-events stream waits on an ``asyncio.Event`` that the publish sets on the event
loop's own thread. Streams also re-read the store every second, so a run written by another
process (a second server on the same database) still reaches them, only later.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from app.jobs import LocalRunner, Runner, RunStore
from app.jobs.store import run_dir


class RunEvents:
    """Thread-safe "this run has news" notifications for asyncio waiters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def publish(self, run_id: str) -> None:
        """Wake every stream of ``run_id``; callable from any thread."""
        with self._lock:
            waiters = list(self._waiters.get(run_id, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(event.set)

    @contextlib.contextmanager
    def subscribe(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``run_id`` has news; must be entered on the event loop."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(run_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(run_id)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._waiters[run_id]


@dataclass
class Runs:
    """What the routes need: where runs are stored, who runs them, and who hears of changes."""

    store: RunStore
    runner: Runner
    events: RunEvents
    data_dir: Path

    def artifacts_dir(self, run_id: str) -> Path:
        return run_dir(self.data_dir, run_id)

    def close(self) -> None:
        self.runner.shutdown()
        self.store.close()


def start_runs(settings: Settings) -> Runs:
    """Open the store, mark what a previous server left running as interrupted, start the runner."""
    data_dir = Path(settings.data_dir)
    store = RunStore(settings.database_url, data_dir=data_dir)
    events = RunEvents()
    runner = LocalRunner(
        store,
        data_dir,
        max_concurrent=settings.runs_max_concurrent or None,
        max_queue=settings.runs_max_queue,
        time_limit_s=settings.runs_max_seconds,
        threads_per_run=settings.runs_torch_threads,
        on_change=events.publish,
        recover=True,
    )
    return Runs(store, runner, events, data_dir)
