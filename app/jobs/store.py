"""The run store: training runs and their metrics, in SQLAlchemy 2.0.

SQLite in the data dir by default (WAL, busy timeout), but any database URL works: the code uses
only portable SQLAlchemy constructs, so PostgreSQL is one setting away.
"""

from __future__ import annotations

import builtins
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, INTERRUPTED)
FINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELLED, INTERRUPTED})

SQLITE_BUSY_TIMEOUT_MS = 30_000

# Metric row ids are the event ids of a run's live stream: SQLite's INTEGER is a signed 64-bit
# number, so an id (or an ``after`` cursor) is a whole number from 0 to this.
MAX_EVENT_ID = 2**63 - 1


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    resume_from: Mapped[str | None] = mapped_column(String(32))


class MetricRow(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Run:
    """A detached snapshot of one run (safe to pass between threads)."""

    id: str
    task: str
    config: dict[str, Any]
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    progress: float
    resume_from: str | None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_row(cls, row: RunRow) -> Run:
        created = _aware(row.created_at)
        assert created is not None
        return cls(
            id=row.id,
            task=row.task,
            config=dict(row.config),
            status=row.status,
            created_at=created,
            started_at=_aware(row.started_at),
            finished_at=_aware(row.finished_at),
            error=row.error,
            progress=row.progress,
            resume_from=row.resume_from,
        )

    def to_dict(self) -> dict[str, Any]:
        """The API's ``Run`` shape, without ``metrics`` (see ``RunStore.metrics``)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "task": self.task,
            "status": self.status,
            "config": self.config,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "error": self.error,
            "progress": self.progress,
            "resume_from": self.resume_from,
        }


@dataclass(frozen=True)
class MetricEvent:
    """One stored metric with its row id, for resumable streaming (``metrics_since``)."""

    id: int
    step: int
    name: str
    value: float


class RunNotFound(KeyError):
    """No run has this id."""


def run_dir(data_dir: Path, run_id: str) -> Path:
    """Where a run's artifacts live: checkpoint, TensorBoard event files, summary."""
    return Path(data_dir) / "runs" / run_id


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / 'runs.db'}"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


class RunStore:
    """Runs and metrics. Every write commits before it returns.

    ``RunStore(data_dir=...)`` opens ``<data_dir>/runs.db``; ``RunStore(url=...)`` opens any
    SQLAlchemy URL (e.g. ``postgresql+psycopg://...``). Thread-safe: one short session per call.
    """

    def __init__(self, url: str | None = None, *, data_dir: Path | None = None) -> None:
        if url is None:
            if data_dir is None:
                raise ValueError("RunStore needs a database url or a data_dir")
            Path(data_dir).mkdir(parents=True, exist_ok=True)
            url = sqlite_url(Path(data_dir))
        self.url = url
        if url.startswith("sqlite"):
            self.engine = create_engine(
                url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            )
            _configure_sqlite(self.engine)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._clock_lock = threading.Lock()
        self._last_created: datetime | None = None

    def close(self) -> None:
        self.engine.dispose()

    def _now(self) -> datetime:
        return datetime.now(UTC)

    def _created_now(self) -> datetime:
        """Strictly increasing within this process, so "newest first" never ties."""
        with self._clock_lock:
            now = self._now()
            if self._last_created is not None and now <= self._last_created:
                now = self._last_created + timedelta(microseconds=1)
            self._last_created = now
            return now

    def _session(self) -> Session:
        return self._sessions()

    # -- runs ---------------------------------------------------------------------------------

    def create(self, task: str, config: dict[str, Any], resume_from: str | None = None) -> Run:
        row = RunRow(
            id=secrets.token_hex(6),
            task=task,
            config=dict(config),
            status=QUEUED,
            created_at=self._created_now(),
            progress=0.0,
            resume_from=resume_from,
        )
        with self._session() as session, session.begin():
            session.add(row)
        return Run.from_row(row)

    def get(self, run_id: str) -> Run:
        with self._session() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise RunNotFound(run_id)
            return Run.from_row(row)

    def list(self, limit: int | None = None) -> builtins.list[Run]:
        stmt = select(RunRow).order_by(RunRow.created_at.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._session() as session:
            return [Run.from_row(row) for row in session.scalars(stmt)]

    def _update(self, run_id: str, *, only_if_not_final: bool = False, **values: Any) -> bool:
        stmt = update(RunRow).where(RunRow.id == run_id)
        if only_if_not_final:
            stmt = stmt.where(RunRow.status.in_([QUEUED, RUNNING]))
        with self._session() as session, session.begin():
            result = session.execute(stmt.values(**values))
            matched = bool(getattr(result, "rowcount", 0))
        if not matched and not only_if_not_final:
            raise RunNotFound(run_id)
        return matched

    def mark_running(self, run_id: str) -> bool:
        """queued -> running; False if the run was already final (e.g. cancelled)."""
        return self._update(
            run_id, only_if_not_final=True, status=RUNNING, started_at=self._now(), error=None
        )

    def update_progress(self, run_id: str, progress: float) -> None:
        self._update(run_id, progress=min(1.0, max(0.0, float(progress))))

    def finish(self, run_id: str, status: str, error: str | None = None) -> bool:
        """Set a final status. Only a run that is still queued/running changes; returns whether
        it did, so the first final word (a cancel, a time limit) is never overwritten."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status ({sorted(FINAL_STATUSES)})")
        values: dict[str, Any] = {"status": status, "finished_at": self._now(), "error": error}
        if status == COMPLETED:
            values["progress"] = 1.0
        return self._update(run_id, only_if_not_final=True, **values)

    def recover(self) -> builtins.list[str]:
        """On start-up: every queued/running run (its process is gone) becomes ``interrupted``.

        Metrics are kept. Returns the ids it changed.
        """
        with self._session() as session, session.begin():
            ids = list(
                session.scalars(select(RunRow.id).where(RunRow.status.in_([QUEUED, RUNNING])))
            )
            if ids:
                session.execute(
                    update(RunRow)
                    .where(RunRow.id.in_(ids))
                    .values(
                        status=INTERRUPTED,
                        finished_at=self._now(),
                        error="the server stopped while this run was queued or running",
                    )
                )
        return ids

    # -- metrics ------------------------------------------------------------------------------

    def add_metrics(self, run_id: str, metrics: Iterable[tuple[int, str, float]]) -> int:
        """Store a batch in one transaction: one executemany INSERT, not an ORM object per row
        (ten times cheaper, and the supervisor thread shares the web process's GIL)."""
        rows = [
            {"run_id": run_id, "step": int(step), "name": str(name), "value": float(value)}
            for step, name, value in metrics
        ]
        if rows:
            with self._session() as session, session.begin():
                session.execute(insert(MetricRow), rows)
        return len(rows)

    def metrics(self, run_id: str) -> dict[str, builtins.list[builtins.list[float]]]:
        """``{name: [[step, value], ...]}`` in the order they were logged."""
        stmt = (
            select(MetricRow.name, MetricRow.step, MetricRow.value)
            .where(MetricRow.run_id == run_id)
            .order_by(MetricRow.id)
        )
        out: dict[str, builtins.list[builtins.list[float]]] = {}
        with self._session() as session:
            for name, step, value in session.execute(stmt):
                out.setdefault(name, []).append([step, value])
        return out

    def metrics_since(
        self, run_id: str, after_id: int = 0, limit: int | None = None
    ) -> builtins.list[MetricEvent]:
        """Metrics logged after row ``after_id`` (0: all), oldest first, at most ``limit``: a
        late SSE client replays from 0, then keeps asking with the last id it saw."""
        if after_id >= MAX_EVENT_ID:
            return []  # no row has a larger id (and a larger number does not fit the column)
        # Plain columns, not ORM objects: a late client of a long run replays thousands of rows.
        stmt = (
            select(MetricRow.id, MetricRow.step, MetricRow.name, MetricRow.value)
            .where(MetricRow.run_id == run_id, MetricRow.id > max(0, after_id))
            .order_by(MetricRow.id)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._session() as session:
            return [
                MetricEvent(id=row_id, step=step, name=name, value=value)
                for row_id, step, name, value in session.execute(stmt)
            ]

    def last_metric_id(self, run_id: str) -> int:
        """The id of the run's newest metric (0 when it has none): where a live feed starts."""
        stmt = select(func.max(MetricRow.id)).where(MetricRow.run_id == run_id)
        with self._session() as session:
            return int(session.scalar(stmt) or 0)

    def latest(self, run_ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """``{run_id: {name: last value}}`` in one query, for tables of many runs."""
        ids = builtins.list(run_ids)
        if not ids:
            return {}
        last = (
            select(func.max(MetricRow.id).label("id"))
            .where(MetricRow.run_id.in_(ids))
            .group_by(MetricRow.run_id, MetricRow.name)
            .subquery()
        )
        stmt = select(MetricRow.run_id, MetricRow.name, MetricRow.value).join(
            last, MetricRow.id == last.c.id
        )
        out: dict[str, dict[str, float]] = {run_id: {} for run_id in ids}
        with self._session() as session:
            for run_id, name, value in session.execute(stmt):
                out[run_id][name] = value
        return out
