"""Shared look for every figure, and small builders for Plotly's JSON figure format.

Figures are plain dicts in the format plotly.js draws (``{"data": [...], "layout": {...}}``).
Building them as dicts rather than through ``plotly.graph_objects`` skips its validation and
deep copies, which cost ten times the lesson's own PyTorch work on every slider move
(``make bench`` measured it); the tests check each figure's data against the lesson numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Figure = dict[str, Any]
Grid = Sequence[Sequence[float]]  # one matrix, row by row

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


def heatmap_grid(
    title: str,
    panels: Sequence[Grid],
    names: Sequence[str],
    *,
    colorscale: str | list[list[Any]],
    columns: int,
    height: int,
    zmin: float | None = None,
    zmax: float | None = None,
    numbered: bool = True,
    highlight: int | None = None,
    labelled_cells: int = 64,
    text_format: str = "%{z:.3~g}",
    what: str = "value",
) -> Figure:
    """Matrices side by side, row 0 at the top, on one colour scale so equal numbers get equal
    colours (``zmin``..``zmax``, by default the smallest and largest value of all panels).

    ``numbered`` panels keep their row and column numbers on the axes, for a few small matrices
    read cell by cell; otherwise the panels are bare, with square cells, so many fit a phone.
    ``highlight`` frames one panel (the channel in focus) and bolds its name; panels of up to
    ``labelled_cells`` cells print their numbers.
    """
    if zmin is None or zmax is None:
        values = [v for z in panels for row in z for v in row]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        zmin = low if zmin is None else zmin
        zmax = high if zmax is None else zmax
    rows = math.ceil(len(panels) / columns)
    traces = []
    annotations = []
    shapes = []
    extra: dict[str, Any] = {}
    bare = {"showticklabels": False, "ticks": "", "zeroline": False, "showgrid": False}
    for i, (z, name) in enumerate(zip(panels, names, strict=True)):
        suffix = "" if i == 0 else str(i + 1)
        trace = heatmap(
            [list(row) for row in z],
            colorscale,
            labelled_cells,
            text_format,
            xaxis=f"x{suffix}",
            yaxis=f"y{suffix}",
            zmin=zmin,
            zmax=zmax,
            name=name,
            showscale=i == 0,
            colorbar={"thickness": 10},
            hovertemplate=f"{name}<br>row %{{y}}, column %{{x}}<br>{what} %{{z:.4~g}}"
            "<extra></extra>",
        )
        if numbered:
            extra[f"xaxis{suffix}"] = axis("", dtick=1, zeroline=False, showgrid=False)
            extra[f"yaxis{suffix}"] = axis(
                "", dtick=1, zeroline=False, showgrid=False, autorange="reversed"
            )
        else:  # small panels: thin gaps and small numbers
            trace |= {"xgap": 1, "ygap": 1, "textfont": {"size": 9}}
            extra[f"xaxis{suffix}"] = axis("", constrain="domain", **bare)
            extra[f"yaxis{suffix}"] = axis(
                "", autorange="reversed", scaleanchor=f"x{suffix}", constrain="domain", **bare
            )
        traces.append(trace)
        bold = i == highlight
        annotations.append(
            {
                "text": f"<b>{name}</b>" if bold else name,
                "showarrow": False,
                "xref": f"x{suffix} domain",
                "yref": f"y{suffix} domain",
                "x": 0.5,
                "y": 1.0,
                "yanchor": "bottom",
                "font": {"size": 12 if numbered else 11, "color": HIGHLIGHT if bold else "#333"},
            }
        )
        if bold:
            shapes.append(
                {
                    "type": "rect",
                    "xref": f"x{suffix} domain",
                    "yref": f"y{suffix} domain",
                    "x0": -0.04,
                    "x1": 1.04,
                    "y0": -0.04,
                    "y1": 1.04,
                    "line": {"color": HIGHLIGHT, "width": 3},
                }
            )
    base = layout(title, height=height, annotations=annotations, shapes=shapes, **extra)
    base["grid"] = {
        "rows": rows,
        "columns": columns,
        "pattern": "independent",
        "xgap": 0.12 if numbered else 0.15,
        "ygap": 0.3,
    }
    # numbered axes need room for their tick labels on the left and below
    base["margin"] = (
        {"l": 30, "r": 16, "t": 64, "b": 28} if numbered else {"l": 12, "r": 12, "t": 64, "b": 12}
    )
    return figure(traces, base)


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
