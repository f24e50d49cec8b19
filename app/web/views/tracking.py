"""The Tracking page: TensorBoard's panels (scalars, architecture, images, PR curves), computed
here from training runs, the learner's own or the page's example runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.jobs import RunNotFound, classifier
from app.jobs import tracking as run_files
from app.lessons import tracking
from app.lessons.errors import LessonInputError, check_limit
from app.viz import tracking as tracking_figures
from app.web.forms import params_from_query
from app.web.views.base import LessonView, source


def _parse(query: Mapping[str, str], settings: Settings) -> tracking.TrackingParams:
    return params_from_query(tracking.TrackingParams(), query, {})


def run_ids(text: str, limit: int) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``: the runs a lesson compares, at most ``limit``, each once."""
    ids = [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]
    check_limit("runs compared", "tracking_max_runs", limit, len(ids))
    if len(set(ids)) != len(ids):
        raise LessonInputError("runs: each run may be listed once")
    return ids


def tracked_run(runs: Any, run_id: str, task: str | None = None) -> tracking.TrackedRun:
    """A stored run as the run lessons read it; a 422 naming it when there is none, or when it
    is not of ``task``."""
    if runs is None:
        raise LessonInputError("runs: the run store is not open yet; try again in a moment")
    try:
        run = runs.store.get(run_id)
    except RunNotFound:
        raise LessonInputError(
            f"runs: there is no run {run_id!r}; /runs lists the runs there are"
        ) from None
    if task is not None and run.task != task:
        raise LessonInputError(
            f"runs: run {run_id!r} is a {run.task} run; this page compares {task} runs"
        )
    return tracking.TrackedRun(
        id=run.id,
        label=tracking.run_label(run.id, run.config),
        task=run.task,
        status=run.status,
        config=run.config,
        metrics=runs.store.metrics(run.id),
        summary=runs.artifacts.summary(run.id),
    )


def _explore(params: tracking.TrackingParams, settings: Settings, runs: Any) -> dict[str, Any]:
    ids = run_ids(params.runs, settings.tracking_max_runs)
    chosen = [tracked_run(runs, i) for i in ids] if ids else tracking.example_runs()
    result = tracking.explore(params, chosen)
    result["examples"] = not ids
    return result


def _figures(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    figures = {}
    if result["metrics"] or result["live"]:
        metric = result["metric"]
        series = [
            (label, points, smoothed)
            for (label, points), smoothed in zip(
                result["series"][metric], result["smoothed"], strict=True
            )
        ]
        figures["scalars"] = tracking_figures.scalar_figure(metric, series, result["smoothing"])
    if result["curves"]:
        figures["pr"] = tracking_figures.pr_figure(
            [(c["run"], c["curve"], c["at"]) for c in result["curves"]]
        )
    return figures


def _form(params: tracking.TrackingParams) -> dict[str, Any]:
    return asdict(params)


VIEW = LessonView(
    slug="tracking",
    parse=_parse,
    explore=_explore,
    figures=_figures,
    code={
        "logging": source(run_files.write_summary),
        "smooth": source(tracking.Smoother, tracking.smooth),
        "pr": source(tracking.pr_curve, tracking.operating_point),
        "architecture": source(classifier.architecture),
    },
    snippet=tracking.snippet,
    form=_form,
    uses_runs=True,
)
