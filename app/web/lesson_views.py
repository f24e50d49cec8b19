"""How each live lesson page turns its URL into numbers, figures and code on screen."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from app.config import Settings
from app.lessons import activations, softmax
from app.viz import activations as activation_figures
from app.viz import softmax as softmax_figures
from app.web import deps
from app.web.forms import format_batch, format_floats, params_from_query, parse_batch, parse_floats


def source(*functions: Callable[..., Any]) -> str:
    """The real source of lesson functions, as the page shows it."""
    return "\n\n".join(inspect.getsource(fn).rstrip() for fn in functions)


@dataclass(frozen=True)
class LessonView:
    """One live lesson: parse the URL, compute, draw, and show the code that did it."""

    slug: str
    parse: Callable[[Mapping[str, str], Settings], Any]
    explore: Callable[[Any, Settings], dict[str, Any]]
    figures: Callable[[dict[str, Any]], dict[str, dict[str, Any]]]
    code: dict[str, str]  # section -> the source of the functions behind it
    snippet: Callable[[Any], str]
    form: Callable[[Any], dict[str, Any]]  # params as the form shows them

    def build(self, query: Mapping[str, str], settings: Settings) -> dict[str, Any]:
        """The template context for the page and its partial."""
        params = self.parse(query, settings)
        result = self.explore(params, settings)
        return {
            "params": params,
            "form": self.form(params),
            "result": result,
            "figures": self.figures(result),
            "code": self.code,
            "snippet": self.snippet(params),
        }


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


SOFTMAX = LessonView(
    slug="softmax-cross-entropy",
    parse=_softmax_parse,
    explore=lambda params, settings: softmax.explore(params, deps.softmax_limits(settings)),
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


def _activations_parse(
    query: Mapping[str, str], settings: Settings
) -> activations.ActivationParams:
    return params_from_query(activations.ActivationParams(), query, {})


ACTIVATIONS = LessonView(
    slug="activations",
    parse=_activations_parse,
    explore=lambda params, settings: activations.explore(params, deps.activation_limits(settings)),
    figures=activation_figures.figures,
    code={
        "curve": source(activations.make_activation, activations.activation_curve),
        "softmax": source(activations.softmax_output_layer),
        "vanishing": source(activations.build_stack, activations.vanishing_gradients),
        "dead": source(activations.dead_relu_training),
    },
    snippet=activations.snippet,
    form=asdict,
)

VIEWS: dict[str, LessonView] = {view.slug: view for view in (SOFTMAX, ACTIVATIONS)}
