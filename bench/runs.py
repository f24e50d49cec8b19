"""Training runs: what the app adds to a training loop, how fast a metric reaches a live chart,
and whether the web process stays quick while runs train.

1. Overhead. The app side is the whole trip through a real uvicorn server: POST /api/runs, the
   queue, a forked worker process, metrics over a pipe into SQLite, the TensorBoard event files,
   the checkpoint, and a server-sent-events client following the run to its final status. The
   bare side is the same training function (app/jobs/classifier.py ``train_digits``) called in
   this process, one torch thread like the worker, logging nowhere. Same seed and epochs: the
   final losses must be identical, or the row says so.
2. Latency from a metric being produced to an SSE client reading it. The production time is the
   ``wall_time`` that SummaryWriter stamped on the same metric in the run's event files (the
   worker writes it right after sending the metric), the arrival time is this process's clock
   as each event is parsed; same machine, same clock.
3. /healthz latency in the web process while the maximum number of runs train (one per CPU),
   next to the same server idle.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import torch

from app.jobs import LocalRunner, RunStore
from app.jobs.classifier import DigitsConfig, train_digits
from bench.common import Context, Row, Timing, serve

GROUP = "training runs (app = through the server; bare = the same loop in this process)"
# The task's default (8 epochs, under half a second here), where the fixed costs of a run show
# (a fork, the checkpoint, the TensorBoard summary); and 40 epochs (about two seconds), a run long
# enough to watch, where the cost per step is what remains.
EPOCHS = (8, 40)
FINAL = {"completed", "failed", "cancelled", "interrupted"}


def follow(
    client: httpx.Client, base: str, run_id: str
) -> tuple[str, dict[tuple[str, int], float]]:
    """Read the run's event stream to its end: the final status and each metric's arrival time."""
    arrivals: dict[tuple[str, int], float] = {}
    status = "?"
    event = ""
    with client.stream("GET", f"{base}/api/runs/{run_id}/events", timeout=None) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "metric":
                    arrivals.setdefault((data["name"], data["step"]), time.time())
                elif event == "status":
                    status = data["status"]
    return status, arrivals


def app_run(client: httpx.Client, base: str, epochs: int) -> tuple[float, str, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post(
        f"{base}/api/runs", json={"task": "digits-cnn", "config": {"epochs": epochs, "seed": 0}}
    )
    response.raise_for_status()
    run_id = response.json()["id"]
    status, arrivals = follow(client, base, run_id)
    elapsed = time.perf_counter() - started
    run = client.get(f"{base}/api/runs/{run_id}").json()
    run["arrivals"] = arrivals
    return elapsed, status, run


def bare_run(epochs: int) -> tuple[float, float]:
    losses: list[float] = []

    def emit(step: int, name: str, value: float) -> None:
        if name == "loss":
            losses.append(value)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        train_digits(DigitsConfig(epochs=epochs, seed=0), emit, lambda: False)
        return time.perf_counter() - started, losses[-1]
    finally:
        torch.set_num_threads(threads)


def sse_latencies(data_dir: Path, run: dict[str, Any]) -> list[float]:
    """Arrival minus production time for every metric the stream delivered."""
    from tensorboard.backend.event_processing.event_accumulator import (
        DEFAULT_SIZE_GUIDANCE,
        EventAccumulator,
    )

    events = EventAccumulator(
        str(data_dir / "runs" / run["id"] / "tensorboard"),
        size_guidance={**DEFAULT_SIZE_GUIDANCE, "scalars": 0},
    )
    events.Reload()
    out = []
    for name in events.Tags()["scalars"]:
        for scalar in events.Scalars(name):
            arrived = run["arrivals"].get((name, scalar.step))
            if arrived is not None:
                out.append(arrived - scalar.wall_time)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def healthz(client: httpx.Client, base: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        client.get(f"{base}/healthz").raise_for_status()
        out.append(time.perf_counter() - started)
    return out


def runner_alone(ctx: Context, epochs: int, repeats: int) -> Row:
    """The same run through LocalRunner in this process: a worker, the pipe, the store and the
    TensorBoard files, but no HTTP server and no event stream. The gap between this row and the
    server's shows what the web side adds; the gap to bare, what a run itself costs."""
    data_dir = ctx.tmp / "data-runner"
    store = RunStore(data_dir=data_dir)
    runner = LocalRunner(store, data_dir, max_concurrent=1, poll_s=0.01)

    def one(size: int) -> float:
        started = time.perf_counter()
        run_id = runner.submit("digits-cnn", {"epochs": size, "seed": 0})
        while not store.get(run_id).is_final:
            time.sleep(0.002)
        return time.perf_counter() - started

    try:
        one(1)  # the fork server's start
        app_times, bare_times = [], []
        for _ in range(repeats):
            app_times.append(one(epochs))
            bare_times.append(bare_run(epochs)[0])
    finally:
        runner.shutdown()
        store.close()
    return Row.timed(
        GROUP,
        f"digits-cnn, {epochs} epochs: the runner alone (no HTTP, no SSE)",
        Timing(tuple(app_times)),
        Timing(tuple(bare_times)),
        notes="worker + pipe + store + TensorBoard files",
    )


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    repeats = 2 if ctx.quick else 4
    epochs = (2, 8) if ctx.quick else EPOCHS
    rows.append(runner_alone(ctx, max(epochs), repeats))
    data_dir = ctx.tmp / "data-runs"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with serve(data_dir) as base, httpx.Client(timeout=60.0) as client:
        app_run(client, base, 1)  # warm: the fork server imports torch and loads the digits
        bare_run(1)
        latencies: list[float] = []
        for size in epochs:
            app_times, bare_times = [], []
            same_loss = True
            for _ in range(repeats):  # alternate, so both sides see the same machine
                elapsed, status, result = app_run(client, base, size)
                if status != "completed":
                    raise RuntimeError(f"the benchmark run ended {status}: {result.get('error')}")
                app_times.append(elapsed)
                latencies += sse_latencies(data_dir, result)
                bare_time, bare_loss = bare_run(size)
                bare_times.append(bare_time)
                same_loss &= result["metrics"]["loss"][-1][1] == bare_loss
            rows.append(
                Row.timed(
                    GROUP,
                    f"digits-cnn, {size} epochs: POST to final status",
                    Timing(tuple(app_times)),
                    Timing(tuple(bare_times)),
                    notes=("final loss identical" if same_loss else "FINAL LOSS DIFFERS")
                    + ("; target ratio <= 1.10" if size == max(epochs) else "; fixed costs show"),
                )
            )
        rows.append(
            Row(
                GROUP,
                "metric produced -> SSE client (median; p90 column = p99)",
                "s",
                statistics.median(latencies),
                app_p90=percentile(latencies, 0.99),
                n=len(latencies),
                notes="production time: SummaryWriter's wall_time of the same metric",
            )
        )

        idle = healthz(client, base, ctx.repeat(300))
        launched = [
            client.post(
                f"{base}/api/runs", json={"task": "digits-cnn", "config": {"epochs": 50}}
            ).json()["id"]
            for _ in range(cpus or 1)
        ]
        deadline = time.monotonic() + 60
        while not all(
            client.get(f"{base}/api/runs/{i}").json()["status"] == "running" for i in launched
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the load runs did not start")
            time.sleep(0.05)
        busy = healthz(client, base, ctx.repeat(300))
        for run_id in launched:
            client.post(f"{base}/api/runs/{run_id}/cancel")
        rows.append(
            Row(
                GROUP,
                f"/healthz p99 while {len(launched)} runs train (bare: idle server)",
                "s",
                percentile(busy, 0.99),
                bare=percentile(idle, 0.99),
                app_p90=statistics.median(busy),
                bare_p90=statistics.median(idle),
                n=len(busy),
                notes="app/bare columns: p99; p90 columns: medians",
            )
        )
    return rows
