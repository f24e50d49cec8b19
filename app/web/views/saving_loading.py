"""The Saving and loading page: the worked example (state_dict round trip, checkpoint, resume,
why not the whole model), and the learner's own runs: download, inspect, evaluate, resume.

The URL holds ``run`` (a run's id, or empty), and what the Resume button sends: ``epochs`` and
``optimizer`` (on/off). Uploading a .pth is the page's script talking to
``POST /api/checkpoints/inspect`` and ``/evaluate``; a file cannot live in a URL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from app.config import Settings
from app.jobs import RunNotFound, UnknownTask, all_tasks, checkpoints, classifier, get_task
from app.jobs.safe_load import CheckpointLimits
from app.jobs.store import COMPLETED, Run
from app.jobs.tasks import CHECKPOINT_FILE, STATE_DICT_FILE, Task
from app.lessons import saving_loading as saving
from app.lessons.errors import LessonInputError
from app.lessons.tracking import short_id
from app.viz import saving_loading as saving_figures
from app.web.access import may_control
from app.web.deps import limits_from
from app.web.forms import params_from_query, parse_bool
from app.web.views.base import LessonView, source

MAX_ID = 64  # run ids are 32 characters at most; anything longer is not one


def _parse(query: Mapping[str, str], settings: Settings) -> saving.SavingParams:
    special = {
        "run": str.strip,
        "optimizer": lambda text: parse_bool("optimizer", text),
    }
    params = params_from_query(saving.SavingParams(), query, special)
    if len(params.run) > MAX_ID:
        raise LessonInputError(f"run: {params.run[:20]!r}... is not a run id (they are short).")
    return params


def _model_tasks() -> set[str]:
    return {task.name for task in all_tasks() if task.build_model is not None}


def _task(run: Run) -> Task:
    task: Task | None
    try:
        task = get_task(run.task)
    except UnknownTask:
        task = None
    if task is None or task.build_model is None:
        raise LessonInputError(
            f"run: {run.id} trained {run.task!r}, which has no model to save; choose a "
            f"{', '.join(sorted(_model_tasks()))} run."
        )
    return task


def _record(runs: Any, run: Run, with_metrics: bool) -> saving.RunRecord:
    return saving.RunRecord(
        id=run.id,
        task=run.task,
        status=run.status,
        config=run.config,
        resume_from=run.resume_from,
        metrics=runs.store.metrics(run.id) if with_metrics else {},
    )


def _get(runs: Any, run_id: str) -> saving.RunRecord | None:
    try:
        return _record(runs, runs.store.get(run_id), with_metrics=True)
    except RunNotFound:
        return None


def _chosen(runs: Any, run: Run, settings: Settings) -> dict[str, Any]:
    """The chosen run: its files, its checkpoint inspected and evaluated, and its chain."""
    task = _task(run)
    listed = runs.listed(settings.runs_max_listed)
    line = saving.chain(run.id, lambda run_id: _get(runs, run_id))
    others = [_record(runs, r, with_metrics=False) for r in listed]
    ids = saving.family(line, others)
    records = {r.id: r for r in line}
    drawn = [records[i] if i in records else _get(runs, i) for i in ids]
    members = [saving.describe_run(r) for r in drawn if r is not None]
    path = runs.artifacts.path(run.id, CHECKPOINT_FILE)
    opened = (
        saving.open_run_checkpoint(path, limits_from(settings, CheckpointLimits))
        if path is not None
        else None
    )
    me = next(m for m in members if m["id"] == run.id)
    controls = runs.viewer is not None and may_control(runs.store, runs.viewer, run)
    return {
        "id": run.id,
        "task": run.task,
        "status": run.status,
        "config": run.config,
        "resume_from": run.resume_from,
        "final": run.is_final,
        # Another learner's run (opened by its link) is read-only: looked inside, not resumed.
        "read_only": not controls,
        "resumable": run.status == COMPLETED and opened is not None and controls,
        "optimizer_choice": "resume_optimizer" in task.config_model.model_fields,
        "downloads": (
            {
                "state_dict": f"/api/runs/{run.id}/state_dict",
                "checkpoint": f"/api/runs/{run.id}/checkpoint",
                "state_dict_name": f"{run.id}-{STATE_DICT_FILE}",
                "checkpoint_name": f"{run.id}-{CHECKPOINT_FILE}",
            }
            if opened is not None
            else None
        ),
        "inspection": (opened or {}).get("inspection"),
        "evaluation": (opened or {}).get("evaluation"),
        "error": (opened or {}).get("error"),
        "logged_accuracy": me["val_accuracy"],
        "epochs": me["epochs"],
        "family": members,
        "live": [m["id"] for m in members if m["status"] in ("queued", "running")],
    }


def _choices(runs: Any, settings: Settings, chosen: str) -> list[dict[str, str]]:
    """Completed runs of tasks with a model, newest first, and the chosen run whatever its state."""
    if runs is None:
        return []
    tasks = _model_tasks()
    out = []
    listed = runs.listed(settings.runs_max_listed)
    if chosen and chosen not in {run.id for run in listed}:
        # Opened by its link (another learner's, read-only): offered too, first.
        with contextlib.suppress(RunNotFound):
            listed.insert(0, runs.store.get(chosen))
    for run in listed:
        if run.task in tasks and (run.status == COMPLETED or run.id == chosen):
            how = " (resumed)" if run.resume_from else ""
            status = "" if run.status == COMPLETED else f" · {run.status}"
            out.append({"id": run.id, "label": f"{short_id(run.id)} · {run.task}{how}{status}"})
    return out


def _explore(params: saving.SavingParams, settings: Settings, runs: Any) -> dict[str, Any]:
    chosen = None
    task: Task | None = None
    if params.run:
        if runs is None:
            raise LessonInputError("run: the run store is not open yet; try again in a moment.")
        try:
            run = runs.store.get(params.run)
        except RunNotFound:
            raise LessonInputError(
                f"run: there is no run {params.run!r}; /runs lists the runs there are."
            ) from None
        task = _task(run)
        chosen = _chosen(runs, run, settings)
    epochs_max = saving.check_resume(params, task)
    return {
        "example": saving.example(),
        "run": chosen,
        "choices": _choices(runs, settings, params.run),
        "tasks": sorted(_model_tasks()),
        "epochs": params.epochs,
        "epochs_max": epochs_max,
        "optimizer": params.optimizer,
    }


def _figures(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resume = result["example"]["resume"]
    figures = {
        "resume": saving_figures.resume_figure(resume),
        "difference": saving_figures.difference_figure(resume),
    }
    if result["run"] is not None:
        figures["chain"] = saving_figures.chain_figure(result["run"]["family"])
    return figures


def _form(params: saving.SavingParams) -> dict[str, Any]:
    return {
        "run": params.run,
        "epochs": params.epochs,
        "optimizer": "on" if params.optimizer else "off",
    }


VIEW = LessonView(
    slug="saving-loading",
    parse=_parse,
    explore=_explore,
    figures=_figures,
    code={
        "files": source(saving.tensor_rows, saving.example),
        "round_trip": source(saving.round_trip),
        "checkpoint": source(saving.make_checkpoint, saving.optimizer_rows),
        "resume": source(saving.resume_experiment, saving.train),
        "train": source(classifier.train_digits, classifier.train_image_task, classifier.restore),
        "whole": source(saving.whole_model_refused),
        "run": source(
            saving.open_run_checkpoint,
            checkpoints.evaluate_checkpoint,
            checkpoints.load_into,
        ),
        "chain": source(saving.chain, saving.family),
    },
    snippet=saving.snippet,
    form=_form,
    uses_runs=True,
)
