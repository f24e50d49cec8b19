"""Shared look for every figure, and small builders for Plotly's JSON figure format.

Figures are plain dicts in the format plotly.js draws (``{"data": [...], "layout": {...}}``).
Building them as dicts rather than through ``plotly.graph_objects`` skips its validation and
deep copies, which cost ten times the lesson's own PyTorch work on every slider move
(``make bench`` measured it); the tests check each figure's data against the lesson numbers.
"""

from __future__ import annotations

import math
from typing import Any

Figure = dict[str, Any]

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
HIGHLIGHT = "#c44e52"
MUTED = "#9aa7b8"
GRID = "#e5eaf2"
ACTIVATION_COLOURS = {
    "sigmoid": "#4c72b0",
    "tanh": "#dd8452",
    "relu": "#55a868",
    "leaky_relu": "#c44e52",
    "elu": "#8172b3",
    "gelu": "#937860",
}


def axis(title: str = "", **extra: Any) -> dict[str, Any]:
    """A light-grid axis with a title."""
    return {
        "title": {"text": title},
        "automargin": True,
        "gridcolor": GRID,
        "zerolinecolor": "#c9d1dd",
        "linecolor": "#c9d1dd",
        **extra,
    }


def layout(
    title: str, xaxis: str | dict[str, Any] = "", yaxis: str | dict[str, Any] = "", **extra: Any
) -> dict[str, Any]:
    """A compact, readable layout that fits a phone and a laptop alike.

    An axis is its title, or a dict from ``axis()`` for more settings.
    """
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0.02, "xanchor": "left", "font": {"size": 15}},
        "margin": {"l": 56, "r": 16, "t": 44, "b": 48},
        "height": 320,
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "colorway": PALETTE,
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        "xaxis": axis(xaxis) if isinstance(xaxis, str) else xaxis,
        "yaxis": axis(yaxis) if isinstance(yaxis, str) else yaxis,
        "legend": {"orientation": "h", "y": -0.22},
        "hovermode": "closest",
    }
    base.update(extra)
    return base


def figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> Figure:
    """A figure as plotly.js takes it; NaN and inf become null (a gap), as Plotly's encoder does."""
    return {"data": finite(data), "layout": layout}


def finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, so it is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def bar(x: list[Any], y: list[float], **extra: Any) -> dict[str, Any]:
    return {"type": "bar", "x": x, "y": y, **extra}


def line(x: list[Any], y: list[float], **extra: Any) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, **extra}


def heatmap(
    z: list[list[float]] | list[list[float | None]],
    colorscale: str | list[list[Any]],
    labelled_cells: int = 64,
    text_format: str = "%{z:.3~g}",
    **extra: Any,
) -> dict[str, Any]:
    """A matrix as a heatmap trace with gaps between cells; small ones print their numbers.

    Pair it with a reversed y axis so row 0 sits at the top, as in a printed matrix.
    """
    trace: dict[str, Any] = {
        "type": "heatmap",
        "z": z,
        "colorscale": colorscale,
        "xgap": 2,
        "ygap": 2,
        "hovertemplate": "row %{y}, column %{x}: %{z:.4~g}<extra></extra>",
        **extra,
    }
    if sum(len(row) for row in z) <= labelled_cells:
        trace["texttemplate"] = text_format
    return trace


def vline(x: float, **style: Any) -> dict[str, Any]:
    """A vertical line across the plot at ``x``."""
    return {
        "type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
        "line": {"color": "#555", "dash": "dash", **style},
    }  # fmt: skip


def hline(y: float, **style: Any) -> dict[str, Any]:
    """A horizontal line across the plot at ``y``."""
    return {
        "type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": y, "y1": y,
        "line": {"color": HIGHLIGHT, "dash": "dash", **style},
    }  # fmt: skip


def class_labels(count: int) -> list[str]:
    """Class names for the x axis."""
    return [f"class {i}" for i in range(count)]
