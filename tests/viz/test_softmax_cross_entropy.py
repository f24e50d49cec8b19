"""Softmax figures carry the lesson's numbers, are valid JSON for plotly.js, and validate against
Plotly's own schema."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from app.lessons import softmax_cross_entropy as softmax
from app.viz import softmax_cross_entropy as softmax_figures


@pytest.fixture(scope="module")
def softmax_result() -> dict:
    params = softmax.SoftmaxParams(temperature=2.0)
    return softmax.explore(params, softmax.SoftmaxLimits())


def test_every_figure_is_strict_json_and_valid_for_plotly(softmax_result: dict) -> None:
    all_figures = softmax_figures.figures(softmax_result)
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
