"""The Transforms page's figure: a histogram of the values at one stage of the pipeline.

static/js/transforms.js draws the same traces from the API's stages when the learner uploads a
picture or edits the pipeline (``histogramTraces`` there mirrors ``histogram_traces`` here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.viz.common import Figure, axis, bar, figure, layout

CHANNEL_COLOURS = {"R": "#c44e52", "G": "#55a868", "B": "#4c72b0", "L": "#555555"}


def histogram_traces(stage: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One bar trace per channel over the stage's bins (the bars overlap, half transparent)."""
    hist = stage["histogram"]
    edges = hist["edges"]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
    width = edges[1] - edges[0]
    return [
        bar(
            centres,
            counts,
            name=channel,
            width=width,
            opacity=0.55,
            marker={"color": CHANNEL_COLOURS.get(channel, "#8172b3")},
            hovertemplate=f"{channel}: %{{y}} values near %{{x:.3g}}<extra></extra>",
        )
        for channel, counts in zip(hist["channels"], hist["counts"], strict=True)
    ]


def histogram_title(stage: Mapping[str, Any], index: int) -> str:
    """``Stage 4 · ToTensor()``, or the input picture."""
    return "The input picture" if index == 0 else f"Stage {index} · {stage['call']}"


def value_axis(stage: Mapping[str, Any]) -> str:
    """What the histogram's x axis counts: pixel values or tensor values, with the dtype."""
    if stage["kind"] == "image":
        return f"pixel value ({stage['dtype']}, 0–255)"
    return f"tensor value ({stage['dtype']})"


def histogram(stage: Mapping[str, Any], index: int) -> Figure:
    """How the values at one stage are spread, per channel."""
    return figure(
        histogram_traces(stage),
        layout(
            histogram_title(stage, index),
            axis(value_axis(stage)),
            axis("how many values"),
            barmode="overlay",
            bargap=0,
            height=300,
            legend={"orientation": "h", "y": -0.3},
        ),
    )


def figures(result: Mapping[str, Any]) -> dict[str, Figure]:
    """The page's figures, for the stage the URL selects (0 is the input picture)."""
    stages = [result["input"], *result["stages"]]
    index = result["stage"]
    return {"histogram": histogram(stages[index], index)}
