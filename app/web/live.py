"""Runs in the web process: the store, the runner, and the live event streams of runs.

The runner's supervisor thread writes metrics to the store and then calls ``RunEvents.publish``;
in a class deployment, workers on other hosts write them, and ``StoreListener`` hears of each
commit through PostgreSQL's ``LISTEN``/``NOTIFY`` and publishes it the same way.
A watched run has one :class:`RunFeed`: a single reader on the event loop that wakes on that news
(or every ``STREAM_POLL_S``, so a run written by another process, a second server on the same
database, still reaches it), reads what is new on the streams' own small executor, and hands it
to every stream of the run already encoded. Two hundred streams of one run cost one store read,
not four hundred a second, and never a thread of the pool that answers pages and ``/healthz``.
The feed also keeps the run's newest metrics encoded in memory (bounded per feed and in all), so
a stream that joins late, or reconnects from the start again and again, replays from there.

A stream asked for smoothed values (``?smoothing=``) carries each metric's value through
``app.lessons.tracking.Smoother`` too, as ``smooth()`` would over the run's whole series: its
state is rebuilt from the stored metrics up to where the stream starts (a reconnect's
``Last-Event-ID`` included), and such a stream encodes its own events instead of sharing the feed's.

:class:`StreamHub` also bounds the streams: ``max_streams`` open in all, ``max_streams_per_run``
on one run and ``max_streams_per_client`` from one client; past a bound a new stream is refused
with :class:`TooBusy` (429) before it starts.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi.sse import format_sse_event

from app.config import Settings
from app.jobs import LocalRunner, Runner, RunStore
from app.jobs.artifacts import Artifacts, DirArtifacts, StoredArtifacts
from app.jobs.store import NOTIFY_CHANNEL, MetricEvent, Run, RunNotFound, run_dir
from app.lessons.tracking import Smoother
from app.web.admission import TooBusy

T = TypeVar("T")

log = logging.getLogger("app.streams")

# A feed re-reads the store at least this often, even when no one has told it of news.
STREAM_POLL_S = 1.0
# The last status a stream sends for a run deleted while it was followed.
DELETED = "deleted"
# ... and at most this often: a run that logs hundreds of metrics a second wakes its streams a
# few dozen times a second, each time with everything new.
FEED_MIN_INTERVAL_S = 0.025
# A late client replays the metrics it missed in pages of this many rows.
REPLAY_PAGE = 2_000
# A stream whose client reads slower than its run logs keeps at most this many metrics waiting in
# memory; past it they are dropped there and the stream re-reads them from the store.
MAX_PENDING_METRICS = 10_000
# Store reads of the live streams run in this many threads of their own.
STREAM_READ_THREADS = 2
# Seconds a client refused a stream is told to wait before it asks again.
STREAM_RETRY_AFTER_S = 10
# A watched run's feed keeps its newest metrics encoded (about 160 bytes each), so a stream that
# joins late, or reconnects from the start again and again, replays from memory: no store read,
# no encoding. At most this many per feed, and this many over all feeds; past that, the store.
FEED_CACHED_METRICS = 50_000
HUB_CACHED_METRICS = 250_000


class RunEvents:
    """Thread-safe "this run has news" notifications for asyncio waiters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def watched(self) -> list[str]:
        """The runs someone waits on now."""
        with self._lock:
            return list(self._waiters)

    def publish(self, run_id: str) -> None:
        """Wake every waiter on ``run_id``; callable from any thread."""
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


def metric_event(metric: MetricEvent) -> bytes:
    """One metric as the stream sends it (``event: metric``, its row id as the event id)."""
    data = json.dumps({"step": metric.step, "name": metric.name, "value": metric.value})
    return format_sse_event(data_str=data, event="metric", id=str(metric.id))


class MetricSmoother:
    """One stream's smoothing: a ``Smoother`` per metric name, fed every metric in id order."""

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.by_name: dict[str, Smoother] = {}

    def __call__(self, metric: MetricEvent) -> float:
        smoother = self.by_name.get(metric.name)
        if smoother is None:
            smoother = self.by_name[metric.name] = Smoother(self.weight)
        return smoother(metric.value)

    def event(self, metric: MetricEvent) -> bytes:
        """The metric as ``metric_event`` sends it, with ``smoothed`` added."""
        data = json.dumps(
            {"step": metric.step, "name": metric.name, "value": metric.value,
             "smoothed": self(metric)}
        )  # fmt: skip
        return format_sse_event(data_str=data, event="metric", id=str(metric.id))


def status_event(status: str, progress: float) -> bytes:
    """A run's status as the stream sends it (``event: status``)."""
    data = json.dumps({"status": status, "progress": progress})
    return format_sse_event(data_str=data, event="status")


HEARTBEAT = format_sse_event(comment="heartbeat")


@dataclass(frozen=True)
class Snapshot:
    """One read of a run: its status, whether its stream may end, and the metrics new since the
    feed's previous read (each with its encoded event, made once for every stream)."""

    status: str
    progress: float
    final: bool
    # Final and let go of by the runner: a cancelled run is final in the store at once, but its
    # worker may still be handing over metrics, so the stream ends only after the runner is done.
    ended: bool
    metrics: tuple[MetricEvent, ...] = ()
    encoded: tuple[bytes, ...] = ()
    joined: bytes = b""  # every encoded metric, for a stream that has seen none of them

    @property
    def first_id(self) -> int:
        return self.metrics[0].id if self.metrics else 0


@dataclass(eq=False)
class Watcher:
    """One stream's mailbox on its run's feed: the snapshots published since it last looked."""

    pending: deque[Snapshot] = field(default_factory=deque)
    pending_metrics: int = 0
    # True when the stream must (re)read metrics from the store: at its start, and after its
    # backlog was dropped for being over ``MAX_PENDING_METRICS``.
    behind: bool = True
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def post(self, snapshot: Snapshot) -> None:
        if self.pending_metrics + len(snapshot.metrics) > MAX_PENDING_METRICS:
            self.pending.clear()
            self.pending_metrics = 0
            self.behind = True
        else:
            self.pending.append(snapshot)
            self.pending_metrics += len(snapshot.metrics)
        self.wake.set()

    def take(self) -> list[Snapshot]:
        out = list(self.pending)
        self.pending.clear()
        self.pending_metrics = 0
        return out


class RunFeed:
    """The one reader of a watched run: reads the store on news and fans it out to the watchers."""

    def __init__(self, hub: StreamHub, run_id: str) -> None:
        self.hub = hub
        self.run_id = run_id
        self.watchers: set[Watcher] = set()
        self.latest: Snapshot | None = None
        self.ready = asyncio.Event()
        # The encoded metrics with ids over ``cached_after``, oldest first (None: not caching).
        self.cached_after: int | None = None
        self.cached_ids: list[int] = []
        self.cached: list[bytes] = []
        self.task = asyncio.get_running_loop().create_task(self._follow())

    def _load(self) -> tuple[int, list[int], list[bytes]]:
        """Runs on the streams' executor: the run's newest ``FEED_CACHED_METRICS`` metrics,
        encoded, and the id after which they are complete."""
        after, ids, encoded = 0, deque[int](), deque[bytes]()
        cursor = 0
        while page := self.hub.store.metrics_since(self.run_id, cursor, REPLAY_PAGE):
            for metric in page:
                ids.append(metric.id)
                encoded.append(metric_event(metric))
            cursor = page[-1].id
            while len(ids) > FEED_CACHED_METRICS:
                after = ids.popleft()
                encoded.popleft()
        return after, list(ids), list(encoded)

    def _cache(self, snapshot: Snapshot) -> None:
        """Keep the snapshot's encoded metrics, within the feed's and the hub's bounds."""
        if self.cached_after is None or not snapshot.metrics:
            return
        if self.hub.cached_metrics + len(snapshot.metrics) > HUB_CACHED_METRICS:
            self.forget()  # every feed's memory is full: this one's streams use the store
            return
        self.cached_ids.extend(m.id for m in snapshot.metrics)
        self.cached.extend(snapshot.encoded)
        self.hub.cached_metrics += len(snapshot.metrics)
        over = len(self.cached) - FEED_CACHED_METRICS
        if over > FEED_CACHED_METRICS // 10:  # trimmed in batches: a list's front is dear
            self.cached_after = self.cached_ids[over - 1]
            del self.cached_ids[:over], self.cached[:over]
            self.hub.cached_metrics -= over

    def cached_page(self, after: int, limit: int) -> tuple[int, bytes] | None:
        """Up to ``limit`` encoded metrics after id ``after`` from memory, as (the last id, the
        bytes); None when memory does not hold every metric after ``after``."""
        if self.cached_after is None or after < self.cached_after:
            return None
        start = bisect.bisect_right(self.cached_ids, after)
        chunk = self.cached[start : start + limit]
        if not chunk:
            return after, b""
        return self.cached_ids[start + len(chunk) - 1], b"".join(chunk)

    def forget(self) -> None:
        """Give the cache's share back (the feed is over)."""
        self.hub.cached_metrics -= len(self.cached)
        self.cached_after, self.cached_ids, self.cached = None, [], []

    def _read(self, after: int) -> Snapshot:
        """Runs on the streams' executor: the runner first, then the run, then its metrics.

        A run is marked completed only after its last metric is stored, so metrics read after a
        final status include every one of them.
        """
        held = self.hub.runner.position(self.run_id) is not None
        try:
            run = self.hub.store.get(self.run_id)
        except RunNotFound:  # deleted while followed: the stream says so and ends
            empty: tuple[Any, ...] = ()
            return Snapshot(DELETED, 1.0, True, True, empty, empty, b"")
        fresh = self.hub.store.metrics_since(self.run_id, after)
        encoded = tuple(metric_event(m) for m in fresh)
        return Snapshot(
            status=run.status,
            progress=round(run.progress, 4),
            final=run.is_final,
            ended=run.is_final and not held,
            metrics=tuple(fresh),
            encoded=encoded,
            joined=b"".join(encoded),
        )

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        # Subscribed before the first read, so news published after any read wakes the next.
        with self.hub.events.subscribe(self.run_id) as news:
            cursor: int | None = None  # the newest metric id read; each stream replays the rest
            while self.hub._feeds.get(self.run_id) is self:  # else every stream has left it
                news.clear()
                started = loop.time()
                try:
                    if cursor is None and self.hub.cached_metrics < HUB_CACHED_METRICS:
                        after, ids, encoded = await self.hub.read(self._load)
                        self.cached_after, self.cached_ids, self.cached = after, ids, encoded
                        self.hub.cached_metrics += len(encoded)
                        cursor = ids[-1] if ids else after
                    elif cursor is None:
                        cursor = await self.hub.read(self.hub.store.last_metric_id, self.run_id)
                    snapshot = await self.hub.read(self._read, cursor)
                except Exception:  # noqa: BLE001 - a locked or failing store: try again later
                    log.warning("run %s: reading its news for the live streams failed", self.run_id)
                    await asyncio.sleep(STREAM_POLL_S)
                    continue
                if snapshot.metrics:
                    cursor = snapshot.metrics[-1].id
                self._cache(snapshot)
                self.latest = snapshot
                self.ready.set()
                for watcher in self.watchers:
                    watcher.post(snapshot)
                if snapshot.ended:
                    return  # nothing more will happen to this run
                # Not asyncio.wait_for: on Python 3.11 it can swallow a cancel that comes as the
                # wait ends, and a cancelled feed would read on for no one.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STREAM_POLL_S):
                        await news.wait()
                await asyncio.sleep(max(0.0, started + FEED_MIN_INTERVAL_S - loop.time()))


@dataclass
class StreamTicket:
    """A place among the open streams, held from before the response starts until it is over."""

    run_id: str
    client: str
    released: bool = False


class StreamHub:
    """The open event streams: their bounds, one feed per watched run, and their store reads."""

    def __init__(
        self, store: RunStore, runner: Runner, events: RunEvents, settings: Settings
    ) -> None:
        self.store = store
        self.runner = runner
        self.events = events
        self.max_streams = settings.max_streams
        self.max_per_run = settings.max_streams_per_run
        self.max_per_client = settings.max_streams_per_client
        self.heartbeat_s = settings.stream_heartbeat_seconds
        self._executor = ThreadPoolExecutor(STREAM_READ_THREADS, thread_name_prefix="run-streams")
        self._lock = threading.Lock()
        self._open = 0
        self._per_run: dict[str, int] = {}
        self._per_client: dict[str, int] = {}
        self._feeds: dict[str, RunFeed] = {}
        self.cached_metrics = 0  # encoded metrics the feeds keep in memory, in all

    @property
    def open_streams(self) -> int:
        """Streams open now (admitted and not yet over)."""
        return self._open

    def streams_on(self, run_id: str) -> int:
        """Streams open now on ``run_id`` (retention keeps a run someone follows)."""
        with self._lock:
            return self._per_run.get(run_id, 0)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the streams' own threads: a store read never waits in, nor fills, the
        pool that answers pages."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))

    def admit(self, run_id: str, client: str) -> StreamTicket:
        """A place for one more stream, or :class:`TooBusy` naming the bound it would pass."""
        with self._lock:
            mine = self._per_client.get(client, 0)
            if mine >= self.max_per_client:
                raise TooBusy(
                    f"You already have {mine} live event streams open, the most one client may "
                    f"have (setting max_streams_per_client = {self.max_per_client}): close a tab "
                    "that watches a run, then try again.",
                    "max_streams_per_client",
                    STREAM_RETRY_AFTER_S,
                )
            on_run = self._per_run.get(run_id, 0)
            if on_run >= self.max_per_run:
                raise TooBusy(
                    f"Run {run_id} already has {on_run} live event streams open, the most one run "
                    f"may have (setting max_streams_per_run = {self.max_per_run}): try again "
                    "when someone stops watching it, or read it with GET /api/runs/{id}.",
                    "max_streams_per_run",
                    STREAM_RETRY_AFTER_S,
                )
            if self._open >= self.max_streams:
                raise TooBusy(
                    f"The server already has {self._open} live event streams open, the most it "
                    f"keeps (setting max_streams = {self.max_streams}): try again in a moment.",
                    "max_streams",
                    STREAM_RETRY_AFTER_S,
                )
            self._open += 1
            self._per_run[run_id] = on_run + 1
            self._per_client[client] = mine + 1
        return StreamTicket(run_id, client)

    def release(self, ticket: StreamTicket) -> None:
        """Give the ticket's place back (once; later calls do nothing)."""
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            self._open -= 1
            for counts, key in ((self._per_run, ticket.run_id), (self._per_client, ticket.client)):
                left = counts.get(key, 1) - 1
                if left > 0:
                    counts[key] = left
                else:
                    counts.pop(key, None)

    def _join(self, run_id: str) -> tuple[RunFeed, Watcher]:
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = RunFeed(self, run_id)
        watcher = Watcher()
        feed.watchers.add(watcher)
        return feed, watcher

    def _leave(self, feed: RunFeed, watcher: Watcher) -> None:
        feed.watchers.discard(watcher)
        if not feed.watchers and self._feeds.get(feed.run_id) is feed:
            del self._feeds[feed.run_id]
            feed.task.cancel()
            feed.forget()

    def smoother_at(self, run_id: str, after: int, weight: float) -> MetricSmoother:
        """Runs on the streams' executor: a smoother fed the run's metrics up to id ``after``."""
        smoother = MetricSmoother(weight)
        cursor = 0
        while cursor < after and (page := self.store.metrics_since(run_id, cursor, REPLAY_PAGE)):
            for metric in page:
                if metric.id > after:
                    return smoother
                smoother(metric)
            cursor = page[-1].id
        return smoother

    async def stream(
        self,
        run_id: str,
        after: int,
        done: Callable[[], None],
        smoothing: float | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The run's events after metric id ``after``, then its final status; ``done()`` is
        called when the stream has said everything (not when its client went away). With
        ``smoothing``, each metric also carries its value smoothed at that weight."""
        feed, watcher = self._join(run_id)
        try:
            smoother = None
            if smoothing is not None:
                smoother = await self.read(self.smoother_at, run_id, after, smoothing)
            encode = metric_event if smoother is None else smoother.event
            await feed.ready.wait()
            seen = after
            sent: tuple[str, float] | None = None
            while True:
                out: list[bytes] = []
                if watcher.behind:
                    watcher.behind = False
                    watcher.take()
                    # The status as of now: anything published after lands in the mailbox, and
                    # everything published before is in the store for the reads below.
                    base = feed.latest
                    # The feed's memory holds its events as every unsmoothed stream sends them.
                    cached = None
                    while (
                        smoother is None
                        and (cached := feed.cached_page(seen, REPLAY_PAGE)) is not None
                    ):
                        last, block = cached
                        if not block:
                            break
                        seen = last
                        yield block
                    while cached is None:  # older than the feed's memory: from the store
                        page = await self.read(self.store.metrics_since, run_id, seen, REPLAY_PAGE)
                        out.extend(encode(m) for m in page)
                        if page:
                            seen = page[-1].id
                        if len(page) < REPLAY_PAGE:
                            break
                        yield b"".join(out)
                        out = []
                    snapshots = watcher.take()
                    status = snapshots[-1] if snapshots else base
                else:
                    snapshots = watcher.take()
                    status = snapshots[-1] if snapshots else None
                for snapshot in snapshots:
                    if not snapshot.metrics:
                        continue
                    if smoother is None and snapshot.first_id > seen:  # all new: one block
                        out.append(snapshot.joined)
                        seen = snapshot.metrics[-1].id
                        continue
                    for metric, encoded in zip(snapshot.metrics, snapshot.encoded, strict=True):
                        if metric.id > seen:
                            seen = metric.id
                            out.append(encoded if smoother is None else smoother.event(metric))
                ended = status is not None and status.ended
                said = None if status is None else (status.status, status.progress)
                if status is not None and (ended or not status.final) and said != sent:
                    sent = said
                    out.append(status_event(status.status, status.progress))
                if out:
                    yield b"".join(out)
                if ended:
                    done()
                    return
                if not watcher.pending and not watcher.behind:
                    watcher.wake.clear()
                    with anyio.move_on_after(self.heartbeat_s) as idle:
                        await watcher.wake.wait()
                    if idle.cancelled_caught:
                        yield HEARTBEAT  # keeps an idle stream, and the proxies on its way, open
        finally:
            self._leave(feed, watcher)

    def close(self) -> None:
        """Stop every feed and the reader threads (at the app's shutdown)."""
        for feed in list(self._feeds.values()):
            feed.task.cancel()
            feed.forget()
        self._feeds.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


class StoreListener:
    """PostgreSQL ``LISTEN explorer_runs``: every commit that adds news about a run, from any
    process on any host, wakes that run's streams here (``RunEvents.publish``). One thread and one
    connection per web process; after a lost connection it reconnects and wakes every watched run,
    whose feeds then read the store for what they missed."""

    RECONNECT_S = 0.5

    def __init__(self, url: str, events: RunEvents) -> None:
        from sqlalchemy.engine import make_url

        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.events = events
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-listener", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            for run_id in self.events.watched():  # news may have come while not listening
                self.events.publish(run_id)
            while not self._stop.is_set():
                for note in conn.notifies(timeout=1.0):
                    self.events.publish(note.payload)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - the store is unreachable: try again
                log.warning("listening for run news failed (%s); reconnecting", exc)
                self._stop.wait(self.RECONNECT_S)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)


@dataclass
class Runs:
    """What the routes need: where runs are stored, who runs them, who hears of changes, the live
    streams, and where the runs' files are read from."""

    store: RunStore
    runner: Runner
    events: RunEvents
    data_dir: Path
    streams: StreamHub
    artifacts: Artifacts
    listener: StoreListener | None = None

    def artifacts_dir(self, run_id: str) -> Path:
        """Alone: the run's folder in the data dir, where its worker writes its files."""
        return run_dir(self.data_dir, run_id)

    def delete(self, run_id: str) -> Run:
        """Forget a final run and delete every file it keeps (``RunBusy`` while it is queued or
        running, or while a run that is resumes from it). A stream still open on it ends."""
        run = self.store.delete_run(run_id)
        self.artifacts.remove(run_id)
        self.events.publish(run_id)
        return run

    def close(self) -> None:
        self.runner.shutdown()
        if self.listener is not None:
            self.listener.close()
        self.streams.close()
        self.store.close()


def start_runs(settings: Settings) -> Runs:
    """Open the store and start the runner. Alone: mark what a previous server left running as
    interrupted, and train on this host. In a class deployment (``runner = "celery"``): send runs
    to the Celery workers, read their files from the store, and listen for their news."""
    data_dir = Path(settings.data_dir)
    store = RunStore(settings.database_url, data_dir=data_dir)
    events = RunEvents()
    listener = StoreListener(store.url, events) if store.is_postgresql else None
    runner: Runner
    artifacts: Artifacts
    if settings.runner == "celery":
        from app.jobs.class_runner import CeleryRunner

        artifacts = StoredArtifacts(store, data_dir / "cache" / "runs")
        runner = CeleryRunner(store, artifacts, settings)
    else:
        artifacts = DirArtifacts(data_dir)
        runner = LocalRunner(
            store,
            data_dir,
            max_concurrent=settings.runs_max_concurrent or None,
            max_queue=settings.runs_max_queue,
            max_per_learner=settings.runs_max_per_learner,
            time_limit_s=settings.runs_max_seconds,
            threads_per_run=settings.runs_torch_threads,
            on_change=events.publish,
            recover=True,
        )
    streams = StreamHub(store, runner, events, settings)
    return Runs(store, runner, events, data_dir, streams, artifacts, listener)
