"""Saving and loading: a model's state_dict to a .pth file and back, checkpoints, and resuming.

Everything the page says happens here, with real torch: ``torch.save(model.state_dict(), f)``
writes a dict of tensors; ``torch.load(f, weights_only=True)`` reads back that dict (not a model);
``model.load_state_dict`` copies it into a fresh model of the same class, and after
``model.eval()`` the copy predicts exactly what the original did. A checkpoint adds the
optimizer's state_dict (SGD's momentum buffers) and the epoch, which is what lets a run resume as
if it had never stopped. The worked example trains the digits CNN with the code a run uses
(``app.jobs.classifier.train_digits``); the learner's own runs come from the run store.
"""

from __future__ import annotations

import pickle
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from app.jobs.checkpoints import evaluate_checkpoint, inspect_checkpoint
from app.jobs.classifier import DIGITS, DigitsCNN, DigitsConfig, digits_split, score, train_digits
from app.jobs.safe_load import CheckpointError, CheckpointLimits
from app.jobs.tasks import ConfigError, Task, TrainResult
from app.lessons.errors import LessonInputError
from app.lessons.tracking import short_id

# A gentle rate and big batches: at the checkpoint (epoch 4) the model is still learning, so
# what the momentum buffers carry is visible when a resume throws them away. At the app's
# default rate the model has nearly converged by then and the two continuations look alike.
EXAMPLE = DigitsConfig(epochs=4, learning_rate=0.01, batch_size=64)
MAX_FAMILY = 8  # runs drawn in one resume chart: the chain to the chosen run always, then others
MAX_CHAIN = 100  # resume_from links followed at most (a guard; a chain is never this long)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # torch bolds part of its message for terminals

Metrics = dict[str, list[list[float]]]  # {name: [[step, value], ...]}, as a run logs them


@dataclass(frozen=True)
class SavingParams:
    """What the page shows and what its Resume button sends; every field is in its URL."""

    run: str = ""  # a run's id; empty: the worked example only
    epochs: int = 4  # more epochs when resuming: as many again as the example trained first
    optimizer: bool = True  # resume with the optimizer's state (digits-cnn runs can choose)


# -- the notes' steps, one function each -------------------------------------------------------


def tensor_rows(state: Mapping[str, torch.Tensor]) -> list[dict[str, Any]]:
    """One row per entry of a state_dict: its key, shape, dtype and number of elements."""
    return [
        {
            "key": key,
            "shape": list(t.shape),
            "dtype": str(t.dtype).removeprefix("torch."),
            "numel": t.numel(),
        }
        for key, t in state.items()
    ]


def round_trip(trained: nn.Module, channels: int, folder: Path) -> dict[str, Any]:
    """Save a state_dict to a .pth file, load it back, put it in a fresh model, and compare
    the predictions."""
    _, test_set = digits_split(EXAMPLE.seed)
    path = folder / "model_params.pth"
    torch.save(trained.state_dict(), path)  # the parameters only: a dict of tensors
    loaded = torch.load(path, weights_only=True)  # that dict again, not a model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)  # the fresh model's random weights, the same on every visit
        fresh = DigitsCNN(channels)  # the class comes from our code, never from the file
    before = score(fresh, test_set)  # random weights: about one digit in ten right
    report = fresh.load_state_dict(loaded)  # copies every tensor in, by key
    fresh.eval()  # evaluation mode: we only predict now
    after = score(fresh, test_set)
    original = score(trained, test_set)
    images, _ = test_set.tensors  # (N, 1, 8, 8)
    with torch.no_grad():
        gap = (fresh(images) - trained(images)).abs().max().item()
    same = sum(a == b for a, b in zip(after["predicted"], original["predicted"], strict=True))
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "loaded_type": type(loaded).__name__,
        "loaded_is_module": isinstance(loaded, nn.Module),
        "loaded_keys": list(loaded),
        "load_report": str(report),
        "fresh_accuracy": before["accuracy"],
        "accuracy": after["accuracy"],
        "original_accuracy": original["accuracy"],
        "identical": same,
        "n": after["n"],
        "max_logit_difference": gap,
    }


def make_checkpoint(result: TrainResult) -> dict[str, Any]:
    """The checkpoint a run saves: the model's and the optimizer's state_dicts and the epoch."""
    return {"model": result.model_state, "optimizer": result.optimizer_state, "epoch": result.epoch}


def optimizer_rows(optimizer_state: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """An optimizer's state_dict as tables: each param group's settings, each buffer's shape.

    The state is keyed by parameter index, in the order of ``model.parameters()``; ``names``
    gives each index its name in the model.
    """
    groups = [
        {"params": list(g["params"]), "settings": {k: v for k, v in g.items() if k != "params"}}
        for g in optimizer_state["param_groups"]
    ]
    buffers = [
        {
            "param": int(index),
            "name": names[int(index)] if int(index) < len(names) else None,
            "buffer": buffer_name,
            "shape": list(value.shape),
            "numel": value.numel(),
            "norm": float(value.norm()),
        }
        for index, entry in sorted(optimizer_state["state"].items())
        for buffer_name, value in entry.items()
        if isinstance(value, torch.Tensor)
    ]
    return {"groups": groups, "buffers": buffers, "numel": sum(b["numel"] for b in buffers)}


def whole_model_refused(model: nn.Module, folder: Path) -> dict[str, Any]:
    """``torch.save(model)`` pickles the module by class reference; a safe load refuses it."""
    path = folder / "whole_model.pth"
    torch.save(model, path)  # the whole module: its classes' import paths go into the file
    needs = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    try:
        torch.load(path, weights_only=True)
    except pickle.UnpicklingError as error:
        message = _ANSI.sub("", str(error)).strip()
    else:  # pragma: no cover - a torch that loaded it would have changed weights_only's meaning
        message = ""
    return {"bytes": path.stat().st_size, "globals": sorted(needs), "error": message}


def train(cfg: DigitsConfig, resume: dict[str, Any] | None = None) -> tuple[TrainResult, Metrics]:
    """``train_digits``, as a run calls it, keeping what it emits ({name: [[step, value]]})."""
    metrics: Metrics = {}

    def emit(step: int, name: str, value: float) -> None:
        metrics.setdefault(name, []).append([step, value])

    with torch.random.fork_rng(devices=[]):  # the loop seeds torch; the web process keeps its RNG
        result = train_digits(cfg, emit, lambda: False, resume=resume)
    return result, metrics


@dataclass(frozen=True)
class Experiment:
    """Four epochs, a checkpoint, two ways to go on, and the run that never stopped."""

    first: TrainResult  # the model and optimizer after the first four epochs
    checkpoint: dict[str, Any]  # what torch.load read back from checkpoint.pth
    checkpoint_bytes: int  # the file's size
    original: Metrics  # epochs 1-4
    with_state: Metrics  # epochs 5-8, resumed with the optimizer's state
    without_state: Metrics  # epochs 5-8, resumed with a fresh optimizer
    unbroken: Metrics  # epochs 1-8 in one go


def resume_experiment(folder: Path) -> Experiment:
    """Train 4 epochs and save a checkpoint; resume 4 more with the optimizer state and 4
    without; and train 8 epochs unbroken, to compare."""
    first, original = train(EXAMPLE)
    path = folder / "checkpoint.pth"
    torch.save(make_checkpoint(first), path)
    # Each continuation loads the file afresh, as a run does: a loaded optimizer keeps the
    # file's momentum tensors as its own and updates them in place while it trains.
    _, with_state = train(EXAMPLE, resume=torch.load(path, weights_only=True))  # epochs 5-8
    fresh_optimizer = EXAMPLE.model_copy(update={"resume_optimizer": False})
    _, without_state = train(fresh_optimizer, resume=torch.load(path, weights_only=True))
    all_at_once = EXAMPLE.model_copy(update={"epochs": 2 * EXAMPLE.epochs})
    _, unbroken = train(all_at_once)
    checkpoint = torch.load(path, weights_only=True)
    return Experiment(
        first, checkpoint, path.stat().st_size, original, with_state, without_state, unbroken
    )


def compare_losses(resumed: Metrics, unbroken: Metrics) -> dict[str, Any]:
    """A continuation's loss at each step beside the unbroken run's at the same step."""
    theirs = {int(step): value for step, value in unbroken["loss"]}
    steps = [int(step) for step, _ in resumed["loss"]]
    difference = [value - theirs[int(step)] for step, value in resumed["loss"]]
    return {
        "steps": steps,
        "difference": difference,
        "max_abs": max(abs(d) for d in difference),
        "mean": sum(difference) / len(difference),
    }


def _values(metrics: Metrics, name: str) -> list[float]:
    return [value for _, value in metrics.get(name, [])]


@lru_cache(maxsize=1)
def example() -> dict[str, Any]:
    """The page's worked example, computed once per process by the same loop a run uses, its
    files written to a temporary folder and read back."""
    with tempfile.TemporaryDirectory(prefix="saving-") as tmp:
        folder = Path(tmp)
        run = resume_experiment(folder)
        model = DigitsCNN(EXAMPLE.channels)
        model.load_state_dict(run.first.model_state)
        model.eval()
        trip = round_trip(model, EXAMPLE.channels, folder)
        whole = whole_model_refused(model, folder)
    rows = tensor_rows(model.state_dict())
    names = [name for name, _ in model.named_parameters()]
    return {
        "config": EXAMPLE.model_dump(),
        "state_dict": {"rows": rows, "total": sum(r["numel"] for r in rows)},
        "round_trip": trip,
        "checkpoint": {
            "keys": list(run.checkpoint),
            "epoch": run.checkpoint["epoch"],
            "bytes": run.checkpoint_bytes,
            "optimizer": optimizer_rows(run.checkpoint["optimizer"], names),
        },
        "whole_model": whole,
        "resume": {
            "epoch": int(run.checkpoint["epoch"]),
            "steps_per_epoch": len(run.original["loss"]) // EXAMPLE.epochs,
            "original": run.original["loss"],
            "with": run.with_state["loss"],
            "without": run.without_state["loss"],
            "unbroken": run.unbroken["loss"],
            "with_vs_unbroken": compare_losses(run.with_state, run.unbroken),
            "without_vs_unbroken": compare_losses(run.without_state, run.unbroken),
            "resumed_epochs": [int(e) for e in _values(run.with_state, "epoch")],
            "accuracy": {
                "original": _values(run.original, "val_accuracy"),
                "with": _values(run.with_state, "val_accuracy"),
                "without": _values(run.without_state, "val_accuracy"),
                "unbroken": _values(run.unbroken, "val_accuracy"),
            },
        },
    }


# -- the learner's own runs --------------------------------------------------------------------


def open_run_checkpoint(path: Path, limits: CheckpointLimits) -> dict[str, Any]:
    """A run's checkpoint file as the upload panel sees any .pth: inspected (keys, shapes,
    optimizer state), then loaded into a fresh model of its task and scored, ``model.eval()``.

    The same functions as ``POST /api/checkpoints/inspect`` and ``/evaluate``; a file they
    refuse gives ``{"error": ...}`` instead.
    """
    stat = path.stat()
    return dict(_opened(str(path), stat.st_mtime_ns, stat.st_size, limits))


@lru_cache(maxsize=32)  # keyed by the file's time and size: a saved checkpoint never changes
def _opened(path: str, _mtime: int, _size: int, limits: CheckpointLimits) -> dict[str, Any]:
    data = Path(path).read_bytes()
    try:
        inspection = inspect_checkpoint(data, limits)
        scored = evaluate_checkpoint(data, limits)  # the task and config the file names
    except (CheckpointError, ConfigError) as error:
        return {"error": str(error)}
    predicted, labels = scored.pop("predicted"), scored.pop("labels")
    scored["result"] = {k: v for k, v in scored["result"].items() if not isinstance(v, list)}
    if predicted:  # a classifier: count what it got right
        scored["correct"] = sum(int(p == t) for p, t in zip(predicted, labels, strict=True))
    return {"inspection": inspection, "evaluation": scored}


@dataclass(frozen=True)
class RunRecord:
    """One run as the resume chart needs it."""

    id: str
    task: str
    status: str
    config: dict[str, Any]
    resume_from: str | None
    metrics: Metrics = field(default_factory=dict)


def chain(run_id: str, get: Callable[[str], RunRecord | None]) -> list[RunRecord]:
    """The run and every run it resumed from, oldest first (follows ``resume_from``)."""
    out: list[RunRecord] = []
    seen: set[str] = set()
    current: str | None = run_id
    while current is not None and current not in seen and len(out) < MAX_CHAIN:
        record = get(current)
        if record is None:  # the original was deleted: the chain starts here
            break
        seen.add(current)
        out.append(record)
        current = record.resume_from
    return out[::-1]


def family(line: Sequence[RunRecord], others: Sequence[RunRecord]) -> list[str]:
    """Ids of the runs to draw: the chain to the chosen run, then other runs resumed from any run
    of it (another continuation of the same checkpoint, say), newest first, up to MAX_FAMILY."""
    ids = [r.id for r in line]
    members = set(ids)
    extra: list[str] = []
    grew = True
    while grew:
        grew = False
        for record in others:
            if record.id not in members and record.resume_from in members:
                members.add(record.id)
                extra.append(record.id)
                grew = True
    return ids + extra[: max(0, MAX_FAMILY - len(ids))]


def continuation(record: RunRecord) -> str | None:
    """How a resumed run restarted: with or without the optimizer's state (None: not resumed)."""
    if record.resume_from is None:
        return None
    return "with" if record.config.get("resume_optimizer", True) else "without"


def describe_run(record: RunRecord) -> dict[str, Any]:
    """A run of the chart: its loss by step, its epochs, and how it joined the one before."""
    loss = record.metrics.get("loss", [])
    epochs = [int(v) for v in _values(record.metrics, "epoch")]
    how = continuation(record)
    span = f"epochs {epochs[0]}–{epochs[-1]}" if epochs else "no epoch yet"
    label = f"{short_id(record.id)} · {span}"
    if how is not None:  # short: a legend on a phone does not wrap
        label += " · + optimizer state" if how == "with" else " · fresh optimizer"
    accuracy = _values(record.metrics, "val_accuracy")
    return {
        "id": record.id,
        "task": record.task,
        "status": record.status,
        "resume_from": record.resume_from,
        "continuation": how,
        "label": label,
        "loss": loss,
        "first_step": int(loss[0][0]) if loss else None,
        "last_step": int(loss[-1][0]) if loss else None,
        "epochs": epochs,
        "val_accuracy": accuracy[-1] if accuracy else None,
    }


def check_resume(params: SavingParams, task: Task | None) -> int:
    """The Resume button's epochs within the run task's own bound (digits-cnn's when no run is
    chosen); returns the bound."""
    spec = task or DIGITS
    fields = {entry["name"]: entry for entry in spec.info()["fields"]}
    limit = int(fields["epochs"]["maximum"])
    if not 1 <= params.epochs <= limit:
        raise LessonInputError(
            f"epochs must be from 1 to {limit} for {spec.name} runs; got {params.epochs}."
        )
    return limit


# -- the snippet: the page's worked example in plain PyTorch -------------------------------------


def snippet(params: SavingParams) -> str:
    """A script that runs on its own and reproduces the worked example's numbers (same seed,
    same split, same shuffles), with the page's resume settings."""
    return f'''"""Save, load, checkpoint and resume a small CNN on the digits, as this page does."""
from collections import OrderedDict

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SEED, LR, BATCH = {EXAMPLE.seed}, {EXAMPLE.learning_rate}, {EXAMPLE.batch_size}
EPOCHS = {EXAMPLE.epochs}  # before the checkpoint
RESUME_EPOCHS = {params.epochs}  # "more epochs" on the page
WITH_OPTIMIZER = {params.optimizer}  # "with optimizer state" on the page

digits = load_digits()  # 1,797 8x8 digits, inside the scikit-learn package
images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
labels = torch.tensor(digits.target)
order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SEED))
test, train = order[: len(labels) // 5], order[len(labels) // 5 :]  # 20 % held out
gen = torch.Generator()
loader = DataLoader(
    TensorDataset(images[train], labels[train]), batch_size=BATCH, shuffle=True, generator=gen
)


def make_model():  # the digits task's DigitsCNN: the same layers, under the same names
    layers = OrderedDict(
        conv=nn.Conv2d(1, 8, 3, padding=1),  # (N, 8, 8, 8)
        relu=nn.ReLU(),
        pool=nn.MaxPool2d(2),  # (N, 8, 4, 4)
        flatten=nn.Flatten(),  # (N, 128)
        fc=nn.Linear(128, 10),  # (N, 10) logits
    )
    return nn.Sequential(layers)


def train_epochs(model, optimizer, first_epoch, count):
    losses = []
    for epoch in range(first_epoch, first_epoch + count):
        gen.manual_seed(SEED * 1000 + epoch)  # each epoch's shuffle depends on the epoch alone
        model.train()
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


torch.manual_seed(SEED)
model = make_model()
optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
losses = train_epochs(model, optimizer, 0, EPOCHS)

# 1. Saving: the model's parameters, a dict of tensors, in a .pth file next to this script
torch.save(model.state_dict(), "model_params.pth")
# 2. Loading: torch.load reads the dict back, not a model
params = torch.load("model_params.pth", weights_only=True)
kind = "OrderedDict" if isinstance(params, OrderedDict) else type(params)  # not a model
print(kind, {{key: tuple(t.shape) for key, t in params.items()}})
# 3. A fresh model of the same class takes the parameters
loaded = make_model()
print(loaded.load_state_dict(params))
# 4. Evaluation mode: we only predict now
loaded.eval()
with torch.no_grad():
    predicted = loaded(images[test]).argmax(dim=1)
    same = int((predicted == model(images[test]).argmax(dim=1)).sum())
accuracy = (predicted == labels[test]).float().mean().item()
print(f"held-out accuracy {{accuracy:.4f}}; {{same}} of {{len(test)}} predictions identical")

# A checkpoint: the model's and the optimizer's state_dicts and the epoch, in one dict
checkpoint = {{"Model": model.state_dict(), "Optim": optimizer.state_dict(), "epoch": EPOCHS}}
torch.save(checkpoint, "checkpoint.pth")
checkpoint = torch.load("checkpoint.pth", weights_only=True)
for index, state in checkpoint["Optim"]["state"].items():  # SGD's momentum, one per parameter
    print("param", index, "momentum_buffer", tuple(state["momentum_buffer"].shape))

# Resume: rebuild, load the state_dicts, carry on from the saved epoch
resumed = make_model()
resumed.load_state_dict(checkpoint["Model"])
optimizer = torch.optim.SGD(resumed.parameters(), lr=LR, momentum=0.9)
if WITH_OPTIMIZER:
    optimizer.load_state_dict(checkpoint["Optim"])  # without it, momentum restarts from zero
more = train_epochs(resumed, optimizer, checkpoint["epoch"], RESUME_EPOCHS)

# The same epochs in one go, to compare
torch.manual_seed(SEED)
unbroken_model = make_model()
optimizer = torch.optim.SGD(unbroken_model.parameters(), lr=LR, momentum=0.9)
unbroken = train_epochs(unbroken_model, optimizer, 0, EPOCHS + RESUME_EPOCHS)
gap = max(abs(a - b) for a, b in zip(losses + more, unbroken, strict=True))
span = f"epochs {{EPOCHS + 1}}-{{EPOCHS + RESUME_EPOCHS}}"
print(f"{{span}}: largest loss gap to an unbroken run {{gap:.3g}}")

# Why not torch.save(model)? It pickles the class by its import path; a safe load refuses it
torch.save(model, "whole_model.pth")
try:
    torch.load("whole_model.pth", weights_only=True)
except Exception as error:  # pickle.UnpicklingError
    print(next(line.strip() for line in str(error).splitlines() if "Unsupported global" in line))
'''
