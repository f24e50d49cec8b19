"""The training-pipeline page: linear regression three ways, with the run task's own loop.

The code on screen is ``app.jobs.tasks.train_linear_regression`` itself, cut into its stages at
its ``if cfg.stage == ...`` branches, so the page shows exactly what a run executes.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.jobs import tasks
from app.lessons import training_pipeline as training
from app.viz import training_pipeline as training_figures
from app.web.forms import params_from_query
from app.web.views.base import LessonView, source


def stage_sources() -> dict[str, str]:
    """The stages' parts of ``train_linear_regression``: manual, each setup, the shared loop.

    Falls back to the whole function for every part if its branches are ever rewritten.
    """
    lines = inspect.getsource(tasks.train_linear_regression).splitlines()

    def find(text: str, start: int = 0) -> int:
        return next(i for i in range(start, len(lines)) if lines[i].strip() == text)

    try:
        manual = find('if cfg.stage == "manual":')
        autograd = find('if cfg.stage == "autograd":', manual)
        other = find("else:", autograd)
        loop = find("loss_fn = nn.MSELoss()", other)
    except StopIteration:
        whole = "\n".join(lines)
        return {"manual": whole, "autograd": whole, "nn": whole, "loop": whole}

    def part(begin: int, end: int) -> str:
        return textwrap.dedent("\n".join(lines[begin:end])).strip("\n")

    return {
        "manual": part(manual, autograd),
        "autograd": part(autograd, other),
        "nn": part(other, loop),
        "loop": part(loop, len(lines)),
    }


def _parse(query: Mapping[str, str], settings: Settings) -> training.TrainingParams:
    params = params_from_query(training.TrainingParams(), query, {})
    training.check_params(params)
    return params


def _form(params: training.TrainingParams) -> dict[str, Any]:
    form = asdict(params)
    form["stages"] = training.STAGE_TITLES
    form["bounds"] = {
        name: {k: v for k, v in field.items() if k in ("minimum", "maximum", "exclusiveMinimum")}
        for name, field in training.bounds().items()
        if name in ("epochs", "learning_rate", "seed")
    }
    return form


_STAGES = stage_sources()

VIEW = LessonView(
    slug="training-pipeline",
    parse=_parse,
    explore=lambda params, settings: training.explore(params),
    figures=training_figures.figures,
    code={
        **_STAGES,
        "data": source(tasks.linear_data, tasks.initial_params),
        "record": source(training.record_stage),
        "surface": source(training.loss_surface),
        "optimum": source(training.least_squares, training.stable_learning_rate),
    },
    snippet=training.snippet,
    form=_form,
)
