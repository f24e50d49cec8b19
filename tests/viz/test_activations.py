"""Activation figures carry the lesson's numbers, are valid JSON for plotly.js, and validate
against Plotly's own schema."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from app.lessons import activations
from app.viz import activations as activation_figures


@pytest.fixture(scope="module")
def activation_result() -> dict:
    params = activations.ActivationParams(name="tanh", depth=6)
    return activations.explore(params, activations.ActivationLimits())


def test_every_figure_is_strict_json_and_valid_for_plotly(activation_result: dict) -> None:
    all_figures = activation_figures.figures(activation_result)
    for name, spec in all_figures.items():
        json.dumps(spec, allow_nan=False)
        go.Figure(spec)  # raises on any property plotly.js would not understand
        assert spec["data"], name


def test_vanishing_figure_has_one_point_per_layer(activation_result: dict) -> None:
    fig = activation_figures.vanishing(activation_result)
    assert [len(trace["y"]) for trace in fig["data"]] == [6, 6, 6, 6]
    assert np.allclose(fig["data"][0]["y"], activation_result["vanishing"]["sigmoid"])
