"""Figures carry the lesson's numbers, are valid JSON for plotly.js, and validate against Plotly's
own schema."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from app.lessons import activations, softmax
from app.viz import activations as activation_figures
from app.viz import softmax as softmax_figures
from app.viz.common import finite


@pytest.fixture(scope="module")
def softmax_result() -> dict:
    params = softmax.SoftmaxParams(temperature=2.0)
    return softmax.explore(params, softmax.SoftmaxLimits())


@pytest.fixture(scope="module")
def activation_result() -> dict:
    params = activations.ActivationParams(name="tanh", depth=6)
    return activations.explore(params, activations.ActivationLimits())


def test_every_figure_is_strict_json_and_valid_for_plotly(
    softmax_result: dict, activation_result: dict
) -> None:
    all_figures = {
        **softmax_figures.figures(softmax_result),
        **activation_figures.figures(activation_result),
    }
    for name, spec in all_figures.items():
        json.dumps(spec, allow_nan=False)
        go.Figure(spec)  # raises on any property plotly.js would not understand
        assert spec["data"], name


def test_softmax_bars_are_the_probabilities_and_the_true_class_is_marked(
    softmax_result: dict,
) -> None:
    fig = softmax_figures.probabilities(softmax_result)
    assert np.allclose(fig["data"][0]["y"], softmax_result["probabilities"])
    colours = fig["data"][0]["marker"]["color"]
    assert colours[0] != colours[1] == colours[2]  # class 0 is the target


def test_temperature_marker_stands_at_the_chosen_temperature(softmax_result: dict) -> None:
    fig = softmax_figures.temperature(softmax_result)
    assert fig["layout"]["shapes"][0]["x0"] == 2.0  # data value: shapes are not log10 on log axes
    assert fig["layout"]["xaxis"]["type"] == "log"


def test_vanishing_figure_has_one_point_per_layer(activation_result: dict) -> None:
    fig = activation_figures.vanishing(activation_result)
    assert [len(trace["y"]) for trace in fig["data"]] == [6, 6, 6, 6]
    assert np.allclose(fig["data"][0]["y"], activation_result["vanishing"]["sigmoid"])


def test_non_finite_numbers_become_gaps() -> None:
    assert finite([1.0, float("nan"), [float("inf")], {"a": -float("inf")}]) == [
        1.0,
        None,
        [None],
        {"a": None},
    ]
