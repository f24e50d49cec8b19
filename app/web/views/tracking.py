"""The Tracking page: TensorBoard's panels (scalars, architecture, images, PR curves), computed
here from training runs, the learner's own or the page's example runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.jobs import RunNotFound, classifier
from app.jobs import tracking as run_files
from app.lessons import tracking
from app.lessons.errors import LessonInputError, check_limit
from app.viz import tracking as tracking_figures
from app.web.forms import params_from_query
from app.web.views.base import LessonView, source


def _parse(query: Mapping[str, str], settings: Settings) -> tracking.TrackingParams:
    return params_from_query(tracking.TrackingParams(), query, {})


def run_ids(text: str, limit: int) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``: the runs a lesson compares, at most ``limit``, each once."""
    ids = [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]
    check_limit("runs compared", "tracking_max_runs", limit, len(ids))
    if len(set(ids)) != len(ids):
        raise LessonInputError("runs: each run may be listed once")
    return ids


def tracked_run(runs: Any, run_id: str, task: str | None = None) -> tracking.TrackedRun:
    """A stored run as the run lessons read it; a 422 naming it when there is none, or when it
    is not of ``task``."""
    if runs is None:
        raise LessonInputError("runs: the run store is not open yet; try again in a moment")
    try:
        run = runs.store.get(run_id)
    except RunNotFound:
        raise LessonInputError(
            f"runs: there is no run {run_id!r}; /runs lists the runs there are"
        ) from None
    if task is not None and run.task != task:
        raise LessonInputError(
            f"runs: run {run_id!r} is a {run.task} run; this page compares {task} runs"
        )
    return tracking.TrackedRun(
        id=run.id,
        label=tracking.run_label(run.id, run.config),
        task=run.task,
        status=run.status,
        config=run.config,
        metrics=runs.store.metrics(run.id),
        summary=run_files.read_summary(runs.artifacts_dir(run.id)),
    )


def _explore(params: tracking.TrackingParams, settings: Settings, runs: Any) -> dict[str, Any]:
    ids = run_ids(params.runs, settings.tracking_max_runs)
    chosen = [tracked_run(runs, i) for i in ids] if ids else tracking.example_runs()
    result = tracking.explore(params, chosen)
    result["examples"] = not ids
    return result


def _figures(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    figures = {}
    if result["metrics"] or result["live"]:
        metric = result["metric"]
        figures["scalars"] = tracking_figures.scalar_figure(
            metric, result["series"][metric], result["smoothing"]
        )
    if result["curves"]:
        figures["pr"] = tracking_figures.pr_figure(
            [(c["run"], c["curve"]) for c in result["curves"]], result["threshold"]
        )
    return figures


def _form(params: tracking.TrackingParams) -> dict[str, Any]:
    return asdict(params)


def _snippet(params: tracking.TrackingParams) -> str:
    return f'''"""Log a small CNN's training to TensorBoard, as this page's example runs do."""
import tempfile

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.tensorboard import SummaryWriter

torch.manual_seed(0)
digits = load_digits()  # 1,797 8x8 digits, inside the scikit-learn package
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
labels = torch.tensor(digits.target)
logdir = tempfile.mkdtemp()  # then: tensorboard --logdir <this folder>

for lr in (0.05, 0.2):  # one folder per run: TensorBoard overlays them
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    writer = SummaryWriter(f"{{logdir}}/lr_{{lr}}")
    step = 0
    for epoch in range(2):
        for i in range(0, len(labels), 32):
            loss = nn.functional.cross_entropy(model(images[i : i + 32]), labels[i : i + 32])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            writer.add_scalar("loss", loss.item(), step)
    with torch.no_grad():
        probs = model(images).softmax(dim=1)
    for k in range(10):  # one precision/recall curve per class: class k against the rest
        writer.add_pr_curve(f"pr/class_{{k}}", labels == k, probs[:, k], step)
    writer.add_images("samples", images[:16], step)
    writer.close()
    print(f"lr={{lr}}: final loss {{loss.item():.3f}}, logs in {{logdir}}")
# smoothing={params.smoothing:g}, class={params.cls}, threshold={params.threshold:g} on the page
'''


VIEW = LessonView(
    slug="tracking",
    parse=_parse,
    explore=_explore,
    figures=_figures,
    code={
        "logging": source(run_files.write_summary),
        "smooth": source(tracking.smooth),
        "pr": source(tracking.pr_curve, tracking.operating_point),
        "architecture": source(classifier.architecture),
    },
    snippet=_snippet,
    form=_form,
    uses_runs=True,
)
