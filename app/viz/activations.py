"""Figures for the activation-functions lesson."""

from __future__ import annotations

from typing import Any

from app.viz.common import (
    ACTIVATION_COLOURS,
    HIGHLIGHT,
    MUTED,
    PALETTE,
    Figure,
    axis,
    bar,
    figure,
    layout,
    line,
)

LABELS = {
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU",
    "elu": "ELU",
    "gelu": "GELU",
}


def curve(result: dict[str, Any]) -> Figure:
    """f(x) and its derivative from autograd."""
    name = result["name"]
    c = result["curve"]
    traces = [
        line(c["x"], c["y"], name=f"{LABELS[name]}(x)",
             line={"color": ACTIVATION_COLOURS[name], "width": 3}),
        line(c["x"], c["derivative"], name="derivative (autograd)",
             line={"color": "#333", "width": 2, "dash": "dot"}),
    ]  # fmt: skip
    return figure(traces, layout(f"{LABELS[name]} and its derivative", "x", "y"))


def softmax_layer(result: dict[str, Any]) -> Figure:
    """softmax([x, 1, -1]): three probabilities that always sum to 1."""
    x = result["curve"]["x"]
    probs = result["softmax"]
    labels = ["p(class 0), logit x", "p(class 1), logit 1", "p(class 2), logit -1"]
    traces = [
        line(x, [row[i] for row in probs], name=label, stackgroup="p", line={"color": PALETTE[i]})
        for i, label in enumerate(labels)
    ]
    return figure(
        traces,
        layout(
            "Softmax in the output layer: stacked, they fill 1",
            "x",
            yaxis=axis("p", range=[0, 1]),
        ),
    )


def vanishing(result: dict[str, Any]) -> Figure:
    """Weight-gradient norm per layer, input side on the left, log scale."""
    traces = [
        line(
            list(range(len(norms))),
            [max(n, 1e-30) for n in norms],  # a log axis cannot show 0
            name=LABELS[name],
            mode="lines+markers",
            line={"color": ACTIVATION_COLOURS[name], "width": 2},
            hovertemplate=f"{LABELS[name]}: layer %{{x}}, |grad| = %{{y:.3g}}<extra></extra>",
        )
        for name, norms in result["vanishing"].items()
    ]
    return figure(
        traces,
        layout(
            "Gradient norm per layer (0 = nearest the input)",
            "layer",
            yaxis=axis("‖dL/dW‖ (log)", type="log", exponentformat="power"),
        ),
    )


def dead_units(result: dict[str, Any]) -> Figure:
    """Loss and units receiving zero gradient, per SGD step, ReLU against leaky ReLU."""
    relu, leaky = result["dead_relu"], result["dead_leaky"]
    steps = list(range(len(relu["loss"])))
    leaky_name = f"leaky ReLU (a = {result['leaky_slope']:g})"
    traces = []
    for suffix, key in (("", "loss"), ("2", "zero_grad")):
        panel = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "showlegend": not suffix}
        traces += [
            line(steps, relu[key], name="ReLU", line={"color": ACTIVATION_COLOURS["relu"]},
                 **panel),
            line(steps, leaky[key], name=leaky_name,
                 line={"color": ACTIVATION_COLOURS["leaky_relu"], "dash": "dash"}, **panel),
        ]  # fmt: skip
    titles = [
        {"text": text, "xref": "paper", "yref": "paper", "x": x, "y": 1.0, "xanchor": "center",
         "yanchor": "bottom", "showarrow": False}
        for text, x in (("loss", 0.225), ("units with zero gradient", 0.775))
    ]  # fmt: skip
    return figure(
        traces,
        layout(
            "Dead ReLUs never update; leaky ReLU keeps learning",
            xaxis=axis("SGD step", domain=[0, 0.45]),
            xaxis2=axis("SGD step", domain=[0.55, 1], anchor="y2"),
            yaxis2=axis(anchor="x2"),
            annotations=titles,
            margin={"l": 56, "r": 16, "t": 64, "b": 48},
            legend={"orientation": "h", "y": -0.32},
        ),
    )


def moved(result: dict[str, Any]) -> Figure:
    """How far each hidden unit's weight moved during training."""
    relu, leaky = result["dead_relu"]["moved"], result["dead_leaky"]["moved"]
    units = [f"unit {i}" for i in range(len(relu))]
    traces = [
        bar(units, relu, name="ReLU", marker={"color": MUTED}),
        bar(units, leaky, name="leaky ReLU", marker={"color": HIGHLIGHT}),
    ]
    return figure(
        traces,
        layout("How far each unit's weight moved |w_end - w_start|", yaxis="|Δw|", barmode="group"),
    )


def figures(result: dict[str, Any]) -> dict[str, Figure]:
    """Every figure of the lesson page, by id."""
    return {
        "curve": curve(result),
        "softmax": softmax_layer(result),
        "vanishing": vanishing(result),
        "dead": dead_units(result),
        "moved": moved(result),
    }
