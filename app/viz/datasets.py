"""Figures of the Datasets and DataLoaders lesson: which batch took each row, epoch by epoch.

Each figure's last trace marks the batch of the step-through; the page's script moves it with
``Plotly.restyle`` as the learner steps, so a step costs no request.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any

from app.viz.common import HIGHLIGHT, PALETTE, Figure, axis, bar, figure, heatmap, layout, vline

BATCH_COLOURS = "Viridis"  # batch 0 dark, the last batch of an epoch yellow


def top_label(text: str, x: float) -> dict[str, Any]:
    """A label above the plot area at data position ``x`` (a class's rows, an epoch's bars)."""
    return {
        "text": text,
        "x": x,
        "xref": "x",
        "y": 1.0,
        "yref": "paper",
        "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": 11, "color": "#5b6575"},
    }


def batch_of_row(epochs: list[list[list[int]]], size: int) -> list[list[float | None]]:
    """For each epoch and table row, the i of the batch that held it; None: dropped."""
    grid: list[list[float | None]] = []
    for batches in epochs:
        row: list[float | None] = [None] * size
        for i, indices in enumerate(batches):
            for index in indices:
                row[index] = float(i)
        grid.append(row)
    return grid


def class_bounds(class_counts: list[int]) -> list[float]:
    """Where one class's rows end and the next begin: the wine table is sorted by class."""
    return [end - 0.5 for end in accumulate(class_counts)][:-1]


def current_marks(result: dict[str, Any]) -> dict[str, Any]:
    """Where the step-through's batch sits in each figure (the script computes the same)."""
    indices, epoch = result["at"]["rows"], result["at"]["epoch"]
    return {
        "rows": {"x": indices, "y": [epoch] * len(indices)},
        "iteration": {"x": [result["step"]], "y": [len(indices)]},
    }


def assignment_figure(result: dict[str, Any]) -> Figure:
    """Epoch × table row, coloured by the batch that row went into."""
    size, epochs = result["size"], len(result["epochs"])
    grid = batch_of_row(result["epochs"], size)
    per_epoch = result["batches_per_epoch"]
    marks = current_marks(result)["rows"]
    traces = [
        heatmap(
            grid,
            BATCH_COLOURS,
            labelled_cells=0,
            x=list(range(size)),
            y=list(range(epochs)),
            zmin=0,
            zmax=max(per_epoch - 1, 1),
            xgap=0,
            ygap=4,
            name="batch i",
            colorbar={"title": {"text": "batch i"}, "thickness": 10},
            hovertemplate="epoch %{y}, row %{x}: batch i = %{z}<extra></extra>",
            hoverongaps=False,
        ),
        {
            "type": "scatter",
            "mode": "markers",
            "name": "this batch",
            "x": marks["x"],
            "y": marks["y"],
            "marker": {
                "symbol": "diamond",
                "size": 11,
                "color": HIGHLIGHT,
                "line": {"width": 1.5, "color": "#fff"},  # stands out on every batch colour
            },
            "hovertemplate": "row %{x}: in this batch<extra></extra>",
            "showlegend": False,
        },
    ]
    bounds = class_bounds(result["class_counts"])
    starts = [-0.5, *bounds]
    ends = [*bounds, size - 0.5]
    annotations = [
        top_label(name, (start + end) / 2)
        for name, start, end in zip(result["class_names"], starts, ends, strict=True)
    ]
    base = layout(
        "Which batch took each row, per epoch",
        axis("table row (dataset index)", range=[-0.5, size - 0.5], zeroline=False),
        axis(
            "epoch",
            tickvals=list(range(epochs)),
            ticktext=[str(e) for e in range(epochs)],
            autorange="reversed",
            zeroline=False,
            showgrid=False,
        ),
        height=min(520, 170 + 34 * epochs),
        shapes=[vline(b, color="#5b6575", dash="dot", width=1) for b in bounds],
        annotations=annotations,
        showlegend=False,
    )
    base["margin"] = {"l": 56, "r": 16, "t": 64, "b": 48}
    return figure(traces, base)


def iterations_figure(result: dict[str, Any]) -> Figure:
    """One bar per iteration, stacked by class, epoch after epoch: total = epochs × per epoch."""
    per_epoch, total = result["batches_per_epoch"], result["total_iterations"]
    epochs = len(result["epochs"])
    steps = list(range(1, total + 1))
    counts = [c for batches in result["batch_classes"] for c in batches]  # (total, 3)
    traces: list[dict[str, Any]] = [
        bar(
            steps,
            [float(c[k]) for c in counts],
            name=name,
            marker={"color": PALETTE[k]},
            hovertemplate=f"step %{{x}}: %{{y}} of {name}<extra></extra>",
        )
        for k, name in enumerate(result["class_names"])
    ]
    marks = current_marks(result)["iteration"]
    traces.append(
        {
            "type": "scatter",
            "mode": "markers",
            "name": "this step",
            "x": marks["x"],
            "y": marks["y"],
            "marker": {"symbol": "triangle-down", "size": 12, "color": HIGHLIGHT},
            "cliponaxis": False,
            "hovertemplate": "this step: %{x}<extra></extra>",
        }
    )
    batch_size = result["loader"]["batch_size"]
    annotations = [
        top_label(f"epoch = {e}", e * per_epoch + (per_epoch + 1) / 2) for e in range(epochs)
    ]
    base = layout(
        f"{total} iterations = {epochs} epochs × {per_epoch} iterations",
        axis("iteration, over all epochs", range=[0.5, total + 0.5]),
        axis("samples in the batch", range=[0, batch_size * 1.25], rangemode="tozero"),
        barmode="stack",
        bargap=0.15 if total <= 120 else 0,
        shapes=[vline(e * per_epoch + 0.5, width=1) for e in range(1, epochs)],
        annotations=annotations,
        height=340,
        legend={"orientation": "h", "y": -0.3, "traceorder": "normal"},
    )
    base["margin"] = {"l": 56, "r": 16, "t": 64, "b": 64}
    return figure(traces, base)


def figures(result: dict[str, Any]) -> dict[str, Figure]:
    """Every figure of the page, by id."""
    return {
        "assignment": assignment_figure(result),
        "iterations": iterations_figure(result),
    }
