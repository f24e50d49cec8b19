"""Figures for the activation-functions lesson."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from app.viz.common import ACTIVATION_COLOURS, HIGHLIGHT, MUTED, PALETTE, layout, to_spec

LABELS = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU",
    "elu": "ELU",
    "gelu": "GELU",
}


def curve(result: dict[str, Any]) -> dict[str, Any]:
    """f(x) and its derivative from autograd."""
    name = result["name"]
    c = result["curve"]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=c["x"], y=c["y"], name=f"{LABELS[name]}(x)",
            line={"color": ACTIVATION_COLOURS[name], "width": 3},
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=c["x"], y=c["derivative"], name="derivative (autograd)",
            line={"color": "#333", "width": 2, "dash": "dot"},
        )
    )  # fmt: skip
    fig.update_layout(layout(f"{LABELS[name]} and its derivative", "x", "y"))
    return to_spec(fig)


def softmax_layer(result: dict[str, Any]) -> dict[str, Any]:
    """softmax([x, 1, -1]): three probabilities that always sum to 1."""
    x = result["curve"]["x"]
    probs = result["softmax"]
    fig = go.Figure()
    for i, label in enumerate(
        ["p(class 0), logit x", "p(class 1), logit 1", "p(class 2), logit -1"]
    ):
        fig.add_trace(
            go.Scatter(
                x=x, y=[row[i] for row in probs], name=label, stackgroup="p",
                line={"color": PALETTE[i]},
            )
        )  # fmt: skip
    fig.update_layout(layout("Softmax in the output layer: stacked, they fill 1", "x", "p"))
    fig.update_yaxes(range=[0, 1])
    return to_spec(fig)


def vanishing(result: dict[str, Any]) -> dict[str, Any]:
    """Weight-gradient norm per layer, input side on the left, log scale."""
    fig = go.Figure()
    for name, norms in result["vanishing"].items():
        fig.add_trace(
            go.Scatter(
                x=list(range(len(norms))), y=[max(n, 1e-30) for n in norms], name=LABELS[name],
                mode="lines+markers", line={"color": ACTIVATION_COLOURS[name], "width": 2},
                hovertemplate=f"{LABELS[name]}: layer %{{x}}, |grad| = %{{y:.3g}}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        layout("Gradient norm per layer (0 = nearest the input)", "layer", "‖dL/dW‖ (log)")
    )
    fig.update_yaxes(type="log", exponentformat="power")
    return to_spec(fig)


def dead_units(result: dict[str, Any]) -> dict[str, Any]:
    """Loss and units receiving zero gradient, per SGD step, ReLU against leaky ReLU."""
    relu, leaky = result["dead_relu"], result["dead_leaky"]
    steps = list(range(len(relu["loss"])))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "units with zero gradient"))
    leaky_name = f"leaky ReLU (a = {result['leaky_slope']:g})"
    for col, key in ((1, "loss"), (2, "zero_grad")):
        fig.add_trace(
            go.Scatter(x=steps, y=relu[key], name="ReLU", showlegend=col == 1,
                       line={"color": ACTIVATION_COLOURS["relu"]}),
            row=1, col=col,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(x=steps, y=leaky[key], name=leaky_name, showlegend=col == 1,
                       line={"color": ACTIVATION_COLOURS["leaky_relu"], "dash": "dash"}),
            row=1, col=col,
        )  # fmt: skip
    fig.update_layout(layout("Dead ReLUs never update; leaky ReLU keeps learning"))
    fig.update_xaxes(title_text="SGD step")
    return to_spec(fig)


def moved(result: dict[str, Any]) -> dict[str, Any]:
    """How far each hidden unit's weight moved during training."""
    relu, leaky = result["dead_relu"]["moved"], result["dead_leaky"]["moved"]
    units = [f"unit {i}" for i in range(len(relu))]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=units, y=relu, name="ReLU", marker_color=MUTED))
    fig.add_trace(go.Bar(x=units, y=leaky, name="leaky ReLU", marker_color=HIGHLIGHT))
    fig.update_layout(
        layout("How far each unit's weight moved |w_end - w_start|", yaxis="|Δw|", barmode="group")
    )
    return to_spec(fig)


def figures(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every figure of the lesson page, by id."""
    return {
        "curve": curve(result),
        "softmax": softmax_layer(result),
        "vanishing": vanishing(result),
        "dead": dead_units(result),
        "moved": moved(result),
    }
