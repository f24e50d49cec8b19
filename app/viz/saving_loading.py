"""Figures for Saving and loading: a loss curve that joins itself at a checkpoint.

The worked example's figure keeps a fixed trace order: 0 the unbroken run (a wide pale band
underneath), 1 epochs 1-4, 2 the continuation with the optimizer's state, 3 without. The chain
figure draws one line per run of the learner's resume chain, in the order given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.viz.common import PALETTE, Figure, axis, figure, hline, layout, line, vline

Points = Sequence[Sequence[float]]  # [[step, value], ...]

UNBROKEN = "#cfd6e2"
ORIGINAL = PALETTE[0]
WITH_STATE = PALETTE[2]
WITHOUT_STATE = PALETTE[3]
# Below the axis title, growing downwards: on a phone the entries stack, one a line.
LEGEND = {"orientation": "h", "y": -0.32, "yanchor": "top"}


def _xy(points: Points) -> tuple[list[float], list[float]]:
    return [p[0] for p in points], [float(p[1]) for p in points]


def _marker(step: float, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dashed line between two steps and its label at the top: where a run was resumed."""
    label = {
        "x": step, "y": 1, "xref": "x", "yref": "paper", "text": text, "showarrow": False,
        "xanchor": "left", "yanchor": "top", "font": {"size": 11, "color": "#555"},
        "bgcolor": "rgba(255,255,255,0.8)",
    }  # fmt: skip
    return vline(step), label


def resume_figure(resume: dict[str, Any]) -> Figure:
    """Loss per step: epochs 1-4, then the two continuations from the checkpoint, over the
    unbroken 8-epoch run."""
    epoch = resume["epoch"]
    last = resume["original"][-1][0]
    per_epoch = resume["steps_per_epoch"]
    series = [
        ("unbroken", f"unbroken, epochs 1–{2 * epoch}", UNBROKEN, 7),
        ("original", f"epochs 1–{epoch}, then saved", ORIGINAL, 1.5),
        ("with", f"epochs {epoch + 1}–{2 * epoch}, + optimizer state", WITH_STATE, 1.5),
        ("without", f"epochs {epoch + 1}–{2 * epoch}, fresh optimizer", WITHOUT_STATE, 1.5),
    ]
    data = []
    for key, name, colour, width in series:
        steps, values = _xy(resume[key])
        data.append(
            line(
                steps,
                values,
                name=name,
                line={"color": colour, "width": width},
                customdata=[-(-int(s) // per_epoch) for s in steps],  # the step's epoch
                hovertemplate="step %{x} (epoch %{customdata})<br>loss %{y:.4f}<extra>"
                + name
                + "</extra>",
            )
        )
    shape, label = _marker(last + 0.5, f"checkpoint: epoch {epoch}, step {last}")
    return figure(
        data,
        layout(
            "Loss per step, resumed at the checkpoint",
            "step",
            "loss",
            height=340,
            shapes=[shape],
            annotations=[label],
            legend=LEGEND,
        ),
    )


def difference_figure(resume: dict[str, Any]) -> Figure:
    """Each continuation's loss minus the unbroken run's loss at the same step."""
    data = []
    for key, name, colour in (
        ("with_vs_unbroken", "+ optimizer state", WITH_STATE),
        ("without_vs_unbroken", "fresh optimizer (momentum 0)", WITHOUT_STATE),
    ):
        gap = resume[key]
        data.append(
            line(
                gap["steps"],
                gap["difference"],
                name=name,
                line={"color": colour, "width": 2 if key.startswith("with_") else 1.5},
                hovertemplate="step %{x}<br>difference %{y:.4g}<extra>" + name + "</extra>",
            )
        )
    return figure(
        data,
        layout(
            "Resumed loss minus the unbroken run's",
            "step",
            axis("loss difference", zeroline=True),
            height=300,
            shapes=[hline(0.0, color="#555", width=1)],
            legend=LEGEND,
        ),
    )


def chain_figure(runs: Sequence[dict[str, Any]]) -> Figure:
    """Loss per step for each run of a resume chain; a dashed line where each resumed run took
    over. Runs that have logged nothing yet keep their (empty) line, to grow live."""
    data = []
    shapes = []
    annotations = []
    marked: set[float] = set()
    for i, run in enumerate(runs):
        steps, values = _xy(run["loss"])
        colour = PALETTE[i % len(PALETTE)]
        data.append(
            line(
                steps,
                values,
                name=run["label"],
                line={
                    "color": colour,
                    "width": 1.5,
                    "dash": "dot" if run["continuation"] == "without" else "solid",
                },
                meta={"run": run["id"]},
                hovertemplate="step %{x}<br>loss %{y:.4f}<extra>" + run["id"] + "</extra>",
            )
        )
        at = run["first_step"]
        if run["resume_from"] is not None and at is not None and at not in marked:
            marked.add(at)  # two continuations of one checkpoint share its marker
            shape, label = _marker(at - 0.5, f"checkpoint of {run['resume_from'][:8]}")
            shapes.append(shape)
            annotations.append(label)
    return figure(
        data,
        layout(
            "Loss per step along the resume chain",
            "step",
            "loss",
            height=340,
            shapes=shapes,
            annotations=annotations,
            showlegend=True,
            legend=LEGEND,
            uirevision="chain",
        ),
    )
