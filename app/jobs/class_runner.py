"""The class deployment's runner: runs train on Celery workers (``app.jobs.celery``) fed through
Redis, and the run store (PostgreSQL) is the one truth every web process and worker shares.

``CeleryRunner`` is what a web process uses behind the ``Runner`` interface: ``submit`` stores the
run ``queued`` (the bound on waiting runs is counted in the store, so it holds across every web
process) and sends its message; ``cancel`` works from any web process (the store's flag, which
the training loop's heartbeat reads, and a revoke of the queued message); ``position`` is read
from the store. Stopping a web process stops nothing: the workers own the runs.

``Sweeper`` runs in every web process and worker, and each pass is safe to run many times at
once: a run whose worker stopped heartbeating goes back in line to continue from its last epoch
checkpoint (or ends ``interrupted``), and a queued run whose message is not in the broker's list
(Redis keeps nothing across a restart; a publish can fail) is sent again once it has been missing
for ``LOST_MESSAGE_GRACE_S``. A second message for a run does nothing: only one
worker can claim a queued run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

from celery import Celery

from app.config import Settings
from app.jobs.artifacts import Artifacts
from app.jobs.runner import Runner, prepare
from app.jobs.store import QUEUED, RUNNING, RunStore

log = logging.getLogger("app.jobs.class_runner")

TRAIN_TASK = "explorer.train_run"
# A queued run missing from the broker's list is sent again once it has been missing this long
# (a message being handed to a worker is out of the list for a moment).
LOST_MESSAGE_GRACE_S = 2.0
# The sweeper reads at most this many messages of the broker's list to see which runs it holds.
MAX_LISTED_MESSAGES = 10_000


def make_celery(settings: Settings) -> Celery:
    """The Celery app web processes send with and workers run (``app.jobs.celery``)."""
    celery = Celery("explorer", broker=settings.broker_url, set_as_current=False)
    celery.conf.update(
        task_default_queue=settings.runs_queue_name,
        task_ignore_result=True,
        # The message is acknowledged when the run is over, and a worker takes one run at a
        # time: nothing waits, reserved, inside a worker that may die.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # A run goes on while the broker is away (Redis restarting): its progress is in the store.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # Past this a message a dead worker held is handed out again; the sweeper has long since
        # put its run back in line, so the late copy finds nothing to claim.
        broker_transport_options={
            "visibility_timeout": int(settings.runs_max_seconds * 2 + 60),
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
        },
        # A submit never hangs on a broker that is down: the run is in the store, and the
        # sweeper sends it once the broker answers again.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
    )
    return celery


class Sweeper:
    """The store's and the broker's housekeeping, every ``every_s``, in a thread of its own."""

    def __init__(self, store: RunStore, celery: Celery, settings: Settings) -> None:
        self.store = store
        self.celery = celery
        self.queue = settings.runs_queue_name
        self.lease_s = settings.runs_lease_seconds
        self.max_attempts = settings.runs_max_attempts
        self.time_limit_s = settings.runs_max_seconds
        self.every_s = max(0.2, self.lease_s / 4)
        self.broker_url = settings.broker_url
        self._missing: dict[str, float] = {}  # run id -> when first seen missing from the broker
        self._redis: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, run_id: str) -> bool:
        """Put the run's message on the broker; False (and a log line) when it is unreachable."""
        try:
            self.celery.send_task(TRAIN_TASK, args=[run_id], task_id=run_id, queue=self.queue)
        except Exception as exc:  # noqa: BLE001 - the run waits in the store; sent again later
            log.warning("run %s: the broker did not take its message (%s)", run_id, exc)
            return False
        return True

    def _broker_run_ids(self) -> set[str]:
        """The runs whose messages wait in the broker's list now (Celery names each message by
        its task id, which is the run id)."""
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(
                self.broker_url, socket_timeout=2, socket_connect_timeout=2
            )
        ids = set()
        for raw in self._redis.lrange(self.queue, 0, MAX_LISTED_MESSAGES - 1):
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                ids.add(str(json.loads(raw)["headers"]["id"]))
        return ids

    def sweep(self) -> None:
        """One pass: stale runs back in line, lost messages sent again."""
        requeued, ended = self.store.sweep(self.lease_s, self.max_attempts, self.time_limit_s)
        for run_id in requeued:
            log.warning("run %s: its worker went silent; it continues on another", run_id)
            self.send(run_id)
        for run_id in ended:
            log.warning("run %s: its worker went silent; it ended with its metrics", run_id)
        queued = self.store.queued_ids()
        missing = set(queued) - self._broker_run_ids() if queued else set()
        now = time.monotonic()
        for run_id in queued:
            if run_id not in missing:
                continue
            first = self._missing.setdefault(run_id, now)
            if now - first >= LOST_MESSAGE_GRACE_S and self.send(run_id):
                log.warning("run %s: the broker had lost its message; sent again", run_id)
                self._missing.pop(run_id, None)
        for run_id in set(self._missing) - missing:
            self._missing.pop(run_id, None)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - the store or broker is down: next pass
                log.warning("sweep failed (%s: %s)", type(exc).__name__, exc)
                self._redis = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="run-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._redis is not None:
            with contextlib.suppress(Exception):
                self._redis.close()


class CeleryRunner(Runner):
    """Runs on Celery workers; every answer comes from the store, so any web process serves any
    run."""

    def __init__(
        self,
        store: RunStore,
        artifacts: Artifacts,
        settings: Settings,
        celery: Celery | None = None,
        *,
        sweep: bool = True,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.max_queue = settings.runs_max_queue
        self.max_per_learner = settings.runs_max_per_learner
        self.celery = celery or make_celery(settings)
        self.sweeper = Sweeper(store, self.celery, settings)
        if sweep:
            self.sweeper.start()

    def submit(
        self,
        task: str,
        config: dict[str, Any] | None = None,
        resume_from: str | None = None,
        owner: str | None = None,
    ) -> str:
        sub = prepare(self.store, self.artifacts, task, config, resume_from)
        run = self.store.create(
            task,
            sub.config,
            resume_from,
            max_queued=self.max_queue,
            owner=owner,
            max_per_owner=self.max_per_learner,
        )
        self.sweeper.send(run.id)
        return run.id

    def cancel(self, run_id: str) -> str:
        run = self.store.request_cancel(run_id)
        with contextlib.suppress(Exception):  # the store's flag is what counts
            self.celery.control.revoke(run_id)
        return run.status

    def position(self, run_id: str) -> int | None:
        run = self.store.get(run_id)
        if run.status == QUEUED:
            return self.store.queue_position(run_id)
        if run.status == RUNNING or run.worker is not None:
            return 0  # its worker still holds it (a cancelled run: until its last metric is in)
        return None

    def shutdown(self) -> None:
        """Stop this process's sweeper; the runs go on, on the workers."""
        self.sweeper.stop()
        with contextlib.suppress(Exception):
            self.celery.close()
