"""The Tensors lesson's figure: a heatmap of one tensor's values at the current step.

The page draws this figure for its first view, and asks ``POST /api/tensors/heatmap`` for it at
each step the learner steps to (static/js/tensors.js only draws it).
"""

from __future__ import annotations

import math
from typing import Any

from app.viz.common import Figure, axis, figure, layout
from app.viz.common import heatmap as matrix_heatmap

COLOURSCALE = [[0.0, "#f7fbff"], [0.5, "#6baed6"], [1.0, "#08306b"]]
MAX_LABELLED_CELLS = 64  # past this, numbers inside the cells are unreadable: hover instead


def cell(value: Any) -> float | None:
    """A Value's element as a number for Plotly: True is 1, "nan" and "inf" are gaps."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def flatten(values: Any) -> list[Any]:
    """A nested list's elements, row-major."""
    if isinstance(values, list):
        return [x for item in values for x in flatten(item)]
    return [values]


def as_rows(values: Any, shape: list[int]) -> list[list[float | None]]:
    """Any tensor as rows: 0-d is 1x1, 1-d one row, n-d keeps its last dimension as columns."""
    flat = [cell(v) for v in flatten(values)]
    columns = shape[-1] if shape else 1
    if columns == 0:
        return []
    return [flat[i : i + columns] for i in range(0, len(flat), columns)]


def empty(title: str) -> Figure:
    """A figure with nothing to draw yet: an empty heatmap, so the figure keeps its one trace."""
    trace = {"type": "heatmap", "z": [], "showscale": False, "hoverinfo": "skip"}
    return figure([trace], layout(title, height=260))


def heatmap(name: str | None, value: dict[str, Any] | None) -> Figure:
    """The tensor ``name`` as a heatmap, row 0 at the top as in its grid of values."""
    if name is None or value is None:
        return empty("No tensor at this step")
    shape = list(value.get("shape") or [])
    kind = "tensor" if value.get("kind") == "tensor" else "ndarray"
    title = f"{name}: {kind} {shape}, {value.get('dtype')}"
    if value.get("values") is None:
        return empty(f"{title} (too many elements to draw)")
    z = as_rows(value["values"], shape)
    trace = matrix_heatmap(
        z,
        COLOURSCALE,
        MAX_LABELLED_CELLS,
        text_format="%{z:.4~g}",
        hovertemplate="row %{y}, column %{x}: %{z}<extra></extra>",
        colorbar={"thickness": 12},
    )
    rows = len(z)
    return figure(
        [trace],
        layout(
            title,
            axis("column" if len(shape) > 1 else "index", dtick=1, zeroline=False),
            axis("row" if len(shape) > 1 else "", dtick=1, autorange="reversed", zeroline=False),
            height=max(220, min(420, 90 + 44 * rows)),
        ),
    )


def figures(result: dict[str, Any]) -> dict[str, Figure]:
    """The page's figures for the step shown: its tensor from ``result["variables"]``, every
    variable after the step as the lesson's ``step_view`` rebuilt them (a "changes" trace's
    steps hold only what changed, so a step's own ``variables`` may be empty)."""
    name = result.get("variable")
    value = (result.get("variables") or {}).get(name) if name is not None else None
    return {"heatmap": heatmap(name, value)}
