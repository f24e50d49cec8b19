"""Training runs over HTTP (API.md "Training runs"): launch, list, watch live, cancel, download.

The routes only talk to ``request.app.state.runs`` (a store, a ``Runner`` and the live-event
bridge), so a distributed runner can replace the local one without touching this file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from app.jobs import all_tasks
from app.jobs.store import Run as StoredRun
from app.jobs.tasks import CHECKPOINT_FILE, STATE_DICT_FILE
from app.jobs.tracking import TENSORBOARD_DIR, ArtifactMissing, tensorboard_zip
from app.web.deps import SettingsDep
from app.web.live import Runs
from app.web.schemas import error_responses

router = APIRouter(tags=["runs"])

# A route under /api/runs/{run_id} answers 404 when there is no such run.
NO_RUN = error_responses(404)

# A stream re-reads the store at least this often, even when no one has told it of news.
STREAM_POLL_S = 1.0


class TaskField(BaseModel):
    name: str
    default: Any = None
    type: str | None = None
    enum: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusiveMinimum: float | None = None  # noqa: N815 - JSON Schema's own spelling
    description: str | None = None


class TaskInfo(BaseModel):
    name: str
    description: str
    fields: list[TaskField] = Field(description="config fields with defaults and bounds")


class TasksResponse(BaseModel):
    tasks: list[TaskInfo]


class RunRequest(BaseModel):
    task: str = Field(examples=["linear-regression"])
    config: dict[str, Any] = Field(
        default_factory=dict, examples=[{"stage": "nn", "epochs": 50, "learning_rate": 0.1}]
    )
    resume_from: str | None = Field(
        default=None, description="continue from this run's checkpoint (same task)"
    )


class RunCreated(BaseModel):
    id: str
    status: str


class RunModel(BaseModel):
    id: str
    task: str
    status: str = Field(description="queued, running, completed, failed, cancelled, interrupted")
    config: dict[str, Any]
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: str | None
    progress: float = Field(description="0..1")
    resume_from: str | None = None
    position: int | None = Field(
        default=None, description="1-based place in line while queued, 0 while running"
    )
    eta_seconds: float | None = Field(
        default=None, description="time left at the current pace, while running"
    )
    metrics: dict[str, list[list[float]]] = Field(
        default_factory=dict, description='{"<name>": [[step, value], ...]}'
    )


class RunsResponse(BaseModel):
    runs: list[RunModel]


class CancelResponse(BaseModel):
    status: str


def runs_of(request: Request) -> Runs:
    runs: Runs = request.app.state.runs
    return runs


def eta_seconds(run: StoredRun, now: datetime | None = None) -> float | None:
    """Elapsed x (1 - p) / p: the time left if the run keeps its pace so far."""
    if run.status != "running" or run.started_at is None or run.progress <= 0:
        return None
    elapsed = ((now or datetime.now(UTC)) - run.started_at).total_seconds()
    return max(0.0, elapsed * (1 - run.progress) / run.progress)


def describe(runs: Runs, run: StoredRun, with_metrics: bool) -> RunModel:
    return RunModel(
        **run.to_dict(),
        position=runs.runner.position(run.id) if not run.is_final else None,
        eta_seconds=eta_seconds(run),
        metrics=runs.store.metrics(run.id) if with_metrics else {},
    )


def stored_run(runs: Runs, run_id: str) -> StoredRun:
    """The run; ``RunNotFound`` (a 404 naming the id) when there is none."""
    return runs.store.get(run_id)


def existing_run(run_id: str, request: Request) -> StoredRun:
    """As a dependency: a stream answers 404 before it starts, not an error mid-stream."""
    return stored_run(runs_of(request), run_id)


@router.get("/api/tasks")
def tasks() -> TasksResponse:
    """Every task a run can train, with its config fields, defaults and bounds."""
    return TasksResponse(tasks=[TaskInfo(**t.describe()) for t in all_tasks()])


@router.post("/api/runs", status_code=202, responses=error_responses(429))
def create_run(body: RunRequest, request: Request) -> RunCreated:
    """Validate and queue a run. 422 names a bad config field and its bound; 429 when the queue
    is full (``Retry-After`` says when to try again)."""
    runs = runs_of(request)
    run_id = runs.runner.submit(body.task, body.config, body.resume_from)
    return RunCreated(id=run_id, status=runs.store.get(run_id).status)


@router.get("/api/runs")
def list_runs(
    request: Request,
    settings: SettingsDep,
    metrics: Annotated[bool, Query(description="include each run's metrics")] = False,
) -> RunsResponse:
    """Runs, newest first (at most ``runs_max_listed``)."""
    runs = runs_of(request)
    listed = runs.store.list(limit=settings.runs_max_listed)
    return RunsResponse(runs=[describe(runs, run, metrics) for run in listed])


@router.get("/api/runs/{run_id}", responses=NO_RUN)
def get_run(run_id: str, request: Request) -> RunModel:
    """One run with every metric logged so far."""
    runs = runs_of(request)
    return describe(runs, stored_run(runs, run_id), with_metrics=True)


@router.post("/api/runs/{run_id}/cancel", responses=NO_RUN)
def cancel_run(run_id: str, request: Request) -> CancelResponse:
    """Stop a queued or running run; a finished run keeps its status."""
    runs = runs_of(request)
    stored_run(runs, run_id)
    return CancelResponse(status=runs.runner.cancel(run_id))


@router.get("/api/runs/{run_id}/events", response_class=EventSourceResponse, responses=NO_RUN)
async def run_events(
    run_id: str,
    request: Request,
    _exists: Annotated[StoredRun, Depends(existing_run)],
    after: Annotated[int, Query(ge=0, description="replay metrics after this event id")] = 0,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: ``metric`` ``{step, name, value}`` and ``status`` ``{status,
    progress}``. A late client first gets every metric it missed; the stream ends after a final
    status, which comes after the run's last metric. Each metric's ``id`` lets a reconnecting
    browser resume (``Last-Event-ID``)."""
    runs = runs_of(request)
    seen = max(after, last_event_id or 0)
    sent_status: tuple[str, float] | None = None
    while True:
        # A client that has gone is noticed here, within a poll: the server's writes to a closed
        # connection do not fail, so the stream would otherwise live on, unread, until its run
        # ends.
        if await request.is_disconnected():
            return
        out: list[ServerSentEvent] = []
        # Subscribed while reading and waiting, never while suspended at a yield: a stream
        # abandoned there (its client gone) holds no subscription. Subscribing before the reads
        # means news published after them still wakes the wait.
        with runs.events.subscribe(run_id) as news:
            # The status first: a run is marked completed only after its last metric is stored,
            # so metrics read after a final status include every one of them.
            # A cancelled run is final in the store at once, but its worker may still be
            # handing over metrics: the final status waits until the runner has let go of the
            # run (asked first, so the metrics read after it are all there are).
            held = runs.runner.position(run_id) is not None
            run = await run_in_threadpool(runs.store.get, run_id)
            fresh = await run_in_threadpool(runs.store.metrics_since, run_id, seen)
            for metric in fresh:
                seen = metric.id
                out.append(
                    ServerSentEvent(
                        event="metric",
                        id=str(metric.id),
                        data={"step": metric.step, "name": metric.name, "value": metric.value},
                    )
                )
            ended = run.is_final and not held
            status = (run.status, round(run.progress, 4))
            if status != sent_status and (ended or not run.is_final):
                sent_status = status
                out.append(
                    ServerSentEvent(
                        event="status", data={"status": run.status, "progress": status[1]}
                    )
                )
            if not out and not ended:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), timeout=STREAM_POLL_S)
        for event in out:
            yield event
        if ended:
            return


def artifact(runs: Runs, run_id: str, name: str, what: str) -> FileResponse:
    run = stored_run(runs, run_id)
    path = runs.artifacts_dir(run_id) / name
    if not path.is_file():
        raise ArtifactMissing(run, what)
    return FileResponse(path, media_type="application/octet-stream", filename=f"{run_id}-{name}")


@router.get(
    "/api/runs/{run_id}/checkpoint",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **NO_RUN},
)
def checkpoint(run_id: str, request: Request) -> FileResponse:
    """``{"model", "optimizer", "epoch", "task", "config"}``, saved with torch.save: plain
    ``torch.load(path, weights_only=True)`` opens it."""
    return artifact(runs_of(request), run_id, CHECKPOINT_FILE, "checkpoint")


@router.get(
    "/api/runs/{run_id}/state_dict",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **NO_RUN},
)
def state_dict(run_id: str, request: Request) -> FileResponse:
    """``torch.save(model.state_dict())`` of the final model."""
    return artifact(runs_of(request), run_id, STATE_DICT_FILE, "state_dict")


@router.get(
    "/api/runs/{run_id}/tensorboard",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}, **NO_RUN},
)
def tensorboard(run_id: str, request: Request) -> Response:
    """The run's TensorBoard event files as a zip: unzip into a folder, then
    ``tensorboard --logdir <folder>``."""
    runs = runs_of(request)
    run = stored_run(runs, run_id)
    if not (runs.artifacts_dir(run_id) / TENSORBOARD_DIR).is_dir():
        raise ArtifactMissing(run, "TensorBoard event files")
    body = tensorboard_zip(runs.artifacts_dir(run_id), run_id)
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{run_id}-tensorboard.zip"'},
    )
