"""The Celery app a class deployment's workers run: ``celery -A app.jobs.celery worker``.

Settings come from the environment as for the web processes (``EXPLORER_BROKER_URL``,
``EXPLORER_DATABASE_URL``, ``EXPLORER_RUNS_*``). Each worker process imports torch, the tasks and
the digits once, and warms every task up (``app.jobs.preload``) before its first run; each run
trains with ``runs_torch_threads`` torch threads (one by default, as the local runner's). Run one
worker process per core with ``--pool solo`` (``make class`` and ``deploy/compose.yaml`` do), so
killing a worker kills its run, which then continues on another worker
(``app.jobs.class_worker``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from celery import signals

from app.config import get_settings
from app.jobs import class_worker
from app.jobs.class_runner import TRAIN_TASK, Sweeper, make_celery
from app.jobs.store import RunStore

settings = get_settings()
app = make_celery(settings)
log = logging.getLogger("app.jobs.celery")

_state: dict[str, Any] = {}


def store() -> RunStore:
    """This process's store (opened after any fork: an engine is never shared across one)."""
    current = _state.get("store")
    if current is None or _state.get("pid") != os.getpid():
        if not settings.database_url:
            raise RuntimeError(
                "a Celery worker needs EXPLORER_DATABASE_URL: the store it shares with the web "
                "processes (postgresql+psycopg://...)"
            )
        current = _state["store"] = RunStore(settings.database_url)
        _state["pid"] = os.getpid()
    return current


@app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def train_run(run_id: str) -> str | None:
    """Train run ``run_id`` if it is still queued (a duplicate message does nothing)."""
    return class_worker.train(
        store(),
        run_id,
        lease_s=settings.runs_lease_seconds,
        time_limit_s=settings.runs_max_seconds,
        retry_s=settings.store_retry_seconds,
    )


@signals.worker_process_init.connect
@signals.worker_init.connect
def _warm(**_: Any) -> None:
    """Torch, the tasks and the digits loaded, and each task trained a moment, before any run."""
    import torch

    from app.jobs.run_worker import RUN_NICENESS

    # Training is batch work, as the local runner's: on a host shared with web processes, page
    # loads and slider moves are answered first.
    if not _state.get("niced"):  # once: a prefork child inherits its parent's niceness
        _state["niced"] = True
        with contextlib.suppress(OSError):
            os.nice(RUN_NICENESS)
    torch.set_num_threads(settings.runs_torch_threads)
    from app.jobs import preload  # noqa: F401  (trains each task briefly on import)


@signals.worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    sweeper = _state["sweeper"] = Sweeper(store(), app, settings)
    sweeper.start()
    log.info("worker ready: store %s, broker %s", store().engine.url, settings.broker_url)


@signals.worker_shutdown.connect
def _stop_sweeper(**_: Any) -> None:
    sweeper = _state.pop("sweeper", None)
    if sweeper is not None:
        sweeper.stop()
