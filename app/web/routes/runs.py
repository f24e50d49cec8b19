"""Training runs over HTTP (API.md "Training runs"): launch, list, watch live, cancel, download.

The routes only talk to ``request.app.state.runs`` (a store, a ``Runner`` and the live-event
bridge), so a distributed runner can replace the local one without touching this file.
"""

from __future__ import annotations

import logging
import time
import weakref
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.sse import EventSourceResponse
from pydantic import AfterValidator, BaseModel, Field
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from app.jobs import all_tasks
from app.jobs.retention import check_storage
from app.jobs.store import MAX_EVENT_ID, RunNotFound
from app.jobs.store import Run as StoredRun
from app.jobs.tasks import CHECKPOINT_FILE, STATE_DICT_FILE
from app.jobs.tracking import ArtifactMissing
from app.web.access import Viewer, may_control, require_control, viewer_of, visible_runs
from app.web.admission import client_key
from app.web.deps import SettingsDep
from app.web.live import Runs, StreamTicket
from app.web.schemas import error_responses

router = APIRouter(tags=["runs"])
log = logging.getLogger("app.streams")

# A route under /api/runs/{run_id} answers 404 when there is no such run.
NO_RUN = error_responses(404)
# smooth() needs a weight below 1; 0.99 already makes the curve nearly flat.
MAX_SMOOTHING = 0.99


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
    mine: bool = Field(default=False, description="the requesting learner launched it")
    read_only: bool = Field(
        default=True,
        description="the requesting learner may not cancel, delete or resume from it (it is "
        "another learner's and not their class's)",
    )
    earlier: bool = Field(
        default=False, description="made before learners existed: it belongs to nobody"
    )
    owner_name: str | None = Field(
        default=None,
        description="the display name of the learner who launched it, for those who control it",
    )


class RunsResponse(BaseModel):
    runs: list[RunModel]


class CancelResponse(BaseModel):
    status: str


class DeleteResponse(BaseModel):
    id: str
    deleted: bool = True


def runs_of(request: Request) -> Runs:
    runs: Runs = request.app.state.runs
    return runs


def eta_seconds(run: StoredRun, now: datetime | None = None) -> float | None:
    """Elapsed x (1 - p) / p: the time left if the run keeps its pace so far."""
    if run.status != "running" or run.started_at is None or run.progress <= 0:
        return None
    elapsed = ((now or datetime.now(UTC)) - run.started_at).total_seconds()
    return max(0.0, elapsed * (1 - run.progress) / run.progress)


def describe(
    runs: Runs,
    run: StoredRun,
    with_metrics: bool,
    viewer: Viewer | None = None,
    names: dict[str, str] | None = None,
) -> RunModel:
    """A run as the API shows it to ``viewer`` (``names``: owners' display names, when known)."""
    controls = viewer is not None and may_control(runs.store, viewer, run)
    name = None
    if controls and run.owner is not None:
        name = names.get(run.owner) if names is not None else runs.store.learner_name(run.owner)
    return RunModel(
        **run.to_dict(),
        position=runs.runner.position(run.id) if not run.is_final else None,
        eta_seconds=eta_seconds(run),
        metrics=runs.store.metrics(run.id) if with_metrics else {},
        mine=viewer is not None and run.owner == viewer.learner,
        read_only=not controls,
        earlier=run.owner is None,
        owner_name=name,
    )


def stored_run(runs: Runs, run_id: str) -> StoredRun:
    """The run; ``RunNotFound`` (a 404 naming the id) when there is none."""
    return runs.store.get(run_id)


@router.get("/api/tasks")
def tasks() -> TasksResponse:
    """Every task a run can train, with its config fields, defaults and bounds."""
    return TasksResponse(tasks=[TaskInfo(**t.info()) for t in all_tasks()])


@router.post("/api/runs", status_code=202, responses=error_responses(403, 429))
def create_run(body: RunRequest, request: Request) -> RunCreated:
    """Validate and queue a run of the requesting learner. 422 names a bad config field and its
    bound; 429 when the queue, or the learner's share of it, is full (``Retry-After`` says when
    to try again); 413 while the learner's runs keep ``runs_max_bytes_per_learner`` (they delete
    some first); 403 when ``resume_from`` is another learner's run."""
    runs = runs_of(request)
    viewer = viewer_of(request)
    if body.resume_from is not None:
        try:
            source = runs.store.get(body.resume_from)
        except RunNotFound:
            source = None  # the runner names the missing run (422)
        if source is not None:
            require_control(runs.store, viewer, source, "resume")
    check_storage(runs, viewer.learner, request.app.state.settings)
    run_id = runs.runner.submit(body.task, body.config, body.resume_from, owner=viewer.learner)
    return RunCreated(id=run_id, status=runs.store.get(run_id).status)


@router.get("/api/runs")
def list_runs(
    request: Request,
    settings: SettingsDep,
    metrics: Annotated[bool, Query(description="include each run's metrics")] = False,
) -> RunsResponse:
    """The requesting learner's runs, the runs of the classes they teach and (on the machine the
    app runs alone on) the runs made before learners existed, newest first (at most
    ``runs_max_listed``). Another learner's run is read by its id."""
    runs = runs_of(request)
    viewer = viewer_of(request)
    listed = visible_runs(runs.store, viewer, settings.runs_max_listed)
    names = runs.store.learner_names(run.owner for run in listed if run.owner)
    return RunsResponse(runs=[describe(runs, run, metrics, viewer, names) for run in listed])


@router.get("/api/runs/{run_id}", responses=NO_RUN)
def get_run(run_id: str, request: Request) -> RunModel:
    """One run with every metric logged so far: anyone with its id may read it
    (``read_only`` says whether this learner may change it)."""
    runs = runs_of(request)
    return describe(runs, stored_run(runs, run_id), True, viewer_of(request))


@router.post("/api/runs/{run_id}/cancel", responses={**NO_RUN, **error_responses(403)})
def cancel_run(run_id: str, request: Request) -> CancelResponse:
    """Stop a queued or running run; a finished run keeps its status. Only its owner (or their
    teacher) may: others get 403."""
    runs = runs_of(request)
    require_control(runs.store, viewer_of(request), stored_run(runs, run_id), "cancel")
    return CancelResponse(status=runs.runner.cancel(run_id))


@router.delete("/api/runs/{run_id}", responses={**NO_RUN, **error_responses(403, 409)})
def delete_run(run_id: str, request: Request) -> DeleteResponse:
    """Delete a finished run with its metrics and every file. Only its owner (or their teacher)
    may (403 otherwise); 409 while it is queued or running (cancel it first) or while a run that
    is resumes from it."""
    runs = runs_of(request)
    require_control(runs.store, viewer_of(request), stored_run(runs, run_id), "delete")
    runs.delete(run_id)
    return DeleteResponse(id=run_id)


def check_event_id(value: int) -> int:
    """An ``after`` / ``Last-Event-ID`` cursor must be an id the store can hold."""
    if not 0 <= value <= MAX_EVENT_ID:
        raise ValueError(
            f"an event id is a whole number from 0 to {MAX_EVENT_ID} (2**63 - 1, the largest id "
            f"SQLite stores), not {str(value)[:40]}"
        )
    return value


# The bounds are in the schema too, so clients (and the fuzzer) see the range.
EventId = Annotated[int, AfterValidator(check_event_id)]
EVENT_ID_RANGE = {"minimum": 0, "maximum": MAX_EVENT_ID}

# What the stream's 200 carries, as FastAPI documents a generator of ServerSentEvent.
SSE_ITEM = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


class EventStream(EventSourceResponse):
    """A run's live events: holds its place among the open streams until it is over, and notes a
    client that went away in one log line (no traceback)."""

    def __init__(
        self, runs: Runs, ticket: StreamTicket, after: int, smoothing: float | None = None
    ) -> None:
        self.runs = runs
        self.ticket = ticket
        self.complete = False
        self.events = runs.streams.stream(ticket.run_id, after, self._said_everything, smoothing)
        # Never cached, never buffered by a proxy on the way (nginx reads X-Accel-Buffering).
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(self.events, headers=headers)
        # A response dropped before it is sent gives its place back all the same.
        weakref.finalize(self, runs.streams.release, ticket)

    def _said_everything(self) -> None:
        self.complete = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        try:
            await super().__call__(scope, receive, send)
            # Starlette stops a stream whose client has gone (uvicorn tells it) and returns.
            gone = not self.complete
        except ClientDisconnect:  # a server that reports a write to a closed connection
            gone = True
        finally:
            self.runs.streams.release(self.ticket)
            # A stream cut off at a yield is not resumed: close it now, so it leaves its run's
            # feed at once (shielded: a cancelled request still gets to clean up).
            with anyio.CancelScope(shield=True):
                await self.events.aclose()
        # One line, no traceback. (A stream cancelled by the server stopping says nothing.)
        if gone:
            log.info(
                "run %s: the event stream to %s ended after %.1f s: the client went away",
                self.ticket.run_id,
                self.ticket.client,
                time.monotonic() - started,
            )


@router.get(
    "/api/runs/{run_id}/events",
    # Not FastAPI's EventSourceResponse route mode: the endpoint returns its own stream, so a
    # refusal (404, 422, 429) comes before it starts and a client that goes away stays quiet.
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"itemSchema": SSE_ITEM}}},
        **error_responses(404, 429),
    },
)
async def run_events(
    run_id: str,
    request: Request,
    after: Annotated[
        EventId,
        Query(description="replay metrics after this event id", json_schema_extra=EVENT_ID_RANGE),
    ] = 0,
    last_event_id: Annotated[EventId | None, Header(json_schema_extra=EVENT_ID_RANGE)] = None,
    smoothing: Annotated[
        float | None,
        Query(
            ge=0.0,
            le=MAX_SMOOTHING,
            description="add each metric's value smoothed at this weight (0 to 0.99)",
        ),
    ] = None,
) -> EventStream:
    """Server-sent events: ``metric`` ``{step, name, value}`` and ``status`` ``{status,
    progress}``. A late client first gets every metric it missed; the stream ends after a final
    status, which comes after the run's last metric. Each metric's ``id`` lets a reconnecting
    browser resume (``Last-Event-ID``); an idle stream sends a ``: heartbeat`` comment every
    ``stream_heartbeat_seconds``. With ``smoothing``, a metric also has ``smoothed``: its value
    through ``app.lessons.tracking.smooth`` over the run's whole series of that name, the
    same number ``GET /api/runs/{id}/scalars`` draws (a resumed stream carries on where it was).
    404 before any stream starts when there is no such run; 429 past ``max_streams``,
    ``max_streams_per_run`` or ``max_streams_per_client``."""
    runs = runs_of(request)
    await runs.streams.read(runs.store.get, run_id)  # RunNotFound: a 404, before any stream
    ticket = runs.streams.admit(run_id, client_key(request))
    try:
        return EventStream(runs, ticket, max(after, last_event_id or 0), smoothing)
    except BaseException:
        runs.streams.release(ticket)
        raise


def artifact(runs: Runs, run_id: str, name: str, what: str) -> FileResponse:
    run = stored_run(runs, run_id)
    path = runs.artifacts.path(run_id, name)
    if path is None:
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
    if not runs.artifacts.has_tensorboard(run_id):
        raise ArtifactMissing(run, "TensorBoard event files")
    body = runs.artifacts.tensorboard_zip(run_id)
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{run_id}-tensorboard.zip"'},
    )
