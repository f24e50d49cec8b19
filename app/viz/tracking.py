"""Figures for runs: scalar charts (one run or several overlaid, raw and smoothed) and
precision/recall curves with the threshold under the cursor.

They draw what ``app.lessons.tracking`` computed (the smoothed values, the curves and their
operating points), handed over as plain lists: this module imports no lesson, so no torch.

Scalar figures keep a fixed trace order so a live page can grow them with
``Plotly.extendTraces``: for the i-th series, trace ``2 i`` is the raw curve (faint) and trace
``2 i + 1`` the smoothed one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from app.viz.common import PALETTE, Figure, axis, figure, layout, line

Points = Sequence[Sequence[float]]  # [[step, value], ...]
# (label, [[step, value], ...], the values smoothed): one line of a scalar chart.
Series = tuple[str, Points, Sequence[float]]


class Curve(Protocol):
    """A precision/recall curve as ``app.lessons.tracking.pr_curve`` makes it."""

    @property
    def thresholds(self) -> Sequence[float]: ...
    @property
    def precision(self) -> Sequence[float]: ...
    @property
    def recall(self) -> Sequence[float]: ...


# (label, the curve, its operating point {"threshold", "precision", "recall"} or None).
PRLine = tuple[str, Curve, Mapping[str, float] | None]

# Points drawn per line at most: a chart of more shows nothing more, it only weighs more (a
# 50-epoch digits run at batch size 1 logs 72,000 losses; at the default batch size, 2,250).
MAX_POINTS_DRAWN = 10_000

METRIC_TITLES = {
    "loss": "Training loss (per step)",
    "accuracy": "Training accuracy (per epoch)",
    "val_loss": "Held-out loss (per epoch)",
    "val_accuracy": "Held-out accuracy (per epoch)",
    "w": "Weight w",
    "b": "Bias b",
    "grad_w": "Gradient dL/dw",
    "grad_b": "Gradient dL/db",
    "epoch": "Epoch",
}


def metric_title(name: str) -> str:
    return METRIC_TITLES.get(name, name)


def thin(count: int, most: int) -> list[int]:
    """Indices of at most about ``most`` of ``count`` points, evenly spread, the last included."""
    if count <= most:
        return list(range(count))
    stride = -(-count // most)  # ceil
    kept = list(range(0, count, stride))
    return kept if kept[-1] == count - 1 else [*kept, count - 1]


def scalar_figure(
    metric: str,
    series: Sequence[Series],
    smoothing: float,
    height: int = 300,
    most: int = MAX_POINTS_DRAWN,
) -> Figure:
    """``metric`` for each (label, points, smoothed) series: raw (faint) and smoothed lines, the
    smoothed values as ``smooth(values, smoothing)`` gave them.

    A long series is smoothed whole, then drawn thinned to about ``most`` points (as TensorBoard
    samples its scalars): a run at batch size 1 logs tens of thousands of steps.
    """
    data: list[dict[str, Any]] = []
    for i, (label, points, smoothed_all) in enumerate(series):
        if len(smoothed_all) != len(points):
            raise ValueError(f"{label}: {len(points)} points but {len(smoothed_all)} smoothed")
        colour = PALETTE[i % len(PALETTE)]
        kept = thin(len(points), most)
        steps = [points[k][0] for k in kept]
        values = [float(points[k][1]) for k in kept]
        smoothed = [smoothed_all[k] for k in kept]
        data.append(
            line(
                steps,
                values,
                name=f"{label} (raw)",
                legendgroup=label,
                showlegend=False,
                opacity=0.3 if smoothing > 0 else 1.0,
                line={"color": colour, "width": 1},
                hovertemplate="step %{x}<br>raw %{y:.4g}<extra>" + label + "</extra>",
            )
        )
        data.append(
            line(
                steps,
                smoothed,
                name=label,
                legendgroup=label,
                visible=True if smoothing > 0 else "legendonly",
                line={"color": colour, "width": 2},
                hovertemplate="step %{x}<br>smoothed %{y:.4g}<extra>" + label + "</extra>",
                meta={"smoothing": smoothing},
            )
        )
    return figure(
        data,
        layout(
            metric_title(metric),
            "step",
            metric,
            height=height,
            showlegend=len(series) > 1,
            uirevision=metric,
        ),
    )


def pr_figure(curves: Sequence[PRLine]) -> Figure:
    """Precision against recall; hovering a point shows the threshold that gives it. A curve
    with an operating point (``operating_point(curve, threshold)``) gets it marked."""
    data: list[dict[str, Any]] = []
    for i, (label, curve, at) in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        data.append(
            line(
                list(curve.recall),
                list(curve.precision),
                name=label,
                mode="lines+markers",
                marker={"size": 4, "color": colour},
                line={"color": colour, "shape": "hv", "width": 2},
                customdata=curve.thresholds,
                hovertemplate=(
                    "threshold p ≥ %{customdata:.3f}<br>recall %{x:.3f}<br>"
                    "precision %{y:.3f}<extra>" + label + "</extra>"
                ),
            )
        )
        if at is not None:
            data.append(
                line(
                    [at["recall"]],
                    [at["precision"]],
                    mode="markers",
                    name=f"{label} at p ≥ {at['threshold']:g}",
                    marker={
                        "size": 12,
                        "color": colour,
                        "symbol": "circle-open",
                        "line": {"width": 3},
                    },
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
    return figure(
        data,
        layout(
            "Precision / recall (hover: the threshold)",
            axis("recall", range=[0, 1.02]),
            axis("precision", range=[0, 1.05]),
            height=320,
            showlegend=len(curves) > 1,
        ),
    )
