"""Transfer learning: a feature extractor trained on digits 0-4, reused for digits 5-9.

The page compares the transfer task's three modes (``app/jobs/transfer.py``) on the same few
labelled examples: frozen features with a new head, fine-tuning everything, and the same network
from scratch. Its numbers are measured, here, by the code a run uses: the example runs and the
sweep over examples per class are trained in this process (once, then cached); the learner's own
runs come from the run store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from app.jobs import transfer as task
from app.lessons.errors import LessonInputError
from app.lessons.tracking import TrackedRun, sample_pictures

DEFAULTS = task.TransferConfig()
SWEEP_EXAMPLES = (1, 2, 5, 10, 20, 50)  # labelled examples per class, from few to many
REACH = 0.8  # "epochs to reach 80 % held-out accuracy"
CATCH_UP = 0.01  # scratch "has caught up" within one point of the best pretrained mode
METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")
PER_EPOCH = ("val_accuracy", "val_loss", "accuracy")


@dataclass(frozen=True)
class TransferParams:
    """What the Transfer learning page shows; every field is in its URL."""

    runs: str = ""  # the learner's transfer runs, comma separated; empty: the example runs
    examples: int = DEFAULTS.examples_per_class  # for the runs the page launches
    epochs: int = DEFAULTS.epochs
    metric: str = "val_accuracy"
    focus: str = "feature-extract"  # the mode whose sample predictions are shown


def check_params(params: TransferParams) -> None:
    bounds = task.TransferConfig.model_fields
    for name, field_name in (("examples", "examples_per_class"), ("epochs", "epochs")):
        low, high = _bounds(bounds[field_name].metadata)
        value = getattr(params, name)
        if not low <= value <= high:
            raise LessonInputError(f"{name} must be from {low} to {high}, not {value}")
    if params.metric not in METRICS:
        raise LessonInputError(f"metric must be one of {', '.join(METRICS)}, not {params.metric!r}")
    if params.focus not in task.MODES:
        raise LessonInputError(
            f"focus must be one of {', '.join(task.MODES)}, not {params.focus!r}"
        )


def _bounds(metadata: Sequence[Any]) -> tuple[int, int]:
    low = next(int(m.ge) for m in metadata if hasattr(m, "ge"))
    high = next(int(m.le) for m in metadata if hasattr(m, "le"))
    return low, high


# -- measured here --------------------------------------------------------------------------------


def train_mode(mode: str, examples: int, epochs: int, seed: int = 0) -> TrackedRun:
    """One transfer run in this process, logged as a run's worker logs it."""
    config = task.TransferConfig(
        mode=mode,
        examples_per_class=examples,
        epochs=epochs,
        seed=seed,
    )
    metrics: dict[str, list[list[float]]] = {}

    def log(step: int, name: str, value: float) -> None:
        metrics.setdefault(name, []).append([step, value])

    with torch.random.fork_rng(devices=[]):  # the run seeds torch; the web process keeps its RNG
        result = task.train_transfer(config, log, lambda: False)
    return TrackedRun(
        id=f"example-{mode}",
        label=mode,
        task=task.TRANSFER.name,
        status="completed",
        config=config.model_dump(),
        metrics=metrics,
        summary=result.summary,
    )


@lru_cache(maxsize=len(task.MODES))
def example_run(mode: str) -> TrackedRun:
    """The three modes at the task's defaults: the page's example runs."""
    return train_mode(mode, DEFAULTS.examples_per_class, DEFAULTS.epochs)


def example_runs() -> list[TrackedRun]:
    return [example_run(mode) for mode in task.MODES]


@lru_cache(maxsize=1)
def sweep() -> dict[str, Any]:
    """Every mode at each number of examples per class (default epochs, seed 0): where transfer
    helps, and where it stops helping."""
    rows = []
    for examples in SWEEP_EXAMPLES:
        for mode in task.MODES:
            curve = epoch_curve(train_mode(mode, examples, DEFAULTS.epochs), "val_accuracy")
            rows.append({"examples": examples, "mode": mode, **curve_summary(curve)})
    result = {"examples": list(SWEEP_EXAMPLES), "epochs": DEFAULTS.epochs, "rows": rows}
    return result | {"story": sweep_story(result)}


def sweep_story(sweep: dict[str, Any]) -> dict[str, Any]:
    """What the sweep shows, as numbers for the page's sentences: the pretrained modes' lead
    with the fewest examples, and from how many examples scratch catches up (its final accuracy,
    then its mean over the run, within ``CATCH_UP`` of the best pretrained mode)."""

    def at(examples: int) -> tuple[dict[str, Any], dict[str, Any]]:
        rows = {r["mode"]: r for r in sweep["rows"] if r["examples"] == examples}
        best = max((rows[m] for m in task.MODES if m != "scratch"), key=lambda r: r["mean"])
        return best, rows["scratch"]

    fewest = sweep["examples"][0]
    best, scratch = at(fewest)

    def catches(measure: str) -> int | None:
        for n in sweep["examples"]:
            _, theirs = at(n)
            top = max(r[measure] for r in sweep["rows"] if r["examples"] == n and r is not theirs)
            if theirs[measure] >= top - CATCH_UP:
                return int(n)
        return None

    return {
        "fewest": fewest,
        "best": best["mode"],
        "lead": best["mean"] - scratch["mean"],
        "final_from": catches("final"),
        "mean_from": catches("mean"),
        "catch_up": CATCH_UP,
    }


# -- reading runs ---------------------------------------------------------------------------------


def epoch_curve(run: TrackedRun, metric: str) -> list[tuple[int, float]]:
    """``metric`` by epoch: a per-epoch metric is logged at the step that ends its epoch, beside
    the ``epoch`` metric itself."""
    epochs = {step: value for step, value in run.metrics.get("epoch", [])}
    return [
        (int(epochs.get(step, i + 1)), float(value))
        for i, (step, value) in enumerate(run.metrics.get(metric, []))
    ]


def curve_summary(curve: Sequence[tuple[int, float]]) -> dict[str, Any]:
    """Mean, first and final held-out accuracy, and the first epoch at ``REACH`` or above."""
    values = [v for _, v in curve]
    reached = next((epoch for epoch, v in curve if v >= REACH), None)
    return {
        "mean": sum(values) / len(values) if values else None,
        "first": values[0] if values else None,
        "final": values[-1] if values else None,
        "reach_epoch": reached,
        "epochs": len(values),
    }


def frozen_table() -> dict[str, Any]:
    """Each parameter's fate in each mode: frozen, or trained at which learning rate."""
    tables = {}
    for mode in task.MODES:
        config = DEFAULTS.model_copy(update={"mode": mode})
        with torch.random.fork_rng(devices=[]):
            model, optimizer = task.build_model(config)
        tables[mode] = task.parameter_table(model, optimizer)
    first = tables[task.MODES[0]]["rows"]
    rows = []
    for i, row in enumerate(first):
        cells = {}
        for mode, table in tables.items():
            mine = table["rows"][i]
            group = table["groups"][mine["group"]] if mine["group"] is not None else None
            cells[mode] = {
                "trains": mine["requires_grad"] and group is not None,
                "lr": group["lr"] if group else None,
            }
        rows.append({"name": row["name"], "shape": row["shape"], "numel": row["numel"], **cells})
    return {
        "rows": rows,
        "modes": {
            mode: {
                "trainable": t["trainable"],
                "frozen": t["frozen"],
                "groups": t["groups"],
            }
            for mode, t in tables.items()
        },
    }


def explore(params: TransferParams, runs: Sequence[TrackedRun], examples: bool) -> dict[str, Any]:
    """Everything the page shows: the modes' curves, what each freezes, and the sweep."""
    check_params(params)
    live = [run.id for run in runs if run.status in ("queued", "running")]
    per_epoch = params.metric in PER_EPOCH
    series = []
    summaries = []
    for run in runs:
        if per_epoch:
            points = [[e, v] for e, v in epoch_curve(run, params.metric)]
        else:
            points = [[s, v] for s, v in run.metrics.get(params.metric, [])]
        series.append({"label": run.label, "mode": run.config.get("mode"), "points": points})
        accuracy = curve_summary(epoch_curve(run, "val_accuracy"))
        summaries.append(
            {
                "id": run.id,
                "label": run.label,
                "mode": run.config.get("mode"),
                "status": run.status,
                "examples_per_class": run.config.get("examples_per_class"),
                "epochs": run.config.get("epochs"),
                **accuracy,
            }
        )
    focus = next((r for r in runs if r.config.get("mode") == params.focus), None)
    summary = (focus.summary if focus else None) or {}
    facts = summary.get("transfer") or {}
    _, source_accuracy = task.pretrained()
    return {
        "examples": examples,
        "runs": summaries,
        "series": series,
        "metric": params.metric,
        "per_epoch": per_epoch,
        "reach": REACH,
        "live": live,
        "frozen": frozen_table(),
        "focus": params.focus,
        "samples": sample_pictures(summary.get("samples") or [], summary.get("classes") or []),
        "classes": summary.get("classes") or [str(c) for c in task.TARGET_CLASSES],
        "source": {
            "classes": list(task.SOURCE_CLASSES),
            "accuracy": source_accuracy,
            "epochs": task.SOURCE_EPOCHS,
        },
        "target": {
            "classes": list(task.TARGET_CLASSES),
            "train_examples": facts.get("train_examples"),
            "held_out": facts.get("held_out"),
        },
        "sweep": sweep(),
        "chosen_examples": params.examples,
        "verdict": verdict(summaries),
    }


def verdict(runs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """What these runs show, in numbers: the pretrained modes' mean accuracy against scratch's."""
    by_mode = {r["mode"]: r for r in runs if r["mean"] is not None}
    scratch = by_mode.get("scratch")
    pretrained = [by_mode[m] for m in ("feature-extract", "finetune") if m in by_mode]
    if scratch is None or not pretrained:
        return None
    best = max(pretrained, key=lambda r: r["mean"])
    return {
        "best": best["mode"],
        "lead": best["mean"] - scratch["mean"],
        "final_lead": best["final"] - scratch["final"],
        "scratch_final": scratch["final"],
        "best_final": best["final"],
    }


# -- the snippet: the page's runs in plain PyTorch ------------------------------------------------


def snippet(params: TransferParams) -> str:
    """The transfer task as a script: the same split, source model, picks, seeds, shuffles and
    optimizers, so each mode's held-out accuracy is the one its run (at the page's examples and
    epochs) reaches."""
    from app.jobs.classifier import HELD_OUT

    source, target = task.SOURCE_CLASSES, task.TARGET_CLASSES
    return f'''"""Transfer learning on the digits: pretrain on {source[0]}-{source[-1]}, \
adapt to {target[0]}-{target[-1]} three ways."""
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EXAMPLES, EPOCHS = {params.examples}, {params.epochs}  # labelled examples per digit, epochs
SEED, LR, BODY_LR_FACTOR, BATCH = {DEFAULTS.seed}, {DEFAULTS.learning_rate}, \
{DEFAULTS.body_lr_factor}, {DEFAULTS.batch_size}

digits = load_digits()  # 1,797 8x8 digits, inside the scikit-learn package
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
labels = torch.tensor(digits.target)
order = torch.randperm(len(labels), generator=torch.Generator().manual_seed({task.SPLIT_SEED}))
n_test = int(len(labels) * {HELD_OUT})
test, train = order[:n_test], order[n_test:]  # one split for the source and the target


def digits_of(rows, first, last):  # the images of digits first..last, relabelled 0..
    rows = rows[(labels[rows] >= first) & (labels[rows] <= last)]
    return images[rows], labels[rows] - first


class DigitsNet(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.features = nn.Sequential(  # the feature extractor: (N, 1, 8, 8) -> (N, 64)
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 8, 4, 4)
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (N, 16, 2, 2)
            nn.Flatten(),
        )
        self.classifier = nn.Linear(64, n_classes)  # the head

    def forward(self, x):
        return self.classifier(self.features(x))


@torch.no_grad()
def accuracy(model, x, y):
    return (model(x).softmax(dim=1).argmax(dim=1) == y).float().mean().item()


def fit(model, optimizer, x, y, epochs, batch, seed, held_out=None):
    """Each epoch's shuffle is seeded by the seed and the epoch; returns the held-out accuracy
    after each epoch."""
    shuffle = torch.Generator()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, generator=shuffle)
    accuracies = []
    for epoch in range(epochs):
        shuffle.manual_seed(seed * 1000 + epoch)
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if held_out is not None:
            accuracies.append(accuracy(model, *held_out))
    return accuracies


# 1. The source model: digits {source[0]}-{source[-1]}, all their training examples. Seeded and
# on one thread: the same weights every time.
threads = torch.get_num_threads()
torch.set_num_threads(1)
torch.manual_seed({task.SOURCE_SEED})
source = DigitsNet({len(source)})
optimizer = torch.optim.SGD(source.parameters(), lr={task.SOURCE_LR}, momentum=0.9)
fit(source, optimizer, *digits_of(train, {source[0]}, {source[-1]}), {task.SOURCE_EPOCHS}, \
{task.SOURCE_BATCH}, {task.SOURCE_SEED})
torch.set_num_threads(threads)
print(f"source model: held-out accuracy {{accuracy(source, *digits_of(test, {source[0]}, \
{source[-1]})):.3f}}")

# 2. The target task: digits {target[0]}-{target[-1]} (labels 0-4), EXAMPLES seeded picks of each
x, y = digits_of(train, {target[0]}, {target[-1]})
picks = torch.Generator().manual_seed(SEED)
chosen = []
for digit in range({len(target)}):
    rows = (y == digit).nonzero().flatten()
    chosen.append(rows[torch.randperm(len(rows), generator=picks)[:EXAMPLES]])
chosen = torch.cat(chosen).sort().values  # in the order of the pool
x, y = x[chosen], y[chosen]
held_out = digits_of(test, {target[0]}, {target[-1]})

for mode in ("feature-extract", "finetune", "scratch"):
    torch.manual_seed(SEED)
    model = DigitsNet({len(target)})  # a new head (and, for scratch, a new body)
    if mode == "scratch":
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    else:
        model.features.load_state_dict(source.features.state_dict())  # the pretrained body
    if mode == "feature-extract":
        model.features.requires_grad_(False)  # frozen: only the new head trains
        optimizer = torch.optim.SGD(model.classifier.parameters(), lr=LR, momentum=0.9)
    elif mode == "finetune":  # everything trains, the pretrained body more gently
        optimizer = torch.optim.SGD(
            [{{"params": model.features.parameters(), "lr": LR * BODY_LR_FACTOR}},
             {{"params": model.classifier.parameters(), "lr": LR}}],
            momentum=0.9,
        )
    accuracies = fit(model, optimizer, x, y, EPOCHS, BATCH, SEED, held_out)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{{mode:15}} trainable {{trainable:5}}; held-out accuracy: "
          f"final {{accuracies[-1]:.3f}}, mean {{sum(accuracies) / len(accuracies):.3f}}")
'''
