"""The run store: training runs, their metrics and (in a class deployment) their artefacts, in
SQLAlchemy 2.0.

SQLite in the data dir by default (WAL, busy timeout); PostgreSQL with
``EXPLORER_DATABASE_URL=postgresql+psycopg://...``. The code uses portable SQLAlchemy constructs;
on PostgreSQL each transaction that adds news about a run (metrics, a status) also sends
``NOTIFY explorer_runs, '<run id>'``, delivered when it commits, so every web process can wake
its live streams (``app.web.live``) without polling.

A class deployment's workers also use the columns a single server does not need: who holds a
running run (``worker``) and when it last said so (``heartbeat_at``), a cancel asked for from any
web process (``cancel_requested``), and how many times it started (``attempts``).

Learners (issue 16): each run records the learner who launched it (``owner``; runs made before
belong to nobody), ``learners`` holds their display names, ``learner_links`` the one-time links
that carry an identity to another browser (only the token's SHA-256 is kept), and ``meta`` the
secrets every process of a deployment must share, such as the key that signs learner cookies.
``classes`` and ``class_members`` hold the classes a teacher made and who is in each: a teacher
sees (and may cancel or delete) the runs a member launched while in the class. ``stored_bytes``
is what a finished run keeps (files and metrics), counted once it is final, for the per-learner
quota and the class page's space used.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
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

# The PostgreSQL channel that carries "run <id> has news" to every web process.
NOTIFY_CHANNEL = "explorer_runs"


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
    # A class deployment's bookkeeping (added to older databases by ``_migrate``).
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The learner who launched it (issue 16); None for runs made before learners existed.
    owner: Mapped[str | None] = mapped_column(String(32), index=True)
    # Bytes it keeps (artefacts and metrics), counted once it is final; None until then.
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger)


class MetricRow(Base):
    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    # When the training loop logged it (Unix seconds): the TensorBoard files' wall times.
    logged_at: Mapped[float | None] = mapped_column(Float)


class ArtifactRow(Base):
    """A run's file kept in the store (a class deployment: every host reads it from here)."""

    __tablename__ = "artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MetaRow(Base):
    """One value the whole deployment shares (a signing secret), by key."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LearnerRow(Base):
    """A learner who named themselves (an anonymous learner has no row)."""

    __tablename__ = "learners"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LearnerLinkRow(Base):
    """A one-time link that carries a learner's identity to another browser."""

    __tablename__ = "learner_links"

    # SHA-256 of the token, hex: the store never holds a link that works.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    learner: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ClassRow(Base):
    """A class a teacher made: learners join it with ``code``; ``teacher_key_hash`` is the
    SHA-256 of the private teacher link's token (the store never holds a link that works)."""

    __tablename__ = "classes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    code: Mapped[str] = mapped_column(String(16), unique=True)
    teacher_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MemberRow(Base):
    """One learner in one class, as a ``teacher`` or a ``learner``, since ``joined_at``."""

    __tablename__ = "class_members"

    class_id: Mapped[str] = mapped_column(ForeignKey("classes.id"), primary_key=True)
    learner: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


TEACHER = "teacher"
LEARNER = "learner"
# A join code: 8 characters a teacher can read out loud and a learner can type on a phone (no
# 0/O, 1/I/L): 31**8, about 2**40 codes, and guessing them is rate-limited by the web layer.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_CHARS = 8


def normal_code(text: str) -> str:
    """A join code as typed (any case, with spaces or a dash) in its stored form."""
    return "".join(ch for ch in text.upper() if ch.isalnum())[: CODE_CHARS * 2]


def shown_code(code: str) -> str:
    """``ABCD2345`` as people read it: ``ABCD-2345``."""
    return f"{code[:4]}-{code[4:]}" if len(code) == CODE_CHARS else code


@dataclass(frozen=True)
class ClassInfo:
    id: str
    name: str
    code: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: ClassRow) -> ClassInfo:
        created = _aware(row.created_at)
        assert created is not None
        return cls(id=row.id, name=row.name, code=row.code, created_at=created)


@dataclass(frozen=True)
class Member:
    learner: str
    name: str | None
    role: str
    joined_at: datetime


class ClassNotFound(KeyError):
    """No class has this id (or join code, or teacher link)."""


class RunBusy(RuntimeError):
    """A run that cannot be deleted now: it is still queued or running, or a run that is resumes
    from its checkpoint."""


# Columns added since the first release, with the DDL type that adds each to an existing table.
_ADDED_COLUMNS = {
    "runs": {
        "cancel_requested": "BOOLEAN DEFAULT FALSE",
        "worker": "VARCHAR(128)",
        "heartbeat_at": "TIMESTAMP WITH TIME ZONE",
        "attempts": "INTEGER DEFAULT 0",
        "owner": "VARCHAR(32)",
        "stored_bytes": "BIGINT",
    },
    "metrics": {"logged_at": "FLOAT"},
}
# Indexes on added columns (a new database gets them from the models; IF NOT EXISTS then skips).
_ADDED_INDEXES = {"ix_runs_owner": ("runs", "owner")}
# A used or expired identity link is kept this long, so opening it says "used" or "expired"
# rather than "unknown"; then it is deleted.
LINK_KEPT_AFTER_EXPIRY = timedelta(days=1)


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
    cancel_requested: bool = False
    worker: str | None = None
    heartbeat_at: datetime | None = None
    attempts: int = 0
    owner: str | None = None

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
            cancel_requested=bool(row.cancel_requested),
            worker=row.worker,
            heartbeat_at=_aware(row.heartbeat_at),
            attempts=int(row.attempts or 0),
            owner=row.owner,
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


class LinkRefused(LookupError):
    """An identity link that does not work: ``reason`` is "unknown", "used" or "expired"."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"this link is {reason}")
        self.reason = reason


def link_hash(token: str) -> str:
    """What the store keeps of an identity link's token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class RunLost(RuntimeError):
    """A worker wrote for a run it no longer holds (a sweeper gave it to another worker after its
    heartbeat went silent): the write is refused, so the two never both log a step."""

    def __init__(self, run_id: str, worker: str, holder: str | None) -> None:
        now = f"held by {holder}" if holder else "held by no worker"
        super().__init__(f"run {run_id} is no longer held by {worker} (it is {now})")
        self.run_id = run_id


def new_run_id() -> str:
    """128 random bits as 32 hex characters: a run's link is its only key to read it, so it must
    be unguessable (runs made before issue 16 have 48-bit ids, and keep them)."""
    return secrets.token_hex(16)


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


class QueueFull(RuntimeError):
    """The queue already holds ``limit`` waiting runs (``setting`` names the bound)."""

    setting = "runs_max_queue"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the run queue is full ({limit} runs waiting); try again later")
        self.limit = limit


class LearnerRunsFull(QueueFull):
    """One learner already has ``limit`` runs queued or running: their fair share of the queue."""

    setting = "runs_max_per_learner"

    def __init__(self, limit: int) -> None:
        RuntimeError.__init__(
            self,
            f"you already have {limit} runs queued or running, the most one learner may have "
            f"(setting runs_max_per_learner = {limit}): wait for one to finish, or cancel one, "
            "then try again",
        )
        self.limit = limit


# PostgreSQL advisory lock keys: one for creating the tables, one for counting the queue.
_SCHEMA_LOCK = 0x45585001
_QUEUE_LOCK = 0x45585002


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
        self.is_postgresql = url.startswith("postgresql")
        if url.startswith("sqlite"):
            self.engine = create_engine(
                url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            )
            _configure_sqlite(self.engine)
        else:
            # A server that is gone answers within seconds (a 503), not after TCP's minutes.
            connect_args = {"connect_timeout": 5} if self.is_postgresql else {}
            self.engine = create_engine(
                url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=connect_args
            )
        self._create_schema()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._clock_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._last_created: datetime | None = None

    def _create_schema(self) -> None:
        """The tables, and the columns added since (several processes may start at once: on
        PostgreSQL they take turns under an advisory lock)."""
        with self.engine.begin() as conn:
            if self.is_postgresql:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
            Base.metadata.create_all(conn)
            present = inspect(conn)
            for table, columns in _ADDED_COLUMNS.items():
                have = {c["name"] for c in present.get_columns(table)}
                for name, ddl in columns.items():
                    if name not in have:
                        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))
            for index, (table, column) in _ADDED_INDEXES.items():
                conn.execute(text(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({column})"))

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

    def _lease_now(self, session: Session | None = None) -> datetime:
        """The time heartbeats are stamped and judged by. On PostgreSQL it is the database
        server's clock, so workers and sweepers on hosts whose clocks differ agree on which
        heartbeat is stale; SQLite serves one host, whose clock it is."""
        if not self.is_postgresql:
            return self._now()
        if session is not None:
            now = session.scalar(select(func.now()))
        else:
            with self._session() as own:
                now = own.scalar(select(func.now()))
        aware = _aware(now)
        assert aware is not None
        return aware

    def _notify(self, session: Session, run_id: str) -> None:
        """On PostgreSQL: tell every listening web process, when this transaction commits, that
        the run has news (``app.web.live`` listens)."""
        if self.is_postgresql:
            session.execute(
                text("SELECT pg_notify(:channel, :run_id)"),
                {"channel": NOTIFY_CHANNEL, "run_id": run_id},
            )

    # -- runs ---------------------------------------------------------------------------------

    def create(
        self,
        task: str,
        config: dict[str, Any],
        resume_from: str | None = None,
        *,
        max_queued: int | None = None,
        owner: str | None = None,
        max_per_owner: int | None = None,
    ) -> Run:
        """A new ``queued`` run of ``owner`` (a learner id, or None). With ``max_queued``,
        ``QueueFull`` when that many runs already wait; with ``max_per_owner``,
        ``LearnerRunsFull`` when the owner already has that many queued or running. Both are
        counted in the store (every web process of a deployment shares the bounds)."""
        row = RunRow(
            id=new_run_id(),
            task=task,
            config=dict(config),
            status=QUEUED,
            created_at=self._created_now(),
            progress=0.0,
            resume_from=resume_from,
            cancel_requested=False,
            attempts=0,
            owner=owner,
        )
        with self._queue_lock, self._session() as session, session.begin():
            counted = max_queued is not None or (max_per_owner is not None and owner is not None)
            if counted and self.is_postgresql:
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _QUEUE_LOCK})
            if max_per_owner is not None and owner is not None:
                mine = session.scalar(
                    select(func.count())
                    .select_from(RunRow)
                    .where(RunRow.owner == owner, RunRow.status.in_([QUEUED, RUNNING]))
                )
                if int(mine or 0) >= max_per_owner:
                    raise LearnerRunsFull(max_per_owner)
            if max_queued is not None:
                waiting = session.scalar(
                    select(func.count()).select_from(RunRow).where(RunRow.status == QUEUED)
                )
                if int(waiting or 0) >= max_queued:
                    raise QueueFull(max_queued)
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

    def _update(
        self, run_id: str, *, only_if_not_final: bool = False, where: Any = None, **values: Any
    ) -> bool:
        stmt = update(RunRow).where(RunRow.id == run_id)
        if only_if_not_final:
            stmt = stmt.where(RunRow.status.in_([QUEUED, RUNNING]))
        if where is not None:
            stmt = stmt.where(where)
        with self._session() as session, session.begin():
            result = session.execute(stmt.values(**values))
            matched = bool(getattr(result, "rowcount", 0))
            if matched:
                self._notify(session, run_id)
        if not matched and not only_if_not_final and where is None:
            raise RunNotFound(run_id)
        return matched

    def mark_running(self, run_id: str) -> bool:
        """queued -> running; False if the run was already final (e.g. cancelled)."""
        return self._update(
            run_id, only_if_not_final=True, status=RUNNING, started_at=self._now(), error=None
        )

    def update_progress(self, run_id: str, progress: float, *, worker: str | None = None) -> None:
        """The run's share done (0..1); with ``worker``, only while that worker holds it."""
        held = RunRow.worker == worker if worker is not None else None
        self._update(run_id, where=held, progress=min(1.0, max(0.0, float(progress))))

    def finish(
        self, run_id: str, status: str, error: str | None = None, *, worker: str | None = None
    ) -> bool:
        """Set a final status. Only a run that is still queued/running changes; returns whether
        it did, so the first final word (a cancel, a time limit) is never overwritten. With
        ``worker``, only while that worker holds the run."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status ({sorted(FINAL_STATUSES)})")
        values: dict[str, Any] = {"status": status, "finished_at": self._now(), "error": error}
        if status == COMPLETED:
            values["progress"] = 1.0
        held = RunRow.worker == worker if worker is not None else None
        return self._update(run_id, only_if_not_final=True, where=held, **values)

    def _hold(self, session: Session, run_id: str, worker: str | None) -> None:
        """Inside a write: with ``worker``, lock the run's row and refuse (``RunLost``) unless that
        worker holds it; a sweeper's hand-over takes the same lock, so one of the two waits."""
        if worker is None:
            return
        holder = session.scalar(select(RunRow.worker).where(RunRow.id == run_id).with_for_update())
        if holder != worker:
            raise RunLost(run_id, worker, holder)

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

    # -- a class deployment's workers ---------------------------------------------------------

    def queued_ids(self) -> builtins.list[str]:
        """Every queued run, first in line first."""
        stmt = (
            select(RunRow.id).where(RunRow.status == QUEUED).order_by(RunRow.created_at, RunRow.id)
        )
        with self._session() as session:
            return builtins.list(session.scalars(stmt))

    def queue_position(self, run_id: str) -> int | None:
        """1-based place in line of a queued run (counted in the store), None otherwise."""
        with self._session() as session:
            row = session.get(RunRow, run_id)
            if row is None or row.status != QUEUED:
                return None
            ahead = session.scalar(
                select(func.count())
                .select_from(RunRow)
                .where(
                    RunRow.status == QUEUED,
                    or_(
                        RunRow.created_at < row.created_at,
                        and_(RunRow.created_at == row.created_at, RunRow.id < row.id),
                    ),
                )
            )
            return int(ahead or 0) + 1

    def claim(self, run_id: str, worker: str) -> Run | None:
        """queued -> running for ``worker`` (its heartbeat starts now); None when the run is not
        queued (already taken, cancelled or gone): a second delivery of its message does nothing."""
        now = self._lease_now()
        claimed = self._update(
            run_id,
            where=and_(RunRow.status == QUEUED, RunRow.cancel_requested.is_(False)),
            status=RUNNING,
            worker=worker,
            heartbeat_at=now,
            attempts=RunRow.attempts + 1,
            started_at=func.coalesce(RunRow.started_at, now),
            error=None,
        )
        return self.get(run_id) if claimed else None

    def heartbeat(self, run_id: str, worker: str) -> Run:
        """``worker`` still trains the run: its heartbeat is now. Returns the run as stored, so
        the worker sees a cancel (final status, ``cancel_requested``) or a run taken from it
        (another ``worker``)."""
        with self._session() as session, session.begin():
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.worker == worker)
                .values(heartbeat_at=self._lease_now(session))
            )
            row = session.get(RunRow, run_id)
            if row is None:
                raise RunNotFound(run_id)
            return Run.from_row(row)

    def release(self, run_id: str, worker: str) -> bool:
        """``worker`` has let go of the run (its last metric is stored)."""
        return self._update(run_id, where=RunRow.worker == worker, worker=None)

    def request_cancel(self, run_id: str) -> Run:
        """Cancel from any web process: the flag the training loop's heartbeat reads, and the
        final status at once (the first final word wins). Returns the run afterwards."""
        if self._update(run_id, only_if_not_final=True, cancel_requested=True):
            self.finish(run_id, CANCELLED)
        return self.get(run_id)

    def sweep(
        self, lease_s: float, max_attempts: int, time_limit_s: float
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Runs whose worker stopped saying it is alive (no heartbeat for ``lease_s``): each goes
        back in line to continue from its last epoch checkpoint, or (after ``max_attempts``
        starts, or past its time limit) ends ``interrupted``/``failed`` with its metrics. A final
        run still held by a silent worker is let go. Returns (requeued, ended) run ids; several
        sweepers may run at once, and each run is changed by one of them."""
        now = self._lease_now()
        cutoff = now - timedelta(seconds=lease_s)
        stale = and_(RunRow.worker.is_not(None), RunRow.heartbeat_at < cutoff)
        requeued: builtins.list[str] = []
        ended: builtins.list[str] = []
        with self._session() as session:
            rows = builtins.list(
                session.execute(
                    select(
                        RunRow.id, RunRow.status, RunRow.worker, RunRow.attempts, RunRow.started_at
                    ).where(stale)
                )
            )
        for run_id, status, worker, attempts, started_at in rows:
            same = and_(RunRow.worker == worker, RunRow.heartbeat_at < cutoff)
            started = _aware(started_at)
            if status != RUNNING:
                self._update(run_id, where=same, worker=None)
                continue
            silent = f"its worker ({worker}) stopped: no heartbeat for {lease_s:g} s"
            if started is not None and (now - started).total_seconds() > time_limit_s:
                values: dict[str, Any] = {
                    "status": FAILED,
                    "error": f"time limit exceeded: the run took longer than {time_limit_s:g} s "
                    f"(setting runs_max_seconds), and {silent}",
                }
                target = ended
            elif int(attempts or 0) >= max_attempts:
                values = {
                    "status": INTERRUPTED,
                    "error": f"{silent}, and it had already started {attempts} times "
                    "(setting runs_max_attempts); its metrics are kept",
                }
                target = ended
            else:
                values = {"status": QUEUED}
                target = requeued
            if target is ended:
                values["finished_at"] = now
            if self._update(run_id, where=and_(same, RunRow.status == RUNNING), worker=None,
                            **values):  # fmt: skip
                target.append(run_id)
        return requeued, ended

    # -- artefacts kept in the store ----------------------------------------------------------

    def put_artifact(
        self, run_id: str, name: str, data: bytes, *, worker: str | None = None
    ) -> None:
        """Store (or replace) one of the run's files; with ``worker``, only while it holds the
        run (``RunLost`` otherwise)."""
        with self._session() as session, session.begin():
            self._hold(session, run_id, worker)
            session.execute(
                delete(ArtifactRow).where(ArtifactRow.run_id == run_id, ArtifactRow.name == name)
            )
            session.add(
                ArtifactRow(run_id=run_id, name=name, data=bytes(data), updated_at=self._now())
            )

    def get_artifact(self, run_id: str, name: str) -> bytes | None:
        stmt = select(ArtifactRow.data).where(
            ArtifactRow.run_id == run_id, ArtifactRow.name == name
        )
        with self._session() as session:
            data = session.scalar(stmt)
        return bytes(data) if data is not None else None

    def artifact_stamp(self, run_id: str, name: str) -> tuple[int, datetime] | None:
        """(size, when written) of a stored file, None when there is none: enough to tell
        whether a copy is current without reading the bytes."""
        stmt = select(func.length(ArtifactRow.data), ArtifactRow.updated_at).where(
            ArtifactRow.run_id == run_id, ArtifactRow.name == name
        )
        with self._session() as session:
            row = session.execute(stmt).first()
        if row is None:
            return None
        written = _aware(row[1])
        assert written is not None
        return int(row[0] or 0), written

    def artifact_bytes(self, run_id: str) -> int:
        """Bytes of every file the run keeps in the store."""
        stmt = select(func.sum(func.length(ArtifactRow.data))).where(ArtifactRow.run_id == run_id)
        with self._session() as session:
            return int(session.scalar(stmt) or 0)

    def artifact_names(self, run_id: str, prefix: str = "") -> builtins.list[str]:
        stmt = (
            select(ArtifactRow.name)
            .where(
                ArtifactRow.run_id == run_id, ArtifactRow.name.startswith(prefix, autoescape=True)
            )
            .order_by(ArtifactRow.name)
        )
        with self._session() as session:
            return builtins.list(session.scalars(stmt))

    def delete_artifacts(self, run_id: str, prefix: str = "") -> None:
        with self._session() as session, session.begin():
            session.execute(
                delete(ArtifactRow).where(
                    ArtifactRow.run_id == run_id,
                    ArtifactRow.name.startswith(prefix, autoescape=True),
                )
            )

    # -- learners and the deployment's shared secrets -------------------------------------------

    def secret(self, name: str) -> str:
        """The deployment's secret called ``name``, made at its first use and kept in the store,
        so every web process on this database signs and checks with the same one. Two processes
        asking at once agree: each inserts only if absent, then both read back what is stored."""
        key = f"secret:{name}"
        stmt = select(MetaRow.value).where(MetaRow.key == key)
        with self._session() as session:
            value = session.scalar(stmt)
        if value:
            return value
        try:
            with self._session() as session, session.begin():
                session.add(MetaRow(key=key, value=secrets.token_urlsafe(32)))  # 256 bits
        except IntegrityError:
            pass  # another process stored one first: theirs is the secret
        with self._session() as session:
            value = session.scalar(stmt)
        assert value is not None
        return value

    def learner_name(self, learner: str) -> str | None:
        """The display name a learner gave themselves, None when they gave none."""
        with self._session() as session:
            return session.scalar(select(LearnerRow.name).where(LearnerRow.id == learner))

    def set_learner_name(self, learner: str, name: str) -> None:
        """Record (or change) a learner's display name; the caller has checked it."""
        stmt = update(LearnerRow).where(LearnerRow.id == learner).values(name=name)
        with self._session() as session, session.begin():
            if getattr(session.execute(stmt), "rowcount", 0):
                return
        try:
            with self._session() as session, session.begin():
                session.add(LearnerRow(id=learner, name=name, created_at=self._now()))
        except IntegrityError:  # the same learner, from another tab at the same moment
            with self._session() as session, session.begin():
                session.execute(stmt)

    def create_learner_link(self, learner: str, ttl: timedelta) -> tuple[str, datetime]:
        """A one-time link token for ``learner`` (128 random bits) and when it expires. Only its
        SHA-256 is stored; links long past their expiry are deleted here."""
        token = secrets.token_urlsafe(16)
        now = self._lease_now()
        expires = now + ttl
        with self._session() as session, session.begin():
            session.execute(
                delete(LearnerLinkRow).where(
                    LearnerLinkRow.expires_at < now - LINK_KEPT_AFTER_EXPIRY
                )
            )
            session.add(
                LearnerLinkRow(token_hash=link_hash(token), learner=learner, expires_at=expires)
            )
        return token, expires

    def check_learner_link(self, token: str) -> str:
        """The learner a link carries, leaving it unused (the page that asks "continue as ...?").
        Raises ``LinkRefused`` ("unknown", "used" or "expired") when it would not work."""
        with self._session() as session:
            row = session.get(LearnerLinkRow, link_hash(token))
            return self._working_link(row, self._lease_now(session))

    def claim_learner_link(self, token: str) -> str:
        """The learner a link carries, marking it used: it works once, before it expires.
        Raises ``LinkRefused`` ("unknown", "used" or "expired") otherwise."""
        digest = link_hash(token)
        with self._session() as session, session.begin():
            now = self._lease_now(session)
            claimed = session.execute(
                update(LearnerLinkRow)
                .where(
                    LearnerLinkRow.token_hash == digest,
                    LearnerLinkRow.used_at.is_(None),
                    LearnerLinkRow.expires_at > now,
                )
                .values(used_at=now)
            )
            row = session.get(LearnerLinkRow, digest)
            if row is not None and int(getattr(claimed, "rowcount", 0) or 0):
                return row.learner
            self._working_link(row, now)  # raises: why it did not work
            raise LinkRefused("used")  # claimed by another request between the two statements

    @staticmethod
    def _working_link(row: LearnerLinkRow | None, now: datetime) -> str:
        if row is None:
            raise LinkRefused("unknown")
        if row.used_at is not None:
            raise LinkRefused("used")
        expires = _aware(row.expires_at)
        if expires is None or expires <= now:
            raise LinkRefused("expired")
        return row.learner

    # -- who sees which runs ------------------------------------------------------------------

    def _taught(self, teacher: str) -> Any:
        """A condition on runs: launched by a member of a class ``teacher`` teaches, while a
        member (the teacher's own runs in the class count too)."""
        mine = select(MemberRow.class_id).where(
            MemberRow.learner == teacher, MemberRow.role == TEACHER
        )
        return (
            select(MemberRow.learner)
            .where(
                MemberRow.class_id.in_(mine),
                MemberRow.learner == RunRow.owner,
                MemberRow.joined_at <= RunRow.created_at,
            )
            .exists()
        )

    def visible(
        self, learner: str, *, earlier: bool = False, limit: int | None = None
    ) -> builtins.list[Run]:
        """The runs ``learner`` sees in lists, newest first: their own, those of the classes they
        teach, and with ``earlier`` the runs made before learners existed (owner None)."""
        seen = or_(RunRow.owner == learner, self._taught(learner))
        if earlier:
            seen = or_(seen, RunRow.owner.is_(None))
        stmt = select(RunRow).where(seen).order_by(RunRow.created_at.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._session() as session:
            return [Run.from_row(row) for row in session.scalars(stmt)]

    def teaches(self, teacher: str, run: Run) -> bool:
        """Whether ``teacher`` teaches a class ``run``'s owner was in when they launched it."""
        if run.owner is None:
            return False
        stmt = select(RunRow.id).where(RunRow.id == run.id, self._taught(teacher))
        with self._session() as session:
            return session.scalar(stmt) is not None

    # -- classes ------------------------------------------------------------------------------

    def create_class(self, name: str, teacher: str) -> tuple[ClassInfo, str]:
        """A new class taught by ``teacher``, with a fresh join code; returns it and the token of
        its teacher link (128 random bits; only its SHA-256 is kept)."""
        token = secrets.token_urlsafe(16)
        for _ in range(20):  # a code already taken (one in a billion per class) draws again
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))
            now = self._now()
            row = ClassRow(
                id=secrets.token_hex(16),
                name=name,
                code=code,
                teacher_key_hash=link_hash(token),
                created_at=now,
            )
            try:
                with self._session() as session, session.begin():
                    session.add(row)
                    session.flush()
                    session.add(
                        MemberRow(class_id=row.id, learner=teacher, role=TEACHER, joined_at=now)
                    )
            except IntegrityError:
                continue
            return ClassInfo.from_row(row), token
        raise RuntimeError("could not draw a free join code")  # pragma: no cover

    def get_class(self, class_id: str) -> ClassInfo:
        with self._session() as session:
            row = session.get(ClassRow, class_id)
            if row is None:
                raise ClassNotFound(class_id)
            return ClassInfo.from_row(row)

    def class_by_code(self, code: str) -> ClassInfo:
        """The class whose join code this is (typed in any case, with or without its dash)."""
        stmt = select(ClassRow).where(ClassRow.code == normal_code(code))
        with self._session() as session:
            row = session.scalar(stmt)
            if row is None:
                raise ClassNotFound(code)
            return ClassInfo.from_row(row)

    def class_by_teacher_token(self, token: str) -> ClassInfo:
        """The class whose private teacher link carries ``token``."""
        stmt = select(ClassRow).where(ClassRow.teacher_key_hash == link_hash(token))
        with self._session() as session:
            row = session.scalar(stmt)
            if row is None:
                raise ClassNotFound("teacher link")
            return ClassInfo.from_row(row)

    def join_class(self, class_id: str, learner: str, role: str = LEARNER) -> str:
        """Put ``learner`` in the class (a teacher stays a teacher; a learner becomes one when
        ``role`` is teacher). Returns their role afterwards."""
        if role not in (TEACHER, LEARNER):
            raise ValueError(f"role is {TEACHER!r} or {LEARNER!r}, not {role!r}")
        self.get_class(class_id)
        for _ in range(3):
            with self._session() as session, session.begin():
                row = session.get(MemberRow, (class_id, learner))
                if row is not None:
                    if role == TEACHER and row.role != TEACHER:
                        row.role = TEACHER
                    return row.role
            try:
                with self._session() as session, session.begin():
                    session.add(
                        MemberRow(
                            class_id=class_id, learner=learner, role=role, joined_at=self._now()
                        )
                    )
                return role
            except IntegrityError:  # the same learner joined from another tab at this moment
                continue
        return role  # pragma: no cover

    def leave_class(self, class_id: str, learner: str) -> bool:
        """Take ``learner`` out of the class; its teacher no longer sees their runs."""
        stmt = delete(MemberRow).where(MemberRow.class_id == class_id, MemberRow.learner == learner)
        with self._session() as session, session.begin():
            return bool(getattr(session.execute(stmt), "rowcount", 0))

    def role_in(self, class_id: str, learner: str) -> str | None:
        """``teacher``, ``learner``, or None when ``learner`` is not in the class."""
        stmt = select(MemberRow.role).where(
            MemberRow.class_id == class_id, MemberRow.learner == learner
        )
        with self._session() as session:
            return session.scalar(stmt)

    def classes_of(self, learner: str) -> builtins.list[tuple[ClassInfo, str]]:
        """Every class ``learner`` is in, with their role, newest class first."""
        stmt = (
            select(ClassRow, MemberRow.role)
            .join(MemberRow, MemberRow.class_id == ClassRow.id)
            .where(MemberRow.learner == learner)
            .order_by(ClassRow.created_at.desc())
        )
        with self._session() as session:
            return [(ClassInfo.from_row(row), role) for row, role in session.execute(stmt)]

    def members(self, class_id: str) -> builtins.list[Member]:
        """Who is in the class, with their display names, teachers first, then by joining."""
        stmt = (
            select(MemberRow.learner, LearnerRow.name, MemberRow.role, MemberRow.joined_at)
            .outerjoin(LearnerRow, LearnerRow.id == MemberRow.learner)
            .where(MemberRow.class_id == class_id)
            .order_by((MemberRow.role == TEACHER).desc(), MemberRow.joined_at)
        )
        with self._session() as session:
            return [
                Member(learner=learner, name=name, role=role, joined_at=_aware(joined) or joined)
                for learner, name, role, joined in session.execute(stmt)
            ]

    def class_runs(self, class_id: str, limit: int | None = None) -> builtins.list[Run]:
        """Every run a member launched while in the class, newest first."""
        member = (
            select(MemberRow.learner)
            .where(
                MemberRow.class_id == class_id,
                MemberRow.learner == RunRow.owner,
                MemberRow.joined_at <= RunRow.created_at,
            )
            .exists()
        )
        stmt = select(RunRow).where(member).order_by(RunRow.created_at.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._session() as session:
            return [Run.from_row(row) for row in session.scalars(stmt)]

    def learner_names(self, learners: Iterable[str]) -> dict[str, str]:
        """``{learner: display name}`` for those of ``learners`` who gave one."""
        ids = builtins.list(set(learners))
        if not ids:
            return {}
        stmt = select(LearnerRow.id, LearnerRow.name).where(
            LearnerRow.id.in_(ids), LearnerRow.name.is_not(None)
        )
        with self._session() as session:
            return {learner: name for learner, name in session.execute(stmt) if name}

    # -- what runs keep, and deleting them ------------------------------------------------------

    def metric_count(self, run_id: str) -> int:
        stmt = select(func.count()).select_from(MetricRow).where(MetricRow.run_id == run_id)
        with self._session() as session:
            return int(session.scalar(stmt) or 0)

    def set_stored_bytes(self, run_id: str, size: int) -> None:
        """Record what a final run keeps (it no longer grows)."""
        self._update(run_id, where=RunRow.status.in_(FINAL_STATUSES), stored_bytes=int(size))

    def stored_bytes(self, run_ids: Iterable[str]) -> dict[str, int | None]:
        """``{run_id: bytes it keeps}``, None where it is not counted yet."""
        ids = builtins.list(run_ids)
        if not ids:
            return {}
        stmt = select(RunRow.id, RunRow.stored_bytes).where(RunRow.id.in_(ids))
        with self._session() as session:
            return {run_id: size for run_id, size in session.execute(stmt)}

    def owned(self, owner: str) -> builtins.list[Run]:
        """Every run of ``owner``, newest first (no limit: the quota counts them all)."""
        stmt = select(RunRow).where(RunRow.owner == owner).order_by(RunRow.created_at.desc())
        with self._session() as session:
            return [Run.from_row(row) for row in session.scalars(stmt)]

    def resumed_by_unfinished(self, run_id: str) -> str | None:
        """A queued or running run that resumes from ``run_id``'s checkpoint, if any."""
        stmt = select(RunRow.id).where(
            RunRow.resume_from == run_id, RunRow.status.in_([QUEUED, RUNNING])
        )
        with self._session() as session:
            return session.scalars(stmt).first()

    def delete_run(self, run_id: str) -> Run:
        """Delete a final run with its metrics and stored artefacts (files in a data dir are the
        caller's). ``RunBusy`` while it is queued or running, or while a run that is resumes
        from it; returns the run as it was."""
        run = self.get(run_id)
        if not run.is_final:
            raise RunBusy(f"run {run_id} is {run.status}: cancel it first, then delete it")
        with self._session() as session, session.begin():
            resuming = session.scalars(
                select(RunRow.id)
                .where(RunRow.resume_from == run_id, RunRow.status.in_([QUEUED, RUNNING]))
                .with_for_update()
            ).first()
            if resuming is not None:
                raise RunBusy(
                    f"run {resuming} is resuming from run {run_id}'s checkpoint: delete it once "
                    "that run has finished"
                )
            session.execute(delete(MetricRow).where(MetricRow.run_id == run_id))
            session.execute(delete(ArtifactRow).where(ArtifactRow.run_id == run_id))
            gone = session.execute(
                delete(RunRow).where(RunRow.id == run_id, RunRow.status.in_(FINAL_STATUSES))
            )
            if not int(getattr(gone, "rowcount", 0) or 0):
                raise RunNotFound(run_id)
            self._notify(session, run_id)
        return run

    def expired(self, before: datetime) -> builtins.list[str]:
        """Final runs created before ``before``, oldest first: what retention deletes."""
        stmt = (
            select(RunRow.id)
            .where(RunRow.status.in_(FINAL_STATUSES), RunRow.created_at < before)
            .order_by(RunRow.created_at)
        )
        with self._session() as session:
            return builtins.list(session.scalars(stmt))

    def owners(self) -> builtins.list[str]:
        """Every learner who owns a run."""
        stmt = select(RunRow.owner).where(RunRow.owner.is_not(None)).distinct()
        with self._session() as session:
            return [owner for owner in session.scalars(stmt) if owner]

    # -- metrics ------------------------------------------------------------------------------

    def add_metrics(
        self,
        run_id: str,
        metrics: Iterable[tuple[int, str, float] | tuple[int, str, float, float]],
        *,
        worker: str | None = None,
    ) -> int:
        """Store a batch in one transaction: one executemany INSERT, not an ORM object per row
        (ten times cheaper, and the supervisor thread shares the web process's GIL). A metric may
        carry a fourth item, the Unix time it was logged at. With ``worker``, only while that
        worker holds the run (``RunLost`` otherwise)."""
        rows = [
            {
                "run_id": run_id,
                "step": int(m[0]),
                "name": str(m[1]),
                "value": float(m[2]),
                "logged_at": float(m[3]) if len(m) > 3 else None,
            }
            for m in metrics
        ]
        if rows:
            with self._session() as session, session.begin():
                self._hold(session, run_id, worker)
                session.execute(insert(MetricRow), rows)
                self._notify(session, run_id)
        return len(rows)

    def last_steps(self, run_id: str) -> dict[str, int]:
        """``{name: the largest step stored}``: where a run continued after its worker died
        carries on without logging a step twice."""
        stmt = (
            select(MetricRow.name, func.max(MetricRow.step))
            .where(MetricRow.run_id == run_id)
            .group_by(MetricRow.name)
        )
        with self._session() as session:
            return {name: int(step) for name, step in session.execute(stmt)}

    def timed_metrics(self, run_id: str) -> builtins.list[tuple[int, str, float, float | None]]:
        """(step, name, value, logged at) in the order they were logged: the TensorBoard files."""
        stmt = (
            select(MetricRow.step, MetricRow.name, MetricRow.value, MetricRow.logged_at)
            .where(MetricRow.run_id == run_id)
            .order_by(MetricRow.id)
        )
        with self._session() as session:
            return [tuple(row) for row in session.execute(stmt)]  # type: ignore[misc]

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
