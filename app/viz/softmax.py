"""Figures for the softmax and cross-entropy lesson."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

from app.viz.common import HIGHLIGHT, MUTED, PALETTE, class_labels, layout, to_spec


def _bar_colours(count: int, target: int) -> list[str]:
    return [HIGHLIGHT if i == target else MUTED for i in range(count)]


def probabilities(result: dict[str, Any]) -> dict[str, Any]:
    """softmax(logits / T) per class, the true class highlighted."""
    k, target = result["classes"], result["target"]
    p = result["probabilities"]
    fig = go.Figure(
        go.Bar(
            x=class_labels(k),
            y=p,
            marker_color=_bar_colours(k, target),
            text=[f"{v:.3f}" for v in p],
            textposition="outside",
            hovertemplate="%{x}: p = %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(layout("Probabilities: softmax(logits / T)", yaxis="p"))
    fig.update_yaxes(range=[0, 1.12])
    return to_spec(fig)


def negative_log(result: dict[str, Any]) -> dict[str, Any]:
    """-log p per class: the loss is the bar of the true class."""
    k, target = result["classes"], result["target"]
    values = [-v for v in result["log_probabilities"]]
    fig = go.Figure(
        go.Bar(
            x=class_labels(k),
            y=values,
            marker_color=_bar_colours(k, target),
            text=[f"{v:.3f}" for v in values],
            textposition="outside",
            hovertemplate="%{x}: -log p = %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        layout(f"-log p: the loss is class {target}'s bar = {result['loss']:.4f}", yaxis="-log p")
    )
    fig.update_yaxes(range=[0, max(values) * 1.2 + 0.1])
    return to_spec(fig)


def gradient(result: dict[str, Any]) -> dict[str, Any]:
    """d loss / d logits from autograd, which equals (p - one_hot) / T."""
    k, target = result["classes"], result["target"]
    g = result["gradient"]
    fig = go.Figure(
        go.Bar(
            x=class_labels(k),
            y=g,
            marker_color=_bar_colours(k, target),
            text=[f"{v:+.3f}" for v in g],
            textposition="outside",
            hovertemplate="%{x}: dL/dz = %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(layout("Gradient d loss / d logits (autograd)", yaxis="dL/dz"))
    fig.update_yaxes(range=[min(-1.1, min(g) * 1.2), max(1.1, max(g) * 1.2)])
    return to_spec(fig)


def temperature(result: dict[str, Any]) -> dict[str, Any]:
    """Each class's probability as temperature goes from 0.1 to 10, with the chosen T marked."""
    ts = result["sweep_temperatures"]
    rows = result["sweep_probabilities"]
    fig = go.Figure()
    for i in range(result["classes"]):
        fig.add_trace(
            go.Scatter(
                x=ts,
                y=[row[i] for row in rows],
                mode="lines",
                name=f"class {i}",
                line={
                    "color": PALETTE[i % len(PALETTE)],
                    "width": 3 if i == result["target"] else 2,
                },
                hovertemplate=f"class {i}: T = %{{x:.2f}}, p = %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_vline(x=result["temperature"], line_dash="dash", line_color="#555")
    fig.update_layout(layout("Temperature: T < 1 sharpens, T > 1 flattens", "T", "p"))
    fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, 1.02])
    return to_spec(fig)


def mistake(result: dict[str, Any]) -> dict[str, Any]:
    """Loss as the network grows confident: right use falls to 0, softmax-then-CE stalls."""
    scales = result["mistake_scales"]
    sweep = result["mistake_sweep"]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=scales,
            y=[s["right_loss"] for s in sweep],
            name="CrossEntropyLoss(logits)",
            line={"color": PALETTE[2], "width": 3},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=scales,
            y=[s["wrong_loss"] for s in sweep],
            name="CrossEntropyLoss(softmax(logits)): wrong",
            line={"color": HIGHLIGHT, "width": 3, "dash": "dash"},
        )
    )
    fig.update_layout(
        layout("Softmax before CrossEntropyLoss: the loss cannot reach 0", "logits × s", "loss")
    )
    return to_spec(fig)


def batch(result: dict[str, Any]) -> dict[str, Any]:
    """Per-sample probabilities (heatmap) beside per-sample losses and their mean."""
    probs = result["batch_probabilities"]
    targets = result["batch_targets"]
    n, k = len(probs), len(probs[0])
    rows = [f"sample {i} (y={t})" for i, t in enumerate(targets)]
    fig = go.Figure(
        go.Heatmap(
            z=probs,
            x=class_labels(k),
            y=rows,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            text=[[f"{v:.2f}" for v in row] for row in probs],
            texttemplate="%{text}",
            hovertemplate="%{y}, %{x}: p = %{z:.3f}<extra></extra>",
            showscale=False,
        )
    )
    for i, t in enumerate(targets):
        fig.add_shape(
            type="rect",
            x0=t - 0.5,
            x1=t + 0.5,
            y0=i - 0.5,
            y1=i + 0.5,
            line={"color": HIGHLIGHT, "width": 3},
        )
    fig.update_layout(layout("A batch: each row is softmax of one sample", height=120 + 50 * n))
    fig.update_yaxes(autorange="reversed")
    return to_spec(fig)


def batch_losses(result: dict[str, Any]) -> dict[str, Any]:
    """-log p[y] per sample; nn.CrossEntropyLoss() returns their mean."""
    losses = result["batch_losses"]
    mean = result["batch_mean"]
    labels = [f"sample {i}" for i in range(len(losses))]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=losses,
            marker_color=MUTED,
            text=[f"{v:.3f}" for v in losses],
            textposition="outside",
        )
    )
    fig.add_hline(
        y=mean, line_color=HIGHLIGHT, line_dash="dash", annotation_text=f"mean = {mean:.4f}"
    )
    top = max(losses + [mean]) if all(math.isfinite(v) for v in losses) else 1.0
    fig.update_layout(
        layout("Per-sample loss, and the mean CrossEntropyLoss() returns", yaxis="loss")
    )
    fig.update_yaxes(range=[0, top * 1.3 + 0.1])
    return to_spec(fig)


def figures(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every figure of the lesson page, by id."""
    return {
        "probabilities": probabilities(result),
        "negative-log": negative_log(result),
        "gradient": gradient(result),
        "temperature": temperature(result),
        "mistake": mistake(result),
        "batch": batch(result),
        "batch-losses": batch_losses(result),
    }
