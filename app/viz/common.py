"""Shared look for every figure, and the JSON the pages embed."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
HIGHLIGHT = "#c44e52"
MUTED = "#9aa7b8"
ACTIVATION_COLOURS = {
    "sigmoid": "#4c72b0",
    "tanh": "#dd8452",
    "relu": "#55a868",
    "leaky_relu": "#c44e52",
    "elu": "#8172b3",
    "gelu": "#937860",
}


def layout(title: str, xaxis: str = "", yaxis: str = "", **extra: Any) -> dict[str, Any]:
    """A compact, readable layout that fits a phone and a laptop alike."""
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0.02, "xanchor": "left", "font": {"size": 15}},
        "margin": {"l": 56, "r": 16, "t": 44, "b": 48},
        "height": 320,
        "template": "plotly_white",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "xaxis": {"title": {"text": xaxis}, "automargin": True},
        "yaxis": {"title": {"text": yaxis}, "automargin": True},
        "legend": {"orientation": "h", "y": -0.22},
        "hovermode": "closest",
    }
    base.update(extra)
    return base


def to_spec(figure: go.Figure) -> dict[str, Any]:
    """A figure as plain JSON data; NaN and inf become null, as Plotly's own encoder does."""
    spec: dict[str, Any] = json.loads(pio.to_json(figure, validate=False, engine="json"))
    return spec


def class_labels(count: int) -> list[str]:
    """Class names for the x axis."""
    return [f"class {i}" for i in range(count)]
