"""What a learner's runs keep, the bound on it, and retention (issue 16, items 4 and 5).

Storage: a run keeps its files (``Artifacts.size``: its folder in the data dir alone, its rows of
the store in a class deployment) and its metric rows, each counted at ``METRIC_ROW_BYTES``. A
final run no longer grows, so its number is counted once and kept in the store
(``RunStore.set_stored_bytes``); an unfinished one is counted afresh each time. A learner whose
runs keep ``runs_max_bytes_per_learner`` or more is refused a new run (``StorageFull``, a 413
naming the setting) until they delete some on ``/runs``.

Retention: ``Retention.sweep`` deletes, with every file, each final run older than
``runs_retention_days`` (0: never) and each learner's final runs beyond their newest
``runs_kept_per_learner``. It keeps a run that someone follows live in this process, one whose
worker is still handing over its last metrics, and one that a queued or running run resumes from
(the store refuses those with ``RunBusy``). Every web process of a class deployment may sweep:
a run two of them both pick is deleted once, and the other skips it (``RunNotFound``).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from app.config import Settings
from app.jobs.artifacts import Artifacts
from app.jobs.runner import Runner
from app.jobs.store import Run, RunBusy, RunNotFound, RunStore

log = logging.getLogger("app.jobs.retention")

# What one metric row costs the store, a little over what it takes on PostgreSQL: a 24-byte
# tuple header, its id, the 32-character run id, step, name (about 12 characters), value and
# time, and its entries in the primary key and run id indexes. SQLite takes less.
METRIC_ROW_BYTES = 160
MB = 1024 * 1024


class Streams(Protocol):
    def streams_on(self, run_id: str) -> int:
        """Live event streams open on the run in this process."""
        ...


class KeptRuns(Protocol):
    """What retention needs of the web process's runs (``app.web.live.Runs``)."""

    @property
    def store(self) -> RunStore: ...

    @property
    def artifacts(self) -> Artifacts: ...

    @property
    def runner(self) -> Runner: ...

    @property
    def streams(self) -> Streams: ...

    def delete(self, run_id: str) -> Run:
        """Forget a final run and delete its files (``RunBusy``, ``RunNotFound``)."""
        ...


def megabytes(size: int) -> str:
    """``size`` bytes in MB, with the digits that tell small sizes apart."""
    value = size / MB
    if value >= 100:
        return f"{value:.0f} MB"
    if value >= 1:
        return f"{value:.1f} MB"
    return f"{value:.2g} MB"


class StorageFull(RuntimeError):
    """The learner's runs already keep ``limit`` bytes or more (``used``): a 413 naming
    ``setting``."""

    setting = "runs_max_bytes_per_learner"

    def __init__(self, limit: int, used: int) -> None:
        super().__init__(
            f"Your runs keep {megabytes(used)} of files and metrics, and one learner may keep "
            f"{megabytes(limit)} (setting runs_max_bytes_per_learner = {limit} bytes): delete "
            "runs you no longer need on /runs (or DELETE /api/runs/{id}), then try again."
        )
        self.limit = limit
        self.used = used


def _measure(runs: KeptRuns, run: Run) -> int:
    return runs.artifacts.size(run.id) + runs.store.metric_count(run.id) * METRIC_ROW_BYTES


def _settled(runs: KeptRuns, run: Run) -> bool:
    """Final, and let go of by the runner: a cancelled run is final at once, but its worker may
    still be handing over its last metrics and files."""
    return run.is_final and runs.runner.position(run.id) is None


def kept_bytes(runs: KeptRuns, run: Run) -> int:
    """Bytes ``run`` keeps: its files and its metric rows (``METRIC_ROW_BYTES`` each). Counted
    once for a final run, and kept in the store; afresh for one that still grows."""
    if run.is_final:
        stored = runs.store.stored_bytes([run.id]).get(run.id)
        if stored is not None:
            return stored
    size = _measure(runs, run)
    if _settled(runs, run):
        runs.store.set_stored_bytes(run.id, size)
    return size


def learner_bytes(runs: KeptRuns, learner: str) -> int:
    """Bytes every run of ``learner`` keeps (the final runs' numbers read in one query)."""
    owned = runs.store.owned(learner)
    stored = runs.store.stored_bytes(run.id for run in owned if run.is_final)
    total = 0
    for run in owned:
        known = stored.get(run.id)
        if known is not None:
            total += known
            continue
        size = _measure(runs, run)
        if _settled(runs, run):
            runs.store.set_stored_bytes(run.id, size)
        total += size
    return total


def check_storage(runs: KeptRuns, learner: str, settings: Settings) -> None:
    """``StorageFull`` when ``learner``'s runs keep ``runs_max_bytes_per_learner`` or more."""
    limit = settings.runs_max_bytes_per_learner
    used = learner_bytes(runs, learner)
    if used >= limit:
        raise StorageFull(limit, used)


class Retention:
    """Deletes what runs outlive their keep, at start-up and every
    ``runs_retention_interval_seconds``, in a thread of its own."""

    def __init__(self, runs: KeptRuns, settings: Settings) -> None:
        self.runs = runs
        self.days = settings.runs_retention_days
        self.kept_per_learner = settings.runs_kept_per_learner
        self.every_s = settings.runs_retention_interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self, now: datetime | None = None) -> list[str]:
        """The runs the rules pick, oldest expiry first, each once: final runs created over
        ``runs_retention_days`` ago, then each learner's final runs past their newest
        ``runs_kept_per_learner``."""
        store = self.runs.store
        picked: dict[str, None] = {}
        if self.days > 0:
            cutoff = (now or datetime.now(UTC)) - timedelta(days=self.days)
            picked.update(dict.fromkeys(store.expired(cutoff)))
        for learner in store.owners():
            final = [run.id for run in store.owned(learner) if run.is_final]  # newest first
            picked.update(dict.fromkeys(final[self.kept_per_learner :]))
        return list(picked)

    def keeps(self, run_id: str) -> bool:
        """Whether a picked run stays for now: followed live here, or still held by the runner
        (a queued or running run that resumes from it is the store's ``RunBusy``)."""
        if self.runs.streams.streams_on(run_id) > 0:
            return True
        try:
            return self.runs.runner.position(run_id) is not None
        except RunNotFound:
            return False

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Delete what is due (see ``due``) except what ``keeps`` keeps; the ids deleted."""
        deleted = []
        for run_id in self.due(now):
            if self._stop.is_set():
                break  # shutting down: the rest wait for the next start
            if self.keeps(run_id):
                continue
            try:
                self.runs.delete(run_id)
            except (RunBusy, RunNotFound):  # resumed from, or another process deleted it first
                continue
            deleted.append(run_id)
        if deleted:
            log.info(
                "retention deleted %d runs with their files (older than %g days, or past a "
                "learner's newest %d): %s",
                len(deleted),
                self.days,
                self.kept_per_learner,
                ", ".join(deleted[:10]) + (" ..." if len(deleted) > 10 else ""),
            )
        return deleted

    def _loop(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - the store is out of reach: next pass
                log.warning("retention sweep failed (%s: %s)", type(exc).__name__, exc)
            if self._stop.wait(self.every_s):
                return

    def start(self) -> None:
        """Sweep now, then every ``runs_retention_interval_seconds``, until ``stop``."""
        self._thread = threading.Thread(target=self._loop, name="run-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a sweep under way ends after the run it is deleting)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
