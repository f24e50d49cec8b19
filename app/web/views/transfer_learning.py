"""The Transfer learning page: three ways to reuse a pretrained feature extractor, measured on
the example runs or on the learner's own runs, followed live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.jobs import transfer as transfer_task
from app.lessons import transfer_learning as transfer
from app.viz import transfer_learning as transfer_figures
from app.web.forms import params_from_query
from app.web.views.base import LessonView, source
from app.web.views.tracking import run_ids, tracked_run


def _parse(query: Mapping[str, str], settings: Settings) -> transfer.TransferParams:
    return params_from_query(transfer.TransferParams(), query, {})


def _explore(params: transfer.TransferParams, settings: Settings, runs: Any) -> dict[str, Any]:
    ids = run_ids(params.runs, settings.tracking_max_runs)
    transfer.check_params(params)
    task = transfer_task.TRANSFER.name
    chosen = [tracked_run(runs, i, task) for i in ids] if ids else transfer.example_runs()
    return transfer.explore(params, chosen, examples=not ids)


def _figures(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "curves": transfer_figures.curves_figure(
            result["metric"], result["series"], result["per_epoch"]
        ),
        "sweep": transfer_figures.sweep_figure(
            result["sweep"], transfer_task.MODES, result["chosen_examples"]
        ),
    }


def _form(params: transfer.TransferParams) -> dict[str, Any]:
    return asdict(params)


VIEW = LessonView(
    slug="transfer-learning",
    parse=_parse,
    explore=_explore,
    figures=_figures,
    code={
        "modes": source(transfer_task.build_model),
        "pretrain": source(transfer_task.pretrain_source),
        "data": source(transfer_task.target_data, transfer_task.few_per_class),
        "table": source(transfer_task.parameter_table),
        "measure": source(transfer.epoch_curve, transfer.curve_summary),
    },
    snippet=transfer.snippet,
    form=_form,
    uses_runs=True,
)
