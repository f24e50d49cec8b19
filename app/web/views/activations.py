"""The activation-functions page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from app.config import Settings
from app.lessons import activations
from app.viz import activations as activation_figures
from app.web.forms import params_from_query
from app.web.routes.lessons.activations import activation_limits
from app.web.views.base import LessonView, source


def _activations_parse(
    query: Mapping[str, str], settings: Settings
) -> activations.ActivationParams:
    return params_from_query(activations.ActivationParams(), query, {})


VIEW = LessonView(
    slug="activations",
    parse=_activations_parse,
    explore=lambda params, settings: activations.explore(params, activation_limits(settings)),
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
