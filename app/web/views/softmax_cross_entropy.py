"""The softmax and cross-entropy page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.lessons import softmax_cross_entropy as softmax
from app.viz import softmax_cross_entropy as softmax_figures
from app.web.forms import format_batch, format_floats, params_from_query, parse_batch, parse_floats
from app.web.routes.lessons.softmax_cross_entropy import softmax_limits
from app.web.views.base import LessonView, source


def _softmax_parse(query: Mapping[str, str], settings: Settings) -> softmax.SoftmaxParams:
    limit = settings.max_logits
    special = {
        "logits": lambda text: parse_floats("logits", text, limit),
        "batch": lambda text: parse_batch(text, settings.max_batch_rows),
    }
    return params_from_query(softmax.SoftmaxParams(), query, special)


def _softmax_form(params: softmax.SoftmaxParams) -> dict[str, Any]:
    form = asdict(params)
    form.update(logits=format_floats(params.logits), batch=format_batch(params.batch))
    form["logit_values"] = list(params.logits)
    return form


VIEW = LessonView(
    slug="softmax-cross-entropy",
    parse=_softmax_parse,
    explore=lambda params, settings: softmax.explore(params, softmax_limits(settings)),
    figures=softmax_figures.figures,
    code={
        "main": source(softmax.softmax_cross_entropy),
        "temperature": source(softmax.temperature_sweep),
        "mistake": source(softmax.double_softmax_mistake),
        "overflow": source(softmax.naive_softmax, softmax.overflow_demo),
        "batch": source(softmax.batch_cross_entropy),
    },
    snippet=softmax.snippet,
    form=_softmax_form,
)
