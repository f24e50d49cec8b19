"""Figures for the training-pipeline lesson: the fit, the loss, the parameters, the surface."""

from __future__ import annotations

import math
from typing import Any

from app.viz.common import HIGHLIGHT, MUTED, PALETTE, Figure, axis, figure, layout, line, vline

STAGE_STYLE = {  # drawn on top of each other: the dashes let all three show where they coincide
    "manual": {"color": PALETTE[0], "width": 6},
    "autograd": {"color": PALETTE[1], "width": 3.5, "dash": "dash"},
    "nn": {"color": PALETTE[2], "width": 2, "dash": "dot"},
}
W_COLOUR, B_COLOUR = PALETTE[0], PALETTE[1]
LEGEND_BELOW = {"orientation": "h", "x": 0, "y": -0.3, "yanchor": "top"}  # under the axis title


def _inside(x: float, xanchor: str) -> dict[str, Any]:
    """A legend in an empty top corner of the plot."""
    return {"x": x, "xanchor": xanchor, "y": 1, "yanchor": "top", "bgcolor": "#ffffffd0"}


def _marker(x: float | None, y: float | None, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "markers",
        "x": [x],
        "y": [y],
        "name": name,
        "marker": {"color": HIGHLIGHT, "size": 12, "line": {"color": "#fff", "width": 2}},
        **extra,
    }


def _epochs(result: dict[str, Any]) -> list[int]:
    return list(range(0, result["epochs"] + 1))


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def fit(result: dict[str, Any]) -> Figure:
    """The data points, the starting line and the line after the current epoch."""
    xs, ys = result["x"], result["y"]
    cur = result["current"]
    ends = [0.0, 1.0]

    def points(w: float | None, b: float | None) -> list[Any]:
        if w is None or b is None or not (math.isfinite(w) and math.isfinite(b)):
            return [None, None]  # a diverged run: no line to draw
        return [w * x + b for x in ends]

    traces = [
        {
            "type": "scatter",
            "mode": "markers",
            "x": xs,
            "y": ys,
            "name": "data",
            "marker": {"color": MUTED, "size": 8},
            "hovertemplate": "x = %{x:.3f}, y = %{y:.3f}<extra></extra>",
        },
        line(
            ends,
            points(result["w0"], result["b0"]),
            name="start (epoch 0)",
            line={"color": MUTED, "dash": "dash", "width": 1.5},
        ),
        line(
            ends,
            points(result["optimum"]["w"], result["optimum"]["b"]),
            name="least squares",
            line={"color": PALETTE[2], "dash": "dot", "width": 2},
        ),
        line(
            ends,
            points(cur["w"], cur["b"]),
            name=f"epoch {result['epoch']}",
            line={"color": HIGHLIGHT, "width": 3},
        ),
    ]
    # The data and the starting line set the view; a diverging line may leave it, honestly.
    shown = [v for v in [*ys, *traces[1]["y"]] if v is not None]
    low, high = min(shown), max(shown)
    pad = 0.15 * (high - low)
    return figure(
        traces,
        layout(
            f"The line after epoch {result['epoch']}",
            xaxis=axis("x", range=[-0.05, 1.05]),
            yaxis=axis("y", range=[low - pad, high + pad]),
            legend=_inside(0.02, "left"),
        ),
    )


def loss(result: dict[str, Any]) -> Figure:
    """The loss each epoch's forward pass measured, on a log axis, with the current epoch marked."""
    losses = result["stages"][result["stage"]]["loss"]
    epochs = list(range(1, result["epochs"] + 1))
    traces = [
        line(
            epochs,
            losses,
            name="loss",
            line={"color": W_COLOUR, "width": 2.5},
            hovertemplate="epoch %{x}: loss %{y:.6g}<extra></extra>",
        ),
        line(
            [1, result["epochs"]],
            [result["optimum"]["loss"]] * 2,
            name="least-squares loss",
            line={"color": PALETTE[2], "dash": "dot", "width": 1.5},
        ),
    ]
    if result["epoch"] >= 1:
        traces.append(_marker(result["epoch"], result["current"]["loss"], "this epoch"))
    return figure(
        traces,
        layout(
            "Loss (MSE) per epoch",
            xaxis=axis("epoch"),
            yaxis=axis("loss (log scale)", type="log", exponentformat="power"),
            legend=_inside(0.98, "right"),
        ),
    )


def params(result: dict[str, Any]) -> Figure:
    """w and b after each epoch, with their least-squares values."""
    paths = result["paths"][result["stage"]]
    epochs = _epochs(result)
    opt = result["optimum"]
    traces = [
        line(epochs, paths["w"], name="w", line={"color": W_COLOUR, "width": 2.5}),
        line(epochs, paths["b"], name="b", line={"color": B_COLOUR, "width": 2.5}),
        line(
            [0, result["epochs"]],
            [opt["w"]] * 2,
            name="w*",
            line={"color": W_COLOUR, "dash": "dot", "width": 1},
        ),
        line(
            [0, result["epochs"]],
            [opt["b"]] * 2,
            name="b*",
            line={"color": B_COLOUR, "dash": "dot", "width": 1},
        ),
    ]
    return figure(
        traces,
        layout(
            "w and b after each epoch",
            legend=LEGEND_BELOW,
            xaxis=axis("epoch"),
            yaxis=axis("value"),
            shapes=[vline(result["epoch"])],
        ),
    )


def gradients(result: dict[str, Any]) -> Figure:
    """dL/dw and dL/db from each epoch's backward pass."""
    run = result["stages"][result["stage"]]
    epochs = list(range(1, result["epochs"] + 1))
    traces = [
        line(epochs, run["grad_w"], name="dL/dw", line={"color": W_COLOUR, "width": 2.5}),
        line(epochs, run["grad_b"], name="dL/db", line={"color": B_COLOUR, "width": 2.5}),
    ]
    shapes = [vline(result["epoch"])] if result["epoch"] >= 1 else []
    return figure(
        traces,
        layout(
            "Gradients per epoch",
            xaxis=axis("epoch"),
            yaxis=axis("gradient"),
            shapes=shapes,
            legend=LEGEND_BELOW,
        ),
    )


def surface(result: dict[str, Any]) -> Figure:
    """log10 of the MSE over (w, b), the descent path on it and the current point."""
    grid = result["surface"]
    paths = result["paths"][result["stage"]]
    k = result["epoch"]
    # Rounded for the wire (a 51 x 51 grid twice): contours and hover need no more digits.
    log_loss = [[round(math.log10(v), 3) if v > 0 else None for v in row] for row in grid["loss"]]
    shown_loss = [[float(f"{v:.4g}") for v in row] for row in grid["loss"]]
    contour = {
        "type": "contour",
        "x": grid["w"],
        "y": grid["b"],
        "z": log_loss,
        "customdata": shown_loss,
        "colorscale": "Blues",
        "reversescale": True,
        "ncontours": 18,
        "contours": {"coloring": "heatmap", "showlines": True},
        "line": {"color": "#ffffff80", "width": 0.5},
        "colorbar": {"title": {"text": "log10 loss"}, "thickness": 10},
        "hovertemplate": "w = %{x:.3f}, b = %{y:.3f}: loss %{customdata:.4g}<extra></extra>",
        "name": "loss",
    }
    walked = {"color": HIGHLIGHT, "width": 2}
    traces = [
        contour,
        line(
            paths["w"],
            paths["b"],
            mode="lines+markers",
            name="whole path",
            line={"color": "#ffffffb0", "width": 1},
            marker={"size": 3, "color": "#ffffffb0"},
        ),
        line(
            paths["w"][: k + 1],
            paths["b"][: k + 1],
            mode="lines+markers",
            name=f"epochs 0 to {k}",
            line=walked,
            marker={"size": 4, "color": HIGHLIGHT},
            hovertemplate="w = %{x:.4f}, b = %{y:.4f}<extra></extra>",
        ),
        {
            "type": "scatter",
            "mode": "markers",
            "x": [result["optimum"]["w"]],
            "y": [result["optimum"]["b"]],
            "name": "least squares",
            "marker": {"symbol": "star", "size": 14, "color": PALETTE[2]},
        },
        _marker(result["current"]["w"], result["current"]["b"], f"epoch {k}"),
    ]
    return figure(
        traces,
        layout(
            "Loss over (w, b), with the path",
            legend=LEGEND_BELOW,
            xaxis=axis("w", range=[grid["w"][0], grid["w"][-1]]),
            yaxis=axis("b", range=[grid["b"][0], grid["b"][-1]]),
            height=400,
        ),
    )


def stages(result: dict[str, Any]) -> Figure:
    """w after each epoch for the three stages, drawn on top of each other."""
    epochs = _epochs(result)
    traces = [
        line(
            epochs,
            result["paths"][stage]["w"],
            name=stage,
            line=STAGE_STYLE[stage],
            hovertemplate=f"{stage}: epoch %{{x}}, w %{{y:.7g}}<extra></extra>",
        )
        for stage in ("manual", "autograd", "nn")
    ]
    return figure(
        traces,
        layout(
            "w per epoch: three stages, one path",
            legend=LEGEND_BELOW,
            xaxis=axis("epoch"),
            yaxis=axis("w"),
            shapes=[vline(result["epoch"])],
        ),
    )


def agreement(result: dict[str, Any]) -> Figure:
    """How far each stage's w and b are from nn.Linear's, epoch by epoch."""
    epochs = _epochs(result)
    nn_path = result["paths"]["nn"]
    traces = []
    for stage, dash in (("manual", "solid"), ("autograd", "dash")):
        for name, colour in (("w", W_COLOUR), ("b", B_COLOUR)):
            mine = result["paths"][stage][name]
            gap: list[Any] = [
                a - b if _finite(a) and _finite(b) else None
                for a, b in zip(mine, nn_path[name], strict=True)
            ]
            traces.append(
                line(
                    epochs,
                    gap,
                    name=f"{name}_{stage} − {name}_nn",
                    line={"color": colour, "dash": dash, "width": 2},
                    hovertemplate=f"epoch %{{x}}: {name}_{stage} − {name}_nn = %{{y:.3g}}"
                    "<extra></extra>",
                )
            )
    return figure(
        traces,
        layout(
            "Gaps from nn.Linear (float32 rounding)",
            legend=LEGEND_BELOW,
            xaxis=axis("epoch"),
            yaxis=axis("difference", exponentformat="e"),
        ),
    )


def figures(result: dict[str, Any]) -> dict[str, Figure]:
    """Every figure of the lesson page, by id."""
    return {
        "fit": fit(result),
        "loss": loss(result),
        "params": params(result),
        "gradients": gradients(result),
        "surface": surface(result),
        "stages": stages(result),
        "agreement": agreement(result),
    }
