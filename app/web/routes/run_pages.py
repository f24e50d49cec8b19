"""The run pages: /runs (launch a run, every run newest first) and /runs/{id} (one run, live).

Both pages are rendered from the same store the JSON API reads (``GET /api/runs`` and
``GET /api/runs/{id}`` are their twins); the detail page then grows its charts from the run's
server-sent events, starting after the last metric it was rendered with. What the page's controls
change is computed here too, and the page only draws it: ``GET /api/runs/{id}/scalars`` (every
chart at another smoothing) and ``GET /api/runs/{id}/pr`` (a class's curve and its operating
point at a threshold); the stream carries each metric smoothed (``?smoothing=``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from app.jobs import FINAL_STATUSES, Task, all_tasks, get_task
from app.jobs.store import Run
from app.jobs.tasks import CHECKPOINT_FILE, STATE_DICT_FILE, UnknownTask
from app.jobs.tracking import ArtifactMissing
from app.lessons.errors import LessonInputError
from app.lessons.tracking import (
    operating_point,
    parameter_total,
    pr_curve,
    sample_pictures,
    short_id,
    smooth,
)
from app.viz.common import Figure
from app.viz.tracking import METRIC_TITLES, metric_title, pr_figure, scalar_figure
from app.web.access import Viewer, may_control, viewer_of, visible_runs
from app.web.deps import SettingsDep
from app.web.live import DELETED, Runs
from app.web.routes.runs import MAX_SMOOTHING, NO_RUN, eta_seconds, runs_of
from app.web.schemas import error_responses
from app.web.templating import render

router = APIRouter()

# TensorBoard's own default: enough to see the trend through per-batch noise.
DEFAULT_SMOOTHING = 0.6
# Half the probability mass: the threshold a plain argmax roughly works at for one class.
DEFAULT_THRESHOLD = 0.5
# Metrics whose last value the runs table shows, in order of preference for "accuracy".
ACCURACY_METRICS = ("val_accuracy", "accuracy")


# -- parsing the URL -------------------------------------------------------------------------


def number_param(
    query: Mapping[str, str], name: str, default: float, low: float, high: float
) -> float:
    """A float from the query string in [low, high]; a message naming the range otherwise."""
    text = query.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        message = f"{name} must be a number in [{low:g}, {high:g}], not {text!r}."
        raise LessonInputError(message) from None
    if not low <= value <= high:
        raise LessonInputError(f"{name} must be in [{low:g}, {high:g}], not {value:g}.")
    return value


def class_param(query: Mapping[str, str], classes: list[str]) -> int:
    """The index of the PR curve's class (``pr_class``, by name); the first class by default."""
    text = query.get("pr_class", "").strip()
    if not text:
        return 0
    if text not in classes:
        raise LessonInputError(f"pr_class must be one of {', '.join(classes)}, not {text!r}.")
    return classes.index(text)


# -- the launcher form -----------------------------------------------------------------------


def bound(value: float) -> str:
    """A bound for people: whole numbers in full (2147483647, not 2.15e+09)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def form_field(task: Task, field: dict[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    """One config field as the launcher renders it: its input kind, bounds and value."""
    name = str(field["name"])
    default = field.get("default")
    entry: dict[str, Any] = {
        "name": name,
        "id": f"cfg-{task.name}-{name}",
        "description": field.get("description"),
        "default": default,
        "value": query.get(name, "" if default is None else str(default)),
        "type": field.get("type", "string"),
    }
    if field.get("enum"):
        entry["kind"] = "select"
        entry["options"] = [str(option) for option in field["enum"]]
    elif entry["type"] in ("integer", "number"):
        entry["kind"] = "number"
        low = field.get("minimum", field.get("exclusiveMinimum"))
        entry["min"] = low
        entry["max"] = field.get("maximum")
        entry["step"] = "1" if entry["type"] == "integer" else "any"
        if "exclusiveMinimum" in field:
            entry["bounds"] = f"> {bound(field['exclusiveMinimum'])}"
        elif low is not None:
            entry["bounds"] = f"≥ {bound(low)}"
        if entry["max"] is not None:
            entry["bounds"] = (entry.get("bounds", "") + f", ≤ {bound(entry['max'])}").lstrip(", ")
    else:
        entry["kind"] = "text"
    return entry


def launcher(query: Mapping[str, str]) -> dict[str, Any]:
    """Every task with its fields; the one named by ``?task=`` (or the first) is selected."""
    tasks = all_tasks()
    names = [task.name for task in tasks]
    selected = query.get("task", "")
    if selected not in names:
        selected = names[0] if names else ""
    return {
        "selected": selected,
        "tasks": [
            {
                "name": task.name,
                "description": task.description,
                "fields": [
                    form_field(task, field, query if task.name == selected else {})
                    for field in task.info()["fields"]
                ],
            }
            for task in tasks
        ],
    }


# -- the table of runs -----------------------------------------------------------------------


def when(value: datetime | None) -> dict[str, str] | None:
    """A time for people (UTC, to the second) with its ISO form for ``<time datetime>``."""
    if value is None:
        return None
    return {"iso": value.isoformat(), "text": value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")}


def config_text(config: Mapping[str, Any]) -> str:
    return " · ".join(f"{key}={value}" for key, value in config.items())


def last_value(latest: Mapping[str, float], *names: str) -> float | None:
    """The first of ``names`` the run has logged, at its last step."""
    return next((float(latest[name]) for name in names if name in latest), None)


def run_row(
    runs: Runs, run: Run, latest: Mapping[str, float], controls: bool, who: str | None = None
) -> dict[str, Any]:
    return {
        "id": run.id,
        "short": short_id(run.id),
        "task": run.task,
        "status": run.status,
        "final": run.is_final,
        "progress": run.progress,
        "position": runs.runner.position(run.id) if not run.is_final else None,
        "created": when(run.created_at),
        "config": config_text(run.config),
        "loss": last_value(latest, "loss"),
        "accuracy": last_value(latest, *ACCURACY_METRICS),
        "controls": controls,
        "who": who,
    }


def owner_label(owner: str, names: Mapping[str, str]) -> str:
    """A learner as a teacher's table names them: their display name, else their id's start."""
    return names.get(owner) or f"learner {owner[:6]}"


def run_tables(runs: Runs, viewer: Viewer, limit: int) -> list[dict[str, Any]]:
    """The runs this learner sees, in up to three tables: their own, those of the classes they
    teach (with who launched each), and the earlier runs made before learners existed."""
    listed = visible_runs(runs.store, viewer, limit)
    latest = runs.store.latest(run.id for run in listed)
    names = runs.store.learner_names(run.owner for run in listed if run.owner)
    mine = [run for run in listed if run.owner == viewer.learner]
    taught = [run for run in listed if run.owner not in (None, viewer.learner)]
    earlier = [run for run in listed if run.owner is None]
    tables = [
        {
            "id": "runs-table",
            "title": "Your runs, newest first",
            "rows": [run_row(runs, r, latest.get(r.id, {}), True) for r in mine],
            "who": False,
            "empty": "No runs yet: launch one above.",
        }
    ]
    if taught:
        tables.append(
            {
                "id": "class-runs-table",
                "title": "Your classes' runs",
                "note": "Runs your class's learners launched while in a class you teach: you can "
                "cancel and delete them; /classes shows each class.",
                "rows": [
                    run_row(runs, r, latest.get(r.id, {}), True, owner_label(r.owner or "", names))
                    for r in taught
                ],
                "who": True,
            }
        )
    if earlier:
        tables.append(
            {
                "id": "earlier-runs-table",
                "title": "Earlier runs",
                "note": "Runs made on this machine before runs had owners: they belong to nobody, "
                "and only this machine lists them.",
                "rows": [run_row(runs, r, latest.get(r.id, {}), True) for r in earlier],
                "who": False,
            }
        )
    return tables


@router.get("/runs", response_class=HTMLResponse, include_in_schema=False)
def runs_page(request: Request, settings: SettingsDep) -> Response:
    """Launch a run, and the runs this learner sees, newest first (the twin of
    ``GET /api/runs``)."""
    runs = runs_of(request)
    tables = run_tables(runs, viewer_of(request), settings.runs_max_listed)
    context = {
        "launcher": launcher(request.query_params),
        "tables": tables,
        "any_runs": any(table["rows"] for table in tables),
        "final_statuses": sorted(FINAL_STATUSES),
    }
    return render(request, "runs/list.html", context)


# -- one run ---------------------------------------------------------------------------------


def figure_id(name: str) -> str:
    """A metric name as a safe figure id; the element is ``fig-<id>`` (run.js makes the same)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


def live_metrics(runs: Runs, run_id: str) -> tuple[dict[str, list[list[float]]], int]:
    """Every metric so far as ``{name: [[step, value], ...]}`` and the id of the last one, so
    the page's event stream starts right after what it was rendered with."""
    metrics: dict[str, list[list[float]]] = {}
    last_id = 0
    for event in runs.store.metrics_since(run_id, 0):
        metrics.setdefault(event.name, []).append([event.step, event.value])
        last_id = event.id
    return metrics, last_id


def train_source(task_name: str) -> str | None:
    try:
        task = get_task(task_name)
    except UnknownTask:
        return None
    return inspect.getsource(task.train).rstrip()


def scalar_figures(
    metrics: Mapping[str, list[list[float]]], smoothing: float, label: str
) -> dict[str, Figure]:
    """One chart per metric, by name: the raw values and ``smooth(values, smoothing)``."""
    return {
        name: scalar_figure(
            name, [(label, points, smooth([float(p[1]) for p in points], smoothing))], smoothing
        )
        for name, points in metrics.items()
    }


def pr_classes(summary: Mapping[str, Any]) -> list[str] | None:
    """The class names a run's held-out evaluation has curves for; None without one."""
    evaluation = summary.get("eval")
    if not evaluation or not evaluation.get("labels"):
        return None
    count = len(evaluation["probabilities"][0])
    return [str(c) for c in summary.get("classes") or range(count)]


def pr_view(summary: Mapping[str, Any], k: int, threshold: float, label: str) -> dict[str, Any]:
    """Class ``k``'s precision/recall curve with ``operating_point(curve, threshold)`` marked."""
    evaluation = summary["eval"]
    name = (pr_classes(summary) or [])[k]
    curve = pr_curve(evaluation["labels"], evaluation["probabilities"], k)
    at = operating_point(curve, threshold)
    return {
        "index": k,
        "name": name,
        "threshold": threshold,
        "precision": at["precision"],
        "recall": at["recall"],
        "positives": curve.positives,
        "figure": pr_figure([(f"{label} {name}", curve, at)]),
    }


def pr_panel(
    summary: dict[str, Any], query: Mapping[str, str], label: str
) -> dict[str, Any] | None:
    """Per-class precision/recall on the held-out set: one figure per class at the threshold
    from the URL (the page asks ``GET /api/runs/{id}/pr`` for another class or threshold)."""
    classes = pr_classes(summary)
    if classes is None:
        return None
    selected = class_param(query, classes)
    threshold = number_param(query, "threshold", DEFAULT_THRESHOLD, 0.0, 1.0)
    views = [pr_view(summary, k, threshold, label) for k in range(len(classes))]
    return {
        "classes": classes,
        "selected": selected,
        "threshold": threshold,
        "accuracy": summary["eval"].get("accuracy"),
        "figures": [view["figure"] for view in views],
        "positives": [view["positives"] for view in views],
        "at": {key: views[selected][key] for key in ("threshold", "precision", "recall")},
    }


def downloads(runs: Runs, run_id: str) -> dict[str, bool]:
    files = runs.artifacts
    return {
        "checkpoint": files.exists(run_id, CHECKPOINT_FILE),
        "state_dict": files.exists(run_id, STATE_DICT_FILE),
        "tensorboard": files.has_tensorboard(run_id),
    }


@router.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
def run_page(run_id: str, request: Request) -> Response:
    """One run: its config, progress, a live chart per metric and, once it is done, what
    TensorBoard would show (architecture, sample predictions, PR curves) and its files."""
    runs = runs_of(request)
    runs.store.get(run_id)  # RunNotFound: the app's 404 page
    query = request.query_params
    smoothing = number_param(query, "smoothing", DEFAULT_SMOOTHING, 0.0, MAX_SMOOTHING)
    metrics, last_event_id = live_metrics(runs, run_id)
    run = runs.store.get(run_id)
    if run.is_final:  # it may have ended after the read: a final page has no stream to catch up
        metrics, last_event_id = live_metrics(runs, run_id)
    label = f"run {short_id(run.id)}"
    charted = scalar_figures(metrics, smoothing, label)
    figures = {figure_id(name): figure for name, figure in charted.items()}
    charts = [
        {"name": name, "id": figure_id(name), "title": metric_title(name)} for name in metrics
    ]
    summary = runs.artifacts.summary(run_id) if run.is_final else None
    architecture = (summary or {}).get("architecture") or []
    samples = sample_pictures(
        (summary or {}).get("samples") or [], (summary or {}).get("classes") or []
    )
    kind = "digit" if run.task == "digits-cnn" else "class"
    pr = pr_panel(summary, query, kind) if summary else None
    position = runs.runner.position(run.id) if not run.is_final else None
    viewer = viewer_of(request)
    controls = may_control(runs.store, viewer, run)
    live = {
        "id": run.id,
        "position": position,
        "status": run.status,
        "progress": run.progress,
        # A run deleted while the page follows it ends its stream with "deleted".
        "final_statuses": sorted(FINAL_STATUSES | {DELETED}),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "server_now": datetime.now(UTC).isoformat(),
        "last_event_id": last_event_id,
        "smoothing": smoothing,
        "label": label,
        "has_summary": summary is not None,
        "titles": METRIC_TITLES,
        "template": scalar_figure("metric", [(label, [], [])], smoothing),
        "pr": (
            {
                "selected": pr["selected"],
                "figures": pr["figures"],
                "positives": pr["positives"],
                "at": pr["at"],
            }
            if pr
            else None
        ),
    }
    context = {
        "run": run,
        "short": short_id(run.id),
        "controls": controls,
        "mine": run.owner is not None and run.owner == viewer.learner,
        "owner_name": runs.store.learner_name(run.owner) if controls and run.owner else None,
        "created": when(run.created_at),
        "started": when(run.started_at),
        "finished": when(run.finished_at),
        "position": position,
        "eta": eta_seconds(run),
        "charts": charts,
        "figures": figures,
        "smoothing": smoothing,
        "live": live,
        "summary": summary,
        "architecture": architecture,
        "parameters": parameter_total(architecture) if architecture else None,
        "samples": samples,
        "wrong": sum(not s["correct"] for s in samples),
        "pr": pr,
        "downloads": downloads(runs, run.id) if run.is_final else {},
        "train_source": train_source(run.task),
    }
    return render(request, "runs/detail.html", context)


# -- what the run page's controls redraw ---------------------------------------------------------


class ScalarsResponse(BaseModel):
    smoothing: float
    last_event_id: int = Field(
        description="the last metric drawn: the run's events after this id carry the charts on"
    )
    figures: dict[str, dict[str, Any]] = Field(
        description="metric name -> Plotly figure: trace 0 raw, trace 1 smoothed"
    )
    template: dict[str, Any] = Field(
        description="an empty chart at this smoothing, for a metric that has no points yet"
    )


class PRResponse(BaseModel):
    pr_class: str = Field(description="the class, by name")
    index: int = Field(description="the class's index")
    threshold: float
    precision: float = Field(description="at the threshold: operating_point(curve, threshold)")
    recall: float
    positives: int = Field(description="held-out samples of the class")
    figure: dict[str, Any] = Field(description="the curve, and its operating point marked")


Smoothing = Annotated[
    float,
    Query(ge=0.0, le=MAX_SMOOTHING, description="TensorBoard's smoothing weight, 0 to 0.99"),
]


@router.get("/api/runs/{run_id}/scalars", tags=["runs"], responses=NO_RUN)
def run_scalars(
    run_id: str, request: Request, smoothing: Smoothing = DEFAULT_SMOOTHING
) -> ScalarsResponse:
    """Every chart of the run page at this smoothing (``app.lessons.tracking.smooth``), with the
    id of the last metric in them: ``GET /api/runs/{id}/events?after=<it>&smoothing=<it>`` grows
    them from there."""
    runs = runs_of(request)
    run = runs.store.get(run_id)  # RunNotFound: a 404
    metrics, last_event_id = live_metrics(runs, run.id)
    label = f"run {short_id(run.id)}"
    return ScalarsResponse(
        smoothing=smoothing,
        last_event_id=last_event_id,
        figures=scalar_figures(metrics, smoothing, label),
        template=scalar_figure("metric", [(label, [], [])], smoothing),
    )


@router.get("/api/runs/{run_id}/pr", tags=["runs"], responses={**NO_RUN, **error_responses(422)})
def run_pr(
    run_id: str,
    request: Request,
    pr_class: Annotated[str, Query(description="the class, by name (the first by default)")] = "",
    threshold: Annotated[
        float, Query(ge=0.0, le=1.0, description="predict the class when p >= this")
    ] = DEFAULT_THRESHOLD,
) -> PRResponse:
    """A finished classifier run's precision/recall curve for one class on its held-out set, with
    precision and recall at ``threshold`` (``app.lessons.tracking.operating_point``). 404 while
    the run has no summary yet; 422 for a run without classes or a class it does not have."""
    runs = runs_of(request)
    run = runs.store.get(run_id)
    summary = runs.artifacts.summary(run.id) if run.is_final else None
    if summary is None:
        raise ArtifactMissing(run, "precision/recall curves")
    classes = pr_classes(summary)
    if classes is None:
        raise LessonInputError(
            f"Run {run.id} is a {run.task} run: it has no held-out classes to draw precision "
            "and recall for."
        )
    k = class_param({"pr_class": pr_class}, classes)
    kind = "digit" if run.task == "digits-cnn" else "class"
    view = pr_view(summary, k, threshold, kind)
    return PRResponse(
        pr_class=view["name"],
        index=k,
        threshold=threshold,
        precision=view["precision"],
        recall=view["recall"],
        positives=view["positives"],
        figure=view["figure"],
    )
