"""The run pages: /runs (launch a run, every run newest first) and /runs/{id} (one run, live).

Both pages are rendered from the same store the JSON API reads (``GET /api/runs`` and
``GET /api/runs/{id}`` are their twins); the detail page then grows its charts from the run's
server-sent events, starting after the last metric it was rendered with.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.jobs import FINAL_STATUSES, Task, all_tasks, get_task
from app.jobs.store import Run
from app.jobs.tasks import CHECKPOINT_FILE, STATE_DICT_FILE, UnknownTask
from app.jobs.tracking import TENSORBOARD_DIR, read_summary
from app.lessons.errors import LessonInputError
from app.lessons.tracking import parameter_total, pr_curve, sample_pictures
from app.viz.tracking import METRIC_TITLES, metric_title, pr_figure, scalar_figure
from app.web.deps import SettingsDep
from app.web.live import Runs
from app.web.routes.runs import eta_seconds, runs_of
from app.web.templating import render

router = APIRouter()

# TensorBoard's own default: enough to see the trend through per-batch noise.
DEFAULT_SMOOTHING = 0.6
# smooth() needs a weight below 1; 0.99 already makes the curve nearly flat.
MAX_SMOOTHING = 0.99
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
                    for field in task.describe()["fields"]
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


def run_row(runs: Runs, run: Run, latest: Mapping[str, float]) -> dict[str, Any]:
    return {
        "id": run.id,
        "task": run.task,
        "status": run.status,
        "final": run.is_final,
        "progress": run.progress,
        "position": runs.runner.position(run.id) if not run.is_final else None,
        "created": when(run.created_at),
        "config": config_text(run.config),
        "loss": last_value(latest, "loss"),
        "accuracy": last_value(latest, *ACCURACY_METRICS),
    }


@router.get("/runs", response_class=HTMLResponse, include_in_schema=False)
def runs_page(request: Request, settings: SettingsDep) -> Response:
    """Launch a run, and every run newest first (the twin of ``GET /api/runs``)."""
    runs = runs_of(request)
    listed = runs.store.list(limit=settings.runs_max_listed)
    latest = runs.store.latest(run.id for run in listed)
    context = {
        "launcher": launcher(request.query_params),
        "rows": [run_row(runs, run, latest.get(run.id, {})) for run in listed],
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


def pr_panel(
    summary: dict[str, Any], query: Mapping[str, str], label: str
) -> dict[str, Any] | None:
    """Per-class precision/recall on the held-out set: one figure per class (the page switches
    between them) at the threshold from the URL."""
    evaluation = summary.get("eval")
    if not evaluation or not evaluation.get("labels"):
        return None
    probabilities = evaluation["probabilities"]
    classes = [str(c) for c in summary.get("classes") or range(len(probabilities[0]))]
    selected = class_param(query, classes)
    threshold = number_param(query, "threshold", DEFAULT_THRESHOLD, 0.0, 1.0)
    curves = [pr_curve(evaluation["labels"], probabilities, k) for k in range(len(classes))]
    return {
        "classes": classes,
        "selected": selected,
        "threshold": threshold,
        "accuracy": evaluation.get("accuracy"),
        "figures": [
            pr_figure([(f"{label} {name}", curve)], threshold)
            for name, curve in zip(classes, curves, strict=True)
        ],
        "positives": [curve.positives for curve in curves],
    }


def downloads(runs: Runs, run_id: str) -> dict[str, bool]:
    folder = runs.artifacts_dir(run_id)
    return {
        "checkpoint": (folder / CHECKPOINT_FILE).is_file(),
        "state_dict": (folder / STATE_DICT_FILE).is_file(),
        "tensorboard": (folder / TENSORBOARD_DIR).is_dir(),
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
    label = f"run {run.id}"
    figures = {
        figure_id(name): scalar_figure(name, [(label, points)], smoothing)
        for name, points in metrics.items()
    }
    charts = [
        {"name": name, "id": figure_id(name), "title": metric_title(name)} for name in metrics
    ]
    summary = read_summary(runs.artifacts_dir(run_id)) if run.is_final else None
    architecture = (summary or {}).get("architecture") or []
    samples = sample_pictures(
        (summary or {}).get("samples") or [], (summary or {}).get("classes") or []
    )
    kind = "digit" if run.task == "digits-cnn" else "class"
    pr = pr_panel(summary, query, kind) if summary else None
    position = runs.runner.position(run.id) if not run.is_final else None
    live = {
        "id": run.id,
        "position": position,
        "status": run.status,
        "progress": run.progress,
        "final_statuses": sorted(FINAL_STATUSES),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "server_now": datetime.now(UTC).isoformat(),
        "last_event_id": last_event_id,
        "smoothing": smoothing,
        "label": label,
        "has_summary": summary is not None,
        "titles": METRIC_TITLES,
        "template": scalar_figure("metric", [(label, [])], smoothing),
        "pr": (
            {"selected": pr["selected"], "figures": pr["figures"], "positives": pr["positives"]}
            if pr
            else None
        ),
    }
    context = {
        "run": run,
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
