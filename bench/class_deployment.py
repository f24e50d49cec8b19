"""Training runs through a class deployment (issue 15): two web processes, Celery workers, Redis
and PostgreSQL (``app.deploy.ClassDeployment``, what ``make class`` starts), on this machine.

1. Overhead. A digits-cnn run is POSTed to web process A, trained by a Celery worker and followed
   over server-sent events on web process B to its final status. The bare side is the same
   ``train_digits`` loop in this process, one torch thread like the worker, logging nowhere
   (``bench.runs.bare_run``). Same seed and epochs: the final losses must be identical, or the
   row says so.
2. Latency from a worker logging a metric to a client on web B reading it. The production time is
   the metrics table's ``logged_at`` (the worker's clock as the loop logged it; its commit, whose
   NOTIFY wakes web B, follows within ``class_worker.FLUSH_S``), the arrival time is this
   process's clock as each event is parsed: same machine, same clock. Only metrics logged after
   the stream opened count (earlier ones are a replay, not a live update).
3. Throughput: a burst of default digits runs submitted at once (alternately to web A and B),
   timed from the first submit to the last ``finished_at`` in the store, with 2 workers and with
   1 (the second told to stop consuming, so the rounds alternate on warm workers); against the
   same runs trained one after another here.

The deployment has a PostgreSQL database of its own (``explorer_bench_<pid>``, dropped at the
end), Redis database 12 as its broker (flushed before and after) and ports from 8700.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy import Engine, bindparam, create_engine, text

from app.config import Settings
from app.deploy import ClassDeployment, drop_database, flush_broker
from app.jobs.classifier import DigitsConfig
from bench.common import Context, Row, Timing
from bench.runs import bare_run, percentile

GROUP = "class deployment (app = POST on web A, Celery worker, SSE on web B; bare = the loop here)"
DATABASE = f"postgresql+psycopg://postgres@127.0.0.1:5432/explorer_bench_{os.getpid()}"
BROKER = "redis://127.0.0.1:6379/12"
PORT = 8700
ENV = {
    # The bench measures runs: the web processes' start-up work for learners would only compete.
    "EXPLORER_WARM_LESSONS": "false",
    "EXPLORER_PROGRAM_PREWARM": "false",
    "EXPLORER_PICTURE_PREWARM": "false",
    "EXPLORER_LOG_LEVEL": "warning",
}
EPOCHS = (8, 40)  # as bench/runs.py: where the fixed costs show, and where the cost per step does
BURST = 12  # runs submitted at once for the throughput rows
ROUNDS = 3  # bursts with 2 workers and with 1, alternating
QUEUE = Settings.model_fields["runs_queue_name"].default  # the deployment keeps the default
FINAL = {"completed", "failed", "cancelled", "interrupted"}
LATENCY_TARGET_S = 0.100


@contextlib.contextmanager
def deployment(ctx: Context, workers: int) -> Iterator[ClassDeployment]:
    """A class deployment on a fresh database and broker; everything stopped and dropped after."""
    flush_broker(BROKER)
    running = ClassDeployment(
        database_url=DATABASE,
        broker_url=BROKER,
        webs=2,
        workers=workers,
        port=PORT,
        data_dir=ctx.tmp / "class",
        env=dict(ENV),
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        drop_database(DATABASE)
        flush_broker(BROKER)


def follow(client: httpx.Client, base: str, run_id: str) -> tuple[str, float, dict[int, float]]:
    """Read the run's event stream to its end: its final status, when the stream opened, and each
    metric's arrival time by its event id (the metric's row id in the store)."""
    arrivals: dict[int, float] = {}
    status = "?"
    fields: dict[str, str] = {}
    with client.stream("GET", f"{base}/api/runs/{run_id}/events", timeout=None) as stream:
        stream.raise_for_status()
        opened = time.time()
        for line in stream.iter_lines():
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            # A blank line ends an event.
            if fields.get("event") == "metric" and "id" in fields:
                arrivals.setdefault(int(fields["id"]), time.time())
            elif fields.get("event") == "status" and "data" in fields:
                status = json.loads(fields["data"])["status"]
            fields = {}
    return status, opened, arrivals


def class_run(
    client: httpx.Client, urls: list[str], config: dict[str, Any]
) -> tuple[float, str, str, float, dict[int, float]]:
    """POST a digits-cnn run to web A, follow it on web B: (seconds, run id, final status, when
    the stream opened, arrivals)."""
    started = time.perf_counter()
    response = client.post(f"{urls[0]}/api/runs", json={"task": "digits-cnn", "config": config})
    response.raise_for_status()
    run_id = response.json()["id"]
    status, opened, arrivals = follow(client, urls[-1], run_id)
    return time.perf_counter() - started, run_id, status, opened, arrivals


def live_latencies(
    engine: Engine, run_id: str, opened: float, arrivals: dict[int, float]
) -> list[float]:
    """Arrival minus ``logged_at`` for every metric logged after the stream opened."""
    query = text("SELECT id, logged_at FROM metrics WHERE run_id = :run AND logged_at IS NOT NULL")
    with engine.connect() as conn:
        logged = conn.execute(query, {"run": run_id}).all()
    return [arrivals[i] - at for i, at in logged if at >= opened and i in arrivals]


def overhead(
    ctx: Context, client: httpx.Client, engine: Engine, urls: list[str]
) -> tuple[list[Row], list[float]]:
    rows: list[Row] = []
    latencies: list[float] = []
    repeats = 2 if ctx.quick else 4
    sizes = (2, 8) if ctx.quick else EPOCHS
    for size in sizes:
        app_times, bare_times = [], []
        same_loss = True
        for _ in range(repeats):  # alternate, so both sides see the same machine
            elapsed, run_id, status, opened, arrivals = class_run(
                client, urls, {"epochs": size, "seed": 0}
            )
            run = client.get(f"{urls[-1]}/api/runs/{run_id}").raise_for_status().json()
            if status != "completed":
                raise RuntimeError(f"the benchmark run ended {status}: {run.get('error')}")
            app_times.append(elapsed)
            latencies += live_latencies(engine, run_id, opened, arrivals)
            bare_time, bare_loss = bare_run(size)
            bare_times.append(bare_time)
            same_loss &= run["metrics"]["loss"][-1][1] == bare_loss
        rows.append(
            Row.timed(
                GROUP,
                f"digits-cnn, {size} epochs: POST on A to final status on B",
                Timing(tuple(app_times)),
                Timing(tuple(bare_times)),
                notes=("final loss identical" if same_loss else "FINAL LOSS DIFFERS")
                + ("; fixed costs show" if size == sizes[0] else ""),
            )
        )
    return rows, latencies


def burst(client: httpx.Client, engine: Engine, urls: list[str], n: int) -> float:
    """Submit ``n`` default digits runs at once, alternately to each web process; seconds from
    the first submit to the last run's ``finished_at`` (the worker's clock, as this one)."""
    started = time.time()
    ids = []
    for i in range(n):
        response = client.post(f"{urls[i % len(urls)]}/api/runs", json={"task": "digits-cnn"})
        ids.append(response.raise_for_status().json()["id"])
    query = text(
        "SELECT status, EXTRACT(EPOCH FROM finished_at) FROM runs WHERE id IN :ids"
    ).bindparams(bindparam("ids", expanding=True))
    deadline = time.monotonic() + 600
    while True:
        with engine.connect() as conn:
            found = conn.execute(query, {"ids": ids}).all()
        if len(found) == n and all(status in FINAL for status, _ in found):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{n} runs not finished after 600 s: {found}")
        time.sleep(0.1)
    ended = [status for status, _ in found if status != "completed"]
    if ended:
        raise RuntimeError(f"burst runs ended {ended}")
    return max(float(at) for _, at in found) - started


def consuming(running: ClassDeployment, worker: int, on: bool) -> None:
    """Have worker number ``worker`` (1-based) take runs from the queue, or stop taking them
    (Celery's remote control: the process stays up and warm, so 1 and 2 workers can alternate)."""
    from celery import Celery

    node = f"worker{worker}@{socket.gethostname()}"  # ClassDeployment names them worker<i>@%h
    app = Celery("bench", broker=running.broker_url, set_as_current=False)
    try:
        command = app.control.add_consumer if on else app.control.cancel_consumer
        replies = command(QUEUE, destination=[node], reply=True, timeout=10)
    finally:
        app.close()
    if not any(node in reply and "ok" in reply[node] for reply in replies or []):
        raise RuntimeError(f"{node} did not {'resume' if on else 'stop'} consuming: {replies}")


def throughput(
    ctx: Context, client: httpx.Client, engine: Engine, running: ClassDeployment
) -> list[Row]:
    """Bursts with 2 workers and with 1 (the second told to stop consuming), alternating, each
    beside the same runs trained one after another in this process."""
    n = 4 if ctx.quick else BURST
    epochs = DigitsConfig().epochs
    makespans: dict[int, list[float]] = {1: [], 2: []}
    bare: list[float] = []
    for _ in range(1 if ctx.quick else ROUNDS):
        makespans[2].append(burst(client, engine, running.urls, n))
        consuming(running, 2, on=False)
        try:
            makespans[1].append(burst(client, engine, running.urls, n))
        finally:
            consuming(running, 2, on=True)
        bare.append(sum(bare_run(epochs)[0] for _ in range(n)))  # one core, one after another
    per_minute = {w: 60.0 * n / statistics.median(s) for w, s in makespans.items()}
    speedup = per_minute[2] / per_minute[1]
    rows = []
    for workers in (1, 2):
        rows.append(
            Row.timed(
                GROUP,
                f"{n} default digits runs at once, first submit to last done: {workers} "
                f"worker{'s' if workers > 1 else ''} (bare: one after another here)",
                Timing(tuple(makespans[workers])),
                Timing(tuple(bare)),
                notes=f"{per_minute[workers]:.0f} runs/min"
                + (f"; {speedup:.2f}x the runs/min of 1 worker" if workers == 2 else ""),
                runs_per_minute=per_minute[workers],
                workers=workers,
            )
        )
    rows[-1].extra["runs_per_minute_2_over_1"] = speedup
    return rows


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    engine = create_engine(DATABASE, pool_pre_ping=True)
    try:
        with deployment(ctx, workers=2) as running, httpx.Client(timeout=60.0) as client:
            urls = running.urls
            class_run(client, urls, {"epochs": 1, "seed": 0})  # warm: the first run's imports
            bare_run(1)
            timed, latencies = overhead(ctx, client, engine, urls)
            rows += timed
            p99 = percentile(latencies, 0.99)
            rows.append(
                Row(
                    GROUP,
                    "metric logged on a worker -> SSE client on web B (median; p90 column = p99)",
                    "s",
                    statistics.median(latencies),
                    app_p90=p99,
                    n=len(latencies),
                    notes=f"logged_at in the store; target p99 <= {LATENCY_TARGET_S * 1e3:.0f} ms"
                    + ("" if p99 <= LATENCY_TARGET_S else " MISSED"),
                )
            )
            rows += throughput(ctx, client, engine, running)
    finally:
        engine.dispose()
    return rows
