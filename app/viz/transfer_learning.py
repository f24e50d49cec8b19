"""Figures for the Transfer learning lesson: the modes' curves overlaid, and the sweep over the
number of labelled examples."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.viz.common import PALETTE, Figure, axis, figure, layout, line
from app.viz.tracking import metric_title

MODE_COLOURS = {"feature-extract": PALETTE[0], "finetune": PALETTE[1], "scratch": PALETTE[2]}


def mode_colour(mode: str | None, index: int) -> str:
    return MODE_COLOURS.get(mode or "", PALETTE[(index + 3) % len(PALETTE)])


def curves_figure(metric: str, series: Sequence[dict[str, Any]], per_epoch: bool) -> Figure:
    """``metric`` for each run, by epoch (or by step for the per-batch loss), one line a run."""
    data = []
    for i, s in enumerate(series):
        xs = [p[0] for p in s["points"]]
        ys = [p[1] for p in s["points"]]
        data.append(
            line(
                xs,
                ys,
                name=s["label"],
                mode="lines+markers" if per_epoch else "lines",
                marker={"size": 5},
                line={"color": mode_colour(s["mode"], i), "width": 2},
                hovertemplate=("epoch" if per_epoch else "step")
                + " %{x}<br>%{y:.3f}<extra>"
                + s["label"]
                + "</extra>",
            )
        )
    accuracy = metric.endswith("accuracy")
    return figure(
        data,
        layout(
            metric_title(metric) + " on digits 5-9"
            if metric.startswith("val_")
            else metric_title(metric),
            "epoch" if per_epoch else "step",
            axis(metric, range=[0, 1.02]) if accuracy else metric,
            height=340,
            showlegend=True,
            legend={"orientation": "h", "y": -0.3},
            uirevision=metric,
        ),
    )


def sweep_figure(sweep: dict[str, Any], modes: Sequence[str], chosen: int | None = None) -> Figure:
    """Mean held-out accuracy over the run (solid) and final accuracy (dotted) against the
    labelled examples per class, one colour per mode; a dashed line marks ``chosen``."""
    data = []
    for i, mode in enumerate(modes):
        rows = [r for r in sweep["rows"] if r["mode"] == mode]
        xs = [r["examples"] for r in rows]
        colour = mode_colour(mode, i)
        data.append(
            line(
                xs,
                [r["mean"] for r in rows],
                name=f"{mode}: mean over {sweep['epochs']} epochs",
                legendgroup=mode,
                mode="lines+markers",
                line={"color": colour, "width": 2},
                hovertemplate="%{x} per class<br>mean accuracy %{y:.3f}<extra>" + mode + "</extra>",
            )
        )
        data.append(
            line(
                xs,
                [r["final"] for r in rows],
                name=f"{mode}: final",
                legendgroup=mode,
                mode="lines+markers",
                marker={"symbol": "circle-open"},
                line={"color": colour, "width": 1, "dash": "dot"},
                hovertemplate="%{x} per class<br>final accuracy %{y:.3f}<extra>"
                + mode
                + "</extra>",
            )
        )
    return figure(
        data,
        layout(
            "Held-out accuracy against labelled examples per class",
            axis("labelled examples per class (log scale)", type="log", tickvals=sweep["examples"]),
            axis("accuracy on digits 5-9", range=[0, 1.02]),
            height=360,
            showlegend=True,
            legend={"orientation": "h", "y": -0.3},
            shapes=[
                {
                    "type": "line",
                    "xref": "x",
                    "yref": "paper",
                    "x0": chosen,
                    "x1": chosen,
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#7a8699", "dash": "dash", "width": 1},
                }
            ]
            if chosen
            else [],
        ),
    )
