"""Figures for the softmax and cross-entropy lesson."""

from __future__ import annotations

import math
from typing import Any

from app.viz.common import (
    HIGHLIGHT,
    MUTED,
    PALETTE,
    Figure,
    axis,
    bar,
    class_labels,
    figure,
    hline,
    layout,
    line,
    vline,
)


def _bar_colours(count: int, target: int) -> list[str]:
    return [HIGHLIGHT if i == target else MUTED for i in range(count)]


def _class_bars(result: dict[str, Any], values: list[float], text: str, hover: str) -> dict:
    k, target = result["classes"], result["target"]
    return bar(
        class_labels(k),
        values,
        marker={"color": _bar_colours(k, target)},
        text=[format(v, text) for v in values],
        textposition="outside",
        cliponaxis=False,
        hovertemplate=hover,
    )


def probabilities(result: dict[str, Any]) -> Figure:
    """softmax(logits / T) per class, the true class highlighted."""
    p = result["probabilities"]
    trace = _class_bars(result, p, ".3f", "%{x}: p = %{y:.4f}<extra></extra>")
    return figure(
        [trace],
        layout("Probabilities: softmax(logits / T)", yaxis=axis("p", range=[0, 1.12])),
    )


def negative_log(result: dict[str, Any]) -> Figure:
    """-log p per class: the loss is the bar of the true class."""
    values = [-v for v in result["log_probabilities"]]
    trace = _class_bars(result, values, ".3f", "%{x}: -log p = %{y:.4f}<extra></extra>")
    title = f"-log p: the loss is class {result['target']}'s bar = {result['loss']:.4f}"
    top = max(values) * 1.2 + 0.1
    return figure([trace], layout(title, yaxis=axis("-log p", range=[0, top])))


def gradient(result: dict[str, Any]) -> Figure:
    """d loss / d logits from autograd, which equals (p - one_hot) / T."""
    g = result["gradient"]
    trace = _class_bars(result, g, "+.3f", "%{x}: dL/dz = %{y:.4f}<extra></extra>")
    span = [min(-1.1, min(g) * 1.2), max(1.1, max(g) * 1.2)]
    return figure(
        [trace], layout("Gradient d loss / d logits (autograd)", yaxis=axis("dL/dz", range=span))
    )


def temperature(result: dict[str, Any]) -> Figure:
    """Each class's probability as temperature goes from 0.1 to 10, with the chosen T marked."""
    ts = result["sweep_temperatures"]
    rows = result["sweep_probabilities"]
    traces = [
        line(
            ts,
            [row[i] for row in rows],
            name=f"class {i}",
            line={"color": PALETTE[i % len(PALETTE)], "width": 3 if i == result["target"] else 2},
            hovertemplate=f"class {i}: T = %{{x:.2f}}, p = %{{y:.3f}}<extra></extra>",
        )
        for i in range(result["classes"])
    ]
    return figure(
        traces,
        layout(
            "Temperature: T < 1 sharpens, T > 1 flattens",
            xaxis=axis("T", type="log"),
            yaxis=axis("p", range=[0, 1.02]),
            shapes=[vline(result["temperature"])],  # shapes take data values, even on a log axis
        ),
    )


def mistake(result: dict[str, Any]) -> Figure:
    """Loss as the network grows confident: right use falls to 0, softmax-then-CE stalls."""
    scales = result["mistake_scales"]
    sweep = result["mistake_sweep"]
    traces = [
        line(
            scales,
            [s["right_loss"] for s in sweep],
            name="CrossEntropyLoss(logits)",
            line={"color": PALETTE[2], "width": 3},
        ),
        line(
            scales,
            [s["wrong_loss"] for s in sweep],
            name="CrossEntropyLoss(softmax(logits)): wrong",
            line={"color": HIGHLIGHT, "width": 3, "dash": "dash"},
        ),
    ]
    return figure(
        traces,
        layout("Softmax before CrossEntropyLoss: the loss cannot reach 0", "logits × s", "loss"),
    )


def batch(result: dict[str, Any]) -> Figure:
    """Per-sample probabilities as a heatmap, each true class outlined."""
    probs = result["batch_probabilities"]
    targets = result["batch_targets"]
    rows = [f"sample {i} (y={t})" for i, t in enumerate(targets)]
    trace = {
        "type": "heatmap",
        "z": probs,
        "x": class_labels(len(probs[0])),
        "y": rows,
        "zmin": 0,
        "zmax": 1,
        "colorscale": "Blues",
        "text": [[f"{v:.2f}" for v in row] for row in probs],
        "texttemplate": "%{text}",
        "hovertemplate": "%{y}, %{x}: p = %{z:.3f}<extra></extra>",
        "showscale": False,
    }
    outlines = [
        {
            "type": "rect", "x0": t - 0.5, "x1": t + 0.5, "y0": i - 0.5, "y1": i + 0.5,
            "line": {"color": HIGHLIGHT, "width": 3},
        }
        for i, t in enumerate(targets)
    ]  # fmt: skip
    return figure(
        [trace],
        layout(
            "A batch: each row is softmax of one sample",
            height=120 + 50 * len(probs),
            yaxis=axis(autorange="reversed"),
            shapes=outlines,
        ),
    )


def batch_losses(result: dict[str, Any]) -> Figure:
    """-log p[y] per sample; nn.CrossEntropyLoss() returns their mean."""
    losses = result["batch_losses"]
    mean = result["batch_mean"]
    trace = bar(
        [f"sample {i}" for i in range(len(losses))],
        losses,
        marker={"color": MUTED},
        text=[f"{v:.3f}" for v in losses],
        textposition="outside",
        cliponaxis=False,
    )
    top = max([*losses, mean]) if all(math.isfinite(v) for v in losses) else 1.0
    note = {
        "xref": "paper", "x": 1, "xanchor": "right", "y": mean, "yanchor": "bottom",
        "text": f"mean = {mean:.4f}", "showarrow": False, "font": {"color": HIGHLIGHT},
    }  # fmt: skip
    return figure(
        [trace],
        layout(
            "Per-sample loss, and the mean CrossEntropyLoss() returns",
            yaxis=axis("loss", range=[0, top * 1.3 + 0.1]),
            shapes=[hline(mean)],
            annotations=[note],
        ),
    )


def figures(result: dict[str, Any]) -> dict[str, Figure]:
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
