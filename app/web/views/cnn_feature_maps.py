"""The CNN feature-maps page: inside a trained classifier, what each conv layer's channels
respond to, for the transfer lesson's source model or one of the learner's finished runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.jobs import RunNotFound
from app.jobs.tasks import CHECKPOINT_FILE
from app.lessons import cnn_feature_maps as feature_maps
from app.lessons.errors import LessonInputError
from app.lessons.tracking import short_id
from app.viz import cnn_feature_maps as feature_map_figures
from app.web.forms import params_from_query
from app.web.views.base import LessonView, source

RUNS_LISTED = 200  # the newest runs searched for ones with conv layers
RUNS_OFFERED = 30  # the model picker's length


def _parse(query: Mapping[str, str], settings: Settings) -> feature_maps.FeatureMapParams:
    params = params_from_query(feature_maps.FeatureMapParams(), query, {})
    return feature_maps.FeatureMapParams(
        run=params.run.strip(), image=params.image, layer=params.layer, channel=params.channel
    )


def _model_source(runs: Any, run_id: str) -> tuple[feature_maps.ModelSource, dict[str, Any]]:
    """The stored run's model, or a message naming what is wrong with it."""
    if runs is None:
        raise LessonInputError("run: the run store is not open yet; try again in a moment")
    try:
        run = runs.store.get(run_id)
    except RunNotFound:
        raise LessonInputError(
            f"run: there is no run {run_id[:40]!r}; /runs lists the runs there are"
        ) from None
    if run.task not in feature_maps.RUN_TASKS:
        raise LessonInputError(
            f"run {run.id} is a {run.task} run: only {' and '.join(feature_maps.RUN_TASKS)} runs "
            "have conv layers to look inside"
        )
    if run.status != "completed":
        raise LessonInputError(
            f"run {run.id} is {run.status}, not completed: only a finished run's trained "
            "weights can be looked inside"
        )
    checkpoint = runs.artifacts.path(run.id, CHECKPOINT_FILE)
    if checkpoint is None:
        raise LessonInputError(f"run {run.id} has no {CHECKPOINT_FILE} to load")
    found = feature_maps.ModelSource(
        run_id=run.id,
        task=run.task,
        config=json.dumps(run.config, sort_keys=True),
        checkpoint=str(checkpoint),
        stamp=checkpoint.stat().st_mtime_ns,
    )
    return found, run.config


def _explore(
    params: feature_maps.FeatureMapParams, settings: Settings, runs: Any
) -> dict[str, Any]:
    if params.run:
        model, config = _model_source(runs, params.run)
        task = model.task
    else:
        model, config, task = feature_maps.ModelSource(), {}, feature_maps.SOURCE_TASK
    result = feature_maps.explore(params, model)
    offered = (
        feature_maps.describe_runs(runs.listed(RUNS_LISTED))[:RUNS_OFFERED]
        if runs is not None
        else []
    )
    if params.run and params.run not in {r["id"] for r in offered}:
        offered.insert(0, {"id": params.run, "label": f"run {short_id(params.run)} · {task}"})
    result["model"] = {
        "run": params.run,
        "task": task,
        "label": (
            f"run {short_id(params.run)} ({task})"
            if params.run
            else "the transfer lesson's source model (trained on digits 0-4)"
        ),
        "note": feature_maps.seed_note(task, config),
    }
    result["runs"] = offered
    return result


def _form(params: feature_maps.FeatureMapParams) -> dict[str, Any]:
    return asdict(params)


VIEW = LessonView(
    slug="cnn-feature-maps",
    parse=_parse,
    explore=_explore,
    figures=feature_map_figures.figures,
    code={
        "hooks": source(feature_maps.conv_layers),
        "responses": source(feature_maps.channel_responses),
        "filters": source(feature_maps.shown_filters),
        "models": source(feature_maps.source_model, feature_maps.run_model),
    },
    snippet=feature_maps.snippet,
    form=_form,
    uses_runs=True,
)
