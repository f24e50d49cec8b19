"""Figures of the CNN lesson: feature maps as heatmaps, and the feature counts the notes compute."""

from __future__ import annotations

import math
from typing import Any

from app.viz.common import PALETTE, Figure, axis, bar, figure, heatmap_grid, layout
from app.viz.common import heatmap as common_heatmap

SEQUENTIAL = "Viridis"  # as the PNG previews: dark = the smallest value, yellow = the largest
LABELLED_CELLS = 64  # heatmaps up to this size print their numbers in the cells


def heatmap(z: list[list[float]], **extra: Any) -> dict[str, Any]:
    """One map, row 0 at the top, numbers printed when it is small."""
    return common_heatmap(z, SEQUENTIAL, LABELLED_CELLS, **extra)


def window_figure(window: dict[str, Any]) -> Figure:
    """The whole output of the sliding window: what F.conv2d returned."""
    h, w = window["output_shape"]
    base = layout(
        f"F.conv2d output: {h}×{w}",
        axis("column", dtick=1, zeroline=False, showgrid=False),
        axis("row", dtick=1, zeroline=False, showgrid=False, autorange="reversed"),
        height=max(220, min(400, 110 + 40 * h)),
    )
    return figure([heatmap(window["output"], colorbar={"thickness": 10})], base)


def image_counts_figure(image: dict[str, Any]) -> Figure:
    """Features after each stage: 3×H×W, after the filters, after pooling (the notes: 75 -> 27)."""
    counts = image["feature_counts"]
    _, h, w = image["input_shape"]
    ch, cw = image["channels"][0]["conv_shape"]
    ph, pw = image["channels"][0]["pooled_shape"]
    x = [f"input 3×{h}×{w}", f"conv 3×{ch}×{cw}", f"{image['pool']} pool 3×{ph}×{pw}"]
    y = [counts["input"], counts["conv"], counts["pooled"]]
    trace = bar(
        x,
        y,
        text=[f"{v:,}" for v in y],
        textposition="auto",
        marker={"color": [PALETTE[0], PALETTE[1], PALETTE[2]]},
        hovertemplate="%{x}: %{y:,} features<extra></extra>",
    )
    return figure([trace], layout("Features after each stage", "", "features", height=280))


def pooling_figure(pooling: dict[str, Any]) -> Figure:
    """Max, min and average pooling of the same map, side by side."""
    kinds = ("max", "min", "avg")
    maps = [pooling["outputs"][k] for k in kinds]
    titles = [f"{k} pooling" for k in kinds]
    h = pooling["output_shape"][0]
    return heatmap_grid(
        f"{pooling['size']}×{pooling['size']} windows, stride {pooling['stride']}",
        maps,
        titles,
        colorscale=SEQUENTIAL,
        columns=3,
        height=max(230, min(420, 150 + 36 * h)),
        labelled_cells=LABELLED_CELLS,
    )


def layer_figure(layer: dict[str, Any]) -> Figure:
    """One map per filter of nn.Conv2d: out_channels filters give out_channels channels."""
    maps = layer["out"]
    n = len(maps)
    columns = min(n, 3)
    rows = math.ceil(n / columns)
    titles = [f"channel {i} (filter {i})" for i in range(n)]
    return heatmap_grid(
        f"nn.Conv2d(3, {n}, {layer['kernel_size']}) output: {n} channels",
        maps,
        titles,
        colorscale=SEQUENTIAL,
        columns=columns,
        height=90 + 170 * rows,
        labelled_cells=LABELLED_CELLS,
    )


def figures(result: dict[str, Any]) -> dict[str, Figure]:
    """Every figure of the page, by id."""
    return {
        "window-output": window_figure(result["window"]),
        "image-counts": image_counts_figure(result["image"]),
        "pooling": pooling_figure(result["pooling"]),
        "layer": layer_figure(result["layer"]),
    }
