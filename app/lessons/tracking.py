"""Tracking: what TensorBoard shows about a run, computed here from the run's own records.

Scalars with TensorBoard's smoothing, precision/recall per class at every threshold, the sample
predictions as pictures, and the architecture. The numbers come from the run store (metrics) and
from the ``summary.json`` the run's worker wrote beside its TensorBoard event files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from PIL import Image

from app.lessons.errors import LessonInputError
from app.lessons.images import png_data_url

SAMPLE_SCALE = 8  # an 8x8 digit is drawn 64x64, each pixel a block


@dataclass
class Smoother:
    """TensorBoard's moving average one value at a time, so a live stream can carry on a curve
    that ``smooth`` drew (the same arithmetic, so the same floats)."""

    weight: float
    last: float = 0.0
    kept: int = 0  # the finite values averaged so far

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), not {self.weight}")

    def __call__(self, value: float) -> float:
        """The smoothed value after ``value``; a non-finite one passes through, uncounted."""
        if not math.isfinite(value):
            return value
        self.last = self.last * self.weight + (1 - self.weight) * value
        self.kept += 1
        debias = 1.0 - self.weight**self.kept if self.weight > 0 else 1.0
        return self.last / debias


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's scalar smoothing: an exponential moving average, debiased at the start.

    ``weight`` 0 leaves the curve as it is; 0.99 makes it nearly flat. Non-finite values are
    passed through and do not poison the average (as TensorBoard does).
    """
    step = Smoother(weight)
    return [step(value) for value in values]


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall of "is class k" at each threshold on p(k), highest threshold first."""

    thresholds: list[float]
    precision: list[float]
    recall: list[float]
    positives: int


def pr_curve(labels: Sequence[int], probabilities: Sequence[Sequence[float]], k: int) -> PRCurve:
    """One-vs-rest precision/recall for class ``k``: a sample counts as predicted k when
    p(k) >= threshold, for every distinct p(k) as the threshold."""
    y = np.asarray(labels) == k
    scores = np.asarray(probabilities, dtype=np.float64)[:, k]
    order = np.argsort(-scores, kind="stable")
    scores, y = scores[order], y[order]
    # The last index of each distinct score: predicting k for every sample up to it.
    cut = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    true_pos = np.cumsum(y)[cut]
    predicted = cut + 1
    positives = int(y.sum())
    precision = true_pos / predicted
    recall = true_pos / positives if positives else np.zeros_like(true_pos, dtype=np.float64)
    return PRCurve(
        thresholds=scores[cut].tolist(),
        precision=precision.tolist(),
        recall=recall.tolist(),
        positives=positives,
    )


def sample_pictures(
    samples: Sequence[dict[str, Any]], classes: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Each sample prediction with its picture as a PNG data URL (the 0..1 pixels, scaled up).

    ``label`` and ``predicted`` are class indices; ``label_name`` and ``predicted_name`` what
    they stand for (for the transfer task, index 0 is the digit 5)."""

    def name(index: int) -> str:
        return classes[index] if 0 <= index < len(classes) else str(index)

    out = []
    for sample in samples:
        pixels = np.clip(np.asarray(sample["image"], dtype=np.float64), 0.0, 1.0)
        grey = Image.fromarray((255 - pixels * 255).round().astype(np.uint8), "L")  # ink is dark
        side = grey.width * SAMPLE_SCALE
        picture = grey.resize((side, grey.height * SAMPLE_SCALE), Image.Resampling.NEAREST)
        out.append(
            {
                "src": png_data_url(picture),
                "label": int(sample["label"]),
                "predicted": int(sample["predicted"]),
                "confidence": float(sample["confidence"]),
                "correct": int(sample["label"]) == int(sample["predicted"]),
                "label_name": name(int(sample["label"])),
                "predicted_name": name(int(sample["predicted"])),
            }
        )
    return out


def parameter_total(architecture: Sequence[dict[str, Any]]) -> int:
    return sum(int(row["parameters"]) for row in architecture)


# -- the lesson ---------------------------------------------------------------------------------

EXAMPLE_RATES = (0.01, 0.05, 0.2)  # too slow, about right, fast: three curves worth comparing
EXAMPLE_EPOCHS = 4  # enough to see the curves part; each example trains in a fraction of a second
SCALAR_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class TrackingParams:
    """What the Tracking page shows; every field is in its URL."""

    runs: str = ""  # run ids, comma separated; empty: the page's own example runs
    metric: str = "loss"  # the scalar chart
    smoothing: float = 0.6  # TensorBoard's default smoothing
    focus: int = 0  # which of the runs the architecture, images and PR panels describe
    cls: int = 8  # the class drawn: 8s are the digits this small CNN confuses most
    threshold: float = 0.5  # the operating point marked on it


@dataclass(frozen=True)
class TrackedRun:
    """One run as the page shows it: metrics by name and the summary its worker wrote."""

    id: str
    label: str
    task: str
    status: str
    config: dict[str, Any]
    metrics: dict[str, list[list[float]]]
    summary: dict[str, Any] | None


def example_runs() -> list[TrackedRun]:
    """The digits CNN trained at three learning rates, by the same code a run uses."""
    return [_example_run(rate) for rate in EXAMPLE_RATES]


@lru_cache(maxsize=len(EXAMPLE_RATES))
def _example_run(rate: float) -> TrackedRun:
    from app.jobs.classifier import DigitsConfig, train_digits

    config = DigitsConfig(epochs=EXAMPLE_EPOCHS, learning_rate=rate)
    metrics: dict[str, list[list[float]]] = {}

    def log(step: int, name: str, value: float) -> None:  # as SummaryWriter.add_scalar would
        metrics.setdefault(name, []).append([step, value])

    with torch.random.fork_rng(devices=[]):  # the run seeds torch; the web process keeps its RNG
        result = train_digits(config, log, lambda: False)
    return TrackedRun(
        id=f"example-lr{rate:g}",
        label=f"lr={rate:g}",
        task="digits-cnn",
        status="completed",
        config=config.model_dump(),
        metrics=metrics,
        summary=result.summary,
    )


# Characters of a run id that name it in legends, tables and titles: 128-bit ids are 32 characters,
# too wide for a phone; the full id stays in links, tooltips and the JSON.
SHORT_ID_CHARS = 8


def short_id(run_id: str) -> str:
    """A run's id as legends and tables show it (its first characters)."""
    return run_id[:SHORT_ID_CHARS]


def run_label(run_id: str, config: dict[str, Any]) -> str:
    """Short enough for a legend: the id's first characters and what sets the run apart."""
    parts = [short_id(run_id)]
    for key in ("stage", "mode"):
        if key in config:
            parts.append(str(config[key]))
    if "learning_rate" in config:
        parts.append(f"lr={config['learning_rate']:g}")
    return " ".join(parts)


def check_params(params: TrackingParams, run_count: int) -> None:
    if not 0.0 <= params.smoothing < 1.0:
        raise LessonInputError(f"smoothing must be from 0 to 0.99, not {params.smoothing:g}")
    if not 0.0 <= params.threshold <= 1.0:
        raise LessonInputError(f"threshold must be from 0 to 1, not {params.threshold:g}")
    if not 0 <= params.focus < max(run_count, 1):
        raise LessonInputError(
            f"focus must name one of the {run_count} runs shown (0 to {run_count - 1})"
        )


def explore(params: TrackingParams, runs: Sequence[TrackedRun]) -> dict[str, Any]:
    """Everything the page shows about ``runs``: scalars, architecture, images, PR curves."""
    check_params(params, len(runs))
    names = sorted({n for run in runs for n in run.metrics if n != "epoch"}, key=_metric_order)
    live = [run.id for run in runs if run.status in ("queued", "running")]
    if params.metric not in names and (names or not live):
        raise LessonInputError(
            f"metric {params.metric!r} is not logged by these runs (they log: {', '.join(names)})"
        )
    focus = runs[params.focus] if runs else None
    summary = (focus.summary if focus else None) or {}
    architecture = summary.get("architecture") or []
    classes = summary.get("classes") or []
    evaluation = summary.get("eval")
    cls = params.cls
    if classes and cls == TrackingParams.cls and cls >= len(classes):
        cls = len(classes) - 1  # the default class is beyond these runs' (a 5-class model)
    if classes and not 0 <= cls < len(classes):
        raise LessonInputError(f"cls must be a class from 0 to {len(classes) - 1}, not {cls}")
    curves = []
    for run in runs:
        ev = (run.summary or {}).get("eval")
        if ev and classes:
            curve = pr_curve(ev["labels"], ev["probabilities"], cls)
            at = operating_point(curve, params.threshold)
            curves.append({"run": run.label, "curve": curve, "at": at})
    # Runs that have logged nothing yet still get their (empty) lines, to grow live.
    series = {
        name: [(run.label, run.metrics.get(name, [])) for run in runs]
        for name in {*names, params.metric}
    }
    return {
        "runs": [
            {
                "id": run.id,
                "label": run.label,
                "task": run.task,
                "status": run.status,
                "config": run.config,
                "final": {n: pts[-1][1] for n, pts in run.metrics.items() if pts},
                "points": sum(len(p) for p in run.metrics.values()),
            }
            for run in runs
        ],
        "series": series,
        # The chart's metric through smooth(), one list per run as in series: what it draws.
        "smoothed": [
            smooth([float(p[1]) for p in points], params.smoothing)
            for _, points in series[params.metric]
        ],
        "metrics": names,
        "metric": params.metric,
        "smoothing": params.smoothing,
        "focus": focus.label if focus else None,
        "architecture": architecture,
        "parameters": parameter_total(architecture),
        "input_shape": summary.get("input_shape"),
        "samples": sample_pictures(summary.get("samples") or [], classes),
        "classes": classes,
        "cls": cls,
        "cls_name": classes[cls] if classes else None,
        "threshold": params.threshold,
        "curves": curves,
        "live": live,
        "accuracy": evaluation.get("accuracy") if evaluation else None,
    }


def operating_point(curve: PRCurve, threshold: float) -> dict[str, float]:
    """Precision and recall when class k is predicted for p(k) >= threshold."""
    at = max((j for j, t in enumerate(curve.thresholds) if t >= threshold), default=None)
    if at is None:  # nothing reaches the threshold: nothing is predicted as k
        return {"threshold": threshold, "precision": 1.0, "recall": 0.0}
    return {"threshold": threshold, "precision": curve.precision[at], "recall": curve.recall[at]}


def _metric_order(name: str) -> tuple[int, str]:
    return (SCALAR_METRICS.index(name) if name in SCALAR_METRICS else len(SCALAR_METRICS), name)


# -- the snippet: the page's example runs in plain PyTorch ---------------------------------------


def snippet(params: TrackingParams) -> str:
    """The page's example runs as a script: the digits task's split, seeds, shuffles, model and
    optimizer, logged for TensorBoard; it prints the smoothed last value of the chosen metric and
    the precision and recall at the chosen class and threshold, as the page shows them."""
    from app.jobs.classifier import HELD_OUT, DigitsConfig

    task = DigitsConfig()
    return f'''"""This page's example runs, logged for TensorBoard as a run's worker logs them."""
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.tensorboard import SummaryWriter

METRIC, SMOOTHING = {params.metric!r}, {params.smoothing!r}  # the scalar chart
CLS, THRESHOLD = {params.cls}, {params.threshold!r}  # the precision/recall panel
SEED, EPOCHS, BATCH = {task.seed}, {EXAMPLE_EPOCHS}, {task.batch_size}

digits = load_digits()  # 1,797 8x8 digits, inside the scikit-learn package
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
labels = torch.tensor(digits.target)
order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SEED))
n_test = int(len(labels) * {HELD_OUT})
test, train = order[:n_test], order[n_test:]  # {HELD_OUT:.0%} held out: never trained on
shuffle = torch.Generator()
data = TensorDataset(images[train], labels[train])
loader = DataLoader(data, batch_size=BATCH, shuffle=True, generator=shuffle)
logdir = "runs"  # next to this script (each run adds its events); then: tensorboard --logdir runs


def smooth(values, weight):  # TensorBoard's smoothing: a moving average, debiased at the start
    out, last = [], 0.0
    for n, value in enumerate(values, 1):
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight**n) if weight > 0 else last)
    return out


for lr in {EXAMPLE_RATES}:  # one folder per run: TensorBoard overlays them
    torch.manual_seed(SEED)
    model = nn.Sequential(  # conv -> ReLU -> pool -> FC: (N, 1, 8, 8) -> (N, 10)
        nn.Conv2d(1, {task.channels}, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear({task.channels * 16}, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    writer = SummaryWriter(f"{{logdir}}/lr={{lr:g}}")
    logged = {{}}

    def log(name, value, step):
        logged.setdefault(name, []).append(value)
        writer.add_scalar(name, value, step)

    step = 0
    for epoch in range(EPOCHS):
        shuffle.manual_seed(SEED * 1000 + epoch)  # each epoch's shuffle: the seed and the epoch
        correct = 0
        for x, y in loader:
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            correct += int((logits.argmax(dim=1) == y).sum())
            log("loss", loss.item(), step)
        with torch.no_grad():
            logits = model(images[test])
        probs = logits.softmax(dim=1)
        log("accuracy", correct / len(train), step)
        log("val_loss", nn.functional.cross_entropy(logits, labels[test]).item(), step)
        log("val_accuracy", (probs.argmax(dim=1) == labels[test]).float().mean().item(), step)

    for k in range(10):  # one precision/recall curve per class: class k against the rest
        writer.add_pr_curve(f"pr/class_{{k}}", labels[test] == k, probs[:, k], step)
    writer.add_images("samples", images[test][:16], step)
    writer.close()
    scores = probs[:, CLS].round(decimals=5).double()  # the page keeps 5 decimals
    predicted, positive = scores >= THRESHOLD, labels[test] == CLS
    hits = int((predicted & positive).sum())
    precision = hits / int(predicted.sum()) if predicted.any() else 1.0
    recall = hits / int(positive.sum())
    print(f"lr={{lr:g}}: {{METRIC}} {{logged[METRIC][-1]:.4f}}, "
          f"smoothed {{smooth(logged[METRIC], SMOOTHING)[-1]:.4f}}; "
          f"class {{CLS}} at p >= {{THRESHOLD:g}}: "
          f"precision {{precision:.3f}}, recall {{recall:.3f}}")
print("logs in", logdir)
'''
