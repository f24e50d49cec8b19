"""Figures of the CNN feature-maps page: filters and feature maps as small multiples, what each
channel responds to per digit class, and the model's prediction.

Feature maps after ReLU are never negative: they share one sequential scale from 0 to the layer's
largest value on the chosen digit, so a brighter panel is a channel that fired harder. Filters
are signed: a diverging scale centred on 0 (blue negative, red positive), shared by the layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from app.viz.common import (
    GRID,
    HIGHLIGHT,
    MUTED,
    PALETTE,
    Figure,
    Grid,
    axis,
    bar,
    figure,
    heatmap,
    heatmap_grid,
    layout,
)

SEQUENTIAL = "Viridis"  # as the CNN lesson's maps: dark = 0, yellow = the largest value
DIVERGING = [[0.0, "#2166ac"], [0.5, "#f7f7f7"], [1.0, "#b2182b"]]  # negative, 0, positive
COLUMNS = 4  # panels per row: readable on a 390 px phone and a laptop alike
WIDE_COLUMNS = 8  # for layers of more than 16 channels
ROW_HEIGHT = 128  # pixels per row of panels
TRUE_CLASS = "#55a868"
CELL_FORMAT = "%{z:.1f}"  # printed numbers: one decimal fits a small panel


def columns_for(count: int) -> int:
    return min(count, COLUMNS if count <= 16 else WIDE_COLUMNS)


def grid_height(count: int, columns: int, row_height: int = ROW_HEIGHT) -> int:
    """The height of ``count`` panels in rows of ``columns``: a title, then each row."""
    return 70 + math.ceil(count / columns) * row_height


def symmetric_range(panels: Sequence[Grid]) -> float:
    """The largest |value|, so a diverging scale puts 0 in its middle (1 when all are 0)."""
    largest = max((abs(v) for z in panels for row in z for v in row), default=0.0)
    return largest if largest > 0 else 1.0


def top_value(panels: Sequence[Grid]) -> float:
    """The largest value (1 when none is above 0), the top of a 0-based scale."""
    largest = max((v for z in panels for row in z for v in row), default=0.0)
    return largest if largest > 0 else 1.0


def panel_grid(
    title: str,
    panels: Sequence[Grid],
    names: list[str],
    *,
    signed: bool,
    columns: int | None = None,
    row_height: int = ROW_HEIGHT,
    **style: Any,
) -> Figure:
    """This page's bare square panels on one scale: diverging around 0 for weights
    (``signed``), 0 to the largest value for activations."""
    top = symmetric_range(panels) if signed else top_value(panels)
    columns = columns or columns_for(len(panels))
    return heatmap_grid(
        title,
        panels,
        names,
        colorscale=DIVERGING if signed else SEQUENTIAL,
        zmin=-top if signed else 0.0,
        zmax=top,
        columns=columns,
        height=grid_height(len(panels), columns, row_height),
        numbered=False,
        **style,
    )


def filters_figure(filters: Sequence[Grid], layer: int, what: str, focus: int) -> Figure:
    """Each channel's filter of conv layer ``layer`` (weights, or kernels summed); a first
    layer's few filters print their weights."""
    return panel_grid(
        f"Layer {layer} filters" + ("" if what == "the weights" else ", summed over inputs"),
        filters,
        [f"ch {k}" for k in range(len(filters))],
        signed=True,
        highlight=focus,
        labelled_cells=9 if len(filters) <= 8 else 0,
        text_format=CELL_FORMAT,
        what="weight",
    )


def maps_figure(maps: Sequence[Grid], layer: int, label: int, focus: int) -> Figure:
    """Conv layer ``layer``'s feature maps after ReLU for the chosen digit, one shared scale."""
    return panel_grid(
        f"Layer {layer} feature maps for this {label}",
        maps,
        [f"ch {k}" for k in range(len(maps))],
        signed=False,
        highlight=focus,
        labelled_cells=0,
        what="activation",
    )


def prediction_figure(classes: Sequence[str], probabilities: Sequence[float], label: int) -> Figure:
    """The model's class probabilities for the chosen digit; the true class in green."""
    colours = [TRUE_CLASS if c == str(label) else PALETTE[0] for c in classes]
    return figure(
        [
            bar(
                [f"digit {c}" for c in classes],
                list(probabilities),
                marker={"color": colours},
                text=[f"{p:.1%}" for p in probabilities],
                textposition="outside",
                cliponaxis=False,
                hovertemplate="%{x}: p = %{y:.4f}<extra></extra>",
            )
        ],
        layout(
            "Prediction: softmax of the logits",
            axis("", type="category"),
            axis("probability", range=[0, 1.12]),
            height=260,
        ),
    )


def class_means_figure(class_means: Sequence[Sequence[float]], layer: int, focus: int) -> Figure:
    """Each channel's mean activation per digit class (channels as rows), each row against its
    own largest value: channels differ in scale, and the preference within a row is the point."""
    channels = len(class_means)
    relative = [[v / max(row) if max(row) > 0 else 0.0 for v in row] for row in class_means]
    trace = heatmap(
        relative,
        SEQUENTIAL,
        0,
        x=[str(d) for d in range(len(class_means[0]))] if channels else [],
        y=[f"ch {k}" for k in range(channels)],
        customdata=[list(row) for row in class_means],
        xgap=1,
        ygap=1,
        zmin=0.0,
        zmax=1.0,
        hovertemplate="%{y}, digit %{x}: mean activation %{customdata:.4g}"
        " (%{z:.0%} of the row's largest)<extra></extra>",
        colorbar={"thickness": 10, "tickformat": ".0%"},
    )
    frame = {
        "type": "rect",
        "xref": "paper",
        "yref": "y",
        "x0": 0,
        "x1": 1,
        "y0": focus - 0.5,
        "y1": focus + 0.5,
        "line": {"color": HIGHLIGHT, "width": 2},
    }
    return figure(
        [trace],
        layout(
            f"Layer {layer}: mean activation per digit",
            axis("digit", type="category", showgrid=False),
            axis("", autorange="reversed", type="category", showgrid=False),
            height=100 + 22 * channels,
            shapes=[frame],
        ),
    )


def focus_classes_figure(means: Sequence[float], channel: int) -> Figure:
    """One channel's mean activation per digit class; its favourite digit stands out."""
    best = max(range(len(means)), key=lambda d: means[d]) if means else -1
    colours = [HIGHLIGHT if d == best else MUTED for d in range(len(means))]
    return figure(
        [
            bar(
                [str(d) for d in range(len(means))],
                list(means),
                marker={"color": colours},
                hovertemplate="digit %{x}: mean activation %{y:.4g}<extra></extra>",
            )
        ],
        layout(
            f"Channel {channel}: mean activation per digit",
            axis("digit", type="category"),
            axis("mean activation", gridcolor=GRID, rangemode="tozero")
            | ({} if any(v > 0 for v in means) else {"range": [0, 1]}),
            height=240,
        ),
    )


def focus_maps_figure(
    feature_map: Grid, pooled: Grid | None, channel: int, pool: str | None
) -> Figure:
    """The focused channel's map with its numbers, and the pooled map beside it."""
    panels = [feature_map] if pooled is None else [feature_map, pooled]
    h, w = len(feature_map), len(feature_map[0])
    names = [f"map {h}×{w}"]
    if pooled is not None:
        names.append(f"{pool or 'pooled'} {len(pooled)}×{len(pooled[0])}")
    return panel_grid(
        f"Channel {channel} on this digit",
        panels,
        names,
        signed=False,
        columns=len(panels),
        row_height=200,
        labelled_cells=64,
        text_format=CELL_FORMAT,
        what="activation",
    )


def focus_kernels_figure(kernels: Sequence[Grid], channel: int) -> Figure:
    """The focused channel's kernel for each input channel: which lower maps it combines."""
    return panel_grid(
        f"Channel {channel}'s kernel per input channel",
        kernels,
        [f"in {i}" for i in range(len(kernels))],
        signed=True,
        labelled_cells=0,
        what="weight",
    )


def figures(result: dict[str, Any]) -> dict[str, Figure]:
    """Every figure of the page, from ``app.lessons.cnn_feature_maps.explore``'s result."""
    layer, channel, label = result["layer"], result["channel"], result["input"]["label"]
    means = result["class_means"]
    out = {
        "prediction": prediction_figure(
            result["classes"], result["prediction"]["probabilities"], label
        ),
        "filters": filters_figure(result["filters"], layer, result["filters_are"], channel),
        "maps": maps_figure(result["maps"], layer, label, channel),
        "classes": class_means_figure(means, layer, channel),
        "channel_classes": focus_classes_figure(means[channel], channel),
        "channel_map": focus_maps_figure(
            result["maps"][channel],
            result["pooled"][channel] if result["pooled"] is not None else None,
            channel,
            result["layers"][layer - 1]["pool_kind"],
        ),
    }
    if len(result["kernels"]) > 1:
        out["kernels"] = focus_kernels_figure(result["kernels"], channel)
    return out
