"""Checkpoints the app describes and evaluates: what a loaded file holds (a state_dict or a
checkpoint with its optimizer, epoch, task and config), and that file loaded into a task's model
and scored on its held-out data.

Every file comes through ``app.jobs.safe_load.open_untrusted`` first, so nothing here sees
bytes that have not passed the safe-``torch.load`` gate. No HTTP here: the Saving lesson's
routes serve these functions, and a notebook can call them directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

import torch
from pydantic import BaseModel
from torch import nn

from app.jobs.safe_load import (
    CheckpointError,
    CheckpointLimits,
    first_line,
    listed,
    open_untrusted,
)
from app.jobs.tasks import ConfigError, Task, UnknownTask, get_task

Format = Literal["state_dict", "checkpoint"]

# The task a file without a "task" key is evaluated as.
DEFAULT_TASK = "digits-cnn"
# Where a checkpoint keeps the model's state_dict and the optimizer's: the app's own spelling
# first, then the notes' ({'Model': ..., 'Optim': ...}), then PyTorch's tutorial's.
MODEL_KEYS = ("model", "Model", "model_state_dict", "state_dict")
OPTIMIZER_KEYS = ("optimizer", "Optim", "optimizer_state_dict", "optim")


@dataclass(frozen=True)
class Mismatch:
    """A key both sides have, with different shapes."""

    key: str
    file: list[int]
    model: list[int]


class ArchitectureMismatch(CheckpointError):
    """The state_dict's keys or shapes are not the model's; lists every difference."""

    def __init__(
        self,
        task: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[Mismatch],
    ) -> None:
        self.task = task
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        parts = []
        if missing:
            parts.append(f"missing keys {listed(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {listed(unexpected)}")
        if mismatched:
            shapes = [
                f"{m.key}: file {_shape(m.file)}, model {_shape(m.model)}" for m in mismatched
            ]
            parts.append(f"mismatched shapes {listed(shapes)}")
        hint = (
            " The layers are the same but their sizes differ: send the config it was trained "
            "with (e.g. its channels)."
            if mismatched and not (missing or unexpected)
            else " It was saved from another architecture: choose the task it was trained on."
        )
        super().__init__(f"The state_dict does not fit {task}'s model: {'; '.join(parts)}.{hint}")

    def extra(self) -> dict[str, Any]:
        return {
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": [
                {"key": m.key, "file": m.file, "model": m.model} for m in self.mismatched
            ],
        }


@dataclass
class Opened:
    """A checkpoint file, loaded and checked: the model's tensors and what came with them."""

    format: Format
    model: dict[str, torch.Tensor]  # the model's state_dict, in the file's order
    bytes: int
    epoch: int | None = None
    task: str | None = None
    config: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None  # described by ``optimizer_summary``
    other_keys: dict[str, str] = field(default_factory=dict)


def open_checkpoint(data: bytes, limits: CheckpointLimits) -> Opened:
    """The checkpoint in ``data``, or a ``CheckpointError`` saying why it is refused."""
    return classify(open_untrusted(data, limits), len(data))


# -- what the file holds ----------------------------------------------------------------------


def classify(loaded: Any, size: int) -> Opened:
    """A state_dict (name -> tensor) or a checkpoint (a dict with the model's state_dict)."""
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"The file holds {kind_phrase(loaded)}, not a state_dict (a dict of name -> tensor, "
            "what model.state_dict() gives) or a checkpoint (a dict with a 'model' key holding "
            "one)."
        )
    model_key = next((k for k in MODEL_KEYS if isinstance(loaded.get(k), Mapping)), None)
    if model_key is None:
        problem = _not_a_state_dict(loaded)
        if problem is None:
            return Opened("state_dict", dict(loaded), size)
        keys = [_key(k) for k in loaded]
        raise CheckpointError(
            f"The file holds a dict, but neither a state_dict ({problem}) nor a checkpoint "
            f"(no 'model' or 'Model' key holding a state_dict; its keys are {listed(keys)})."
        )
    state = loaded[model_key]
    problem = _not_a_state_dict(state)
    if problem is not None:
        raise CheckpointError(
            f"The checkpoint's {model_key!r} should be a state_dict (name -> tensor), but "
            f"{problem}."
        )
    opened = Opened("checkpoint", dict(state), size)
    used = {model_key}
    optimizer_key = next((k for k in OPTIMIZER_KEYS if k in loaded), None)
    if optimizer_key is not None:
        opened.optimizer = optimizer_summary(loaded[optimizer_key])
        if opened.optimizer is not None:
            used.add(optimizer_key)
    epoch = loaded.get("epoch")
    if _is_int(epoch):
        opened.epoch = int(epoch)
        used.add("epoch")
    task = loaded.get("task")
    if isinstance(task, str):
        opened.task = task
        used.add("task")
    config = loaded.get("config")
    if isinstance(config, Mapping):
        opened.config = plain(config)
        used.add("config")
    opened.other_keys = {
        _key(key): kind_phrase(value) for key, value in loaded.items() if key not in used
    }
    return opened


def _not_a_state_dict(value: Mapping[Any, Any]) -> str | None:
    """What keeps ``value`` from being a state_dict, or None when it is one."""
    for key, item in value.items():
        if not isinstance(key, str):
            return f"its key {_key(key)} is {kind_phrase(key)}, not a name"
        if not isinstance(item, torch.Tensor):
            return f"key {key!r} holds {kind_phrase(item)}, not a tensor"
    return None


def tensor_info(tensor: torch.Tensor) -> dict[str, Any]:
    return {
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "numel": tensor.numel(),
    }


def optimizer_summary(value: Any) -> dict[str, Any] | None:
    """An optimizer's state_dict, described: each group's hyperparameters and parameter ids,
    and each parameter's state (momentum buffers and the like). None when ``value`` is not one.
    """
    if not isinstance(value, Mapping):
        return None
    groups, state = value.get("param_groups"), value.get("state")
    if not isinstance(groups, list) or not isinstance(state, Mapping):
        return None
    described_groups = []
    for group in groups:
        if not isinstance(group, Mapping):
            return None
        params = group.get("params")
        if not isinstance(params, list) or not all(_is_int(p) for p in params):
            return None
        hyper = {str(k): plain(v) for k, v in group.items() if k != "params" and _is_hyper(v)}
        described_groups.append({**hyper, "params": [int(p) for p in params]})
    described_state: list[dict[str, Any]] = []
    for param, entry in state.items():
        if not _is_int(param) or not isinstance(entry, Mapping):
            return None
        described_state.append(
            {
                "param": int(param),
                "buffers": [
                    {"name": str(name), **tensor_info(buffer)}
                    for name, buffer in entry.items()
                    if isinstance(buffer, torch.Tensor)
                ],
                "scalars": {
                    str(name): plain(item)
                    for name, item in entry.items()
                    if not isinstance(item, torch.Tensor)
                },
            }
        )
    described_state.sort(key=lambda s: s["param"])
    return {"param_groups": described_groups, "state": described_state}


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and not value.is_complex()
    return value is None or isinstance(value, bool | int | float | str)


def _is_hyper(value: Any) -> bool:
    """A scalar, or a short list of them (Adam's betas, the group's param_names)."""
    if isinstance(value, list | tuple):
        return all(_is_scalar(v) for v in value)
    return _is_scalar(value)


def plain(value: Any) -> Any:
    """``value`` as JSON: numbers, strings, lists and dicts; non-finite floats become null and
    anything else a short description. Only for walked (depth-bounded) structures."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, torch.Tensor):
        if value.dim() == 0 and not value.is_complex():
            return plain(value.item())
        return kind_phrase(value)
    if isinstance(value, Mapping):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return kind_phrase(value)


def kind_phrase(value: Any) -> str:
    """A short phrase naming a value's type (and, when small, the value) for messages."""
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"a Tensor ({dtype}, shape {list(value.shape)})"
    if isinstance(value, bool | int | float):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"str {shown!r}"
    if isinstance(value, Mapping):
        return f"a {type(value).__name__} of {_count(len(value), 'key')}"
    if isinstance(value, list | tuple | set | frozenset):
        return f"a {type(value).__name__} of {_count(len(value), 'item')}"
    return f"a {type(value).__name__}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _key(key: Any) -> str:
    return key if isinstance(key, str) else kind_phrase(key)


def _shape(shape: list[int]) -> str:
    return "x".join(str(n) for n in shape) if shape else "scalar"


def inspect_checkpoint(data: bytes, limits: CheckpointLimits) -> dict[str, Any]:
    """What ``POST /api/checkpoints/inspect`` answers: the file's tensors and what came with
    them (epoch, task, config, optimizer state, any other keys)."""
    return summary(open_checkpoint(data, limits))


def summary(opened: Opened) -> dict[str, Any]:
    tensors = [{"key": key, **tensor_info(tensor)} for key, tensor in opened.model.items()]
    return {
        "format": opened.format,
        "epoch": opened.epoch,
        "tensors": tensors,
        # Every tensor of the model's state_dict: parameters, and buffers where it has any.
        "total_parameters": sum(t["numel"] for t in tensors),
        "task": opened.task,
        "config": opened.config,
        "optimizer": opened.optimizer,
        "other_keys": opened.other_keys,
        "bytes": opened.bytes,
    }


# -- loading into a task's model and evaluating -------------------------------------------------


def choose_task(
    opened: Opened, task: str | None, config: dict[str, Any] | None
) -> tuple[Task, BaseModel]:
    """The task (the request's, else the file's, else digits-cnn) and its validated config
    (the request's, else the file's when it is the same task's, else the task's defaults)."""
    name = task or opened.task or DEFAULT_TASK
    try:
        spec = get_task(name)
    except UnknownTask as error:
        if task is None and opened.task is not None:
            raise UnknownTask(
                f"The checkpoint's task {name!r} is not one this app trains ({error}); send the "
                "form field task to choose one.",
                "task",
            ) from None
        raise
    if config is None and opened.task in (None, spec.name):
        try:
            return spec, spec.validate(opened.config)
        except ConfigError as error:
            raise ConfigError(
                f"The checkpoint's config does not fit {name}: {error}. Send the form field "
                "config to choose one.",
                error.field,
            ) from None
    return spec, spec.validate(config)


def compare(
    state: Mapping[str, torch.Tensor], model: nn.Module
) -> tuple[list[str], list[str], list[Mismatch]]:
    """The keys the model needs and the file lacks, the file's keys the model has no place for,
    and the shapes that differ: all of them (torch's own ``load_state_dict`` error stops at the
    first kind it meets)."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        Mismatch(key, list(state[key].shape), list(tensor.shape))
        for key, tensor in expected.items()
        if key in state and state[key].shape != tensor.shape
    ]
    return missing, unexpected, mismatched


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], task: str) -> nn.Module:
    """``model.load_state_dict(state)`` (strict) once every key and shape fits; then
    ``model.eval()``."""
    missing, unexpected, mismatched = compare(state, model)
    if missing or unexpected or mismatched:
        raise ArchitectureMismatch(task, missing, unexpected, mismatched)
    try:
        # A plain dict: the file's own _metadata (layer versions) is not trusted with anything.
        model.load_state_dict(dict(state), strict=True)
    except (RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"load_state_dict refused the tensors: {first_line(error)}") from None
    return model.eval()


def evaluate_checkpoint(
    data: bytes,
    limits: CheckpointLimits,
    task: str | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``POST /api/checkpoints/evaluate`` answers: the file loaded into the task's model
    (``build_model``, strict ``load_state_dict``, ``eval()``) and scored on its held-out data."""
    opened = open_checkpoint(data, limits)
    spec, cfg = choose_task(opened, task, config)
    build, score = spec.build_model, spec.evaluate
    if build is None or score is None:
        raise ConfigError(f"{spec.name} checkpoints cannot be evaluated here.", "task")
    model = load_into(build(cfg), opened.model, spec.name)
    with torch.no_grad():
        result = score(model, cfg)
    accuracy = result.get("accuracy")
    return {
        "task": spec.name,
        "config": cfg.model_dump(mode="json"),
        "format": opened.format,
        "epoch": opened.epoch,
        "loss": plain(float(result["loss"])),  # a diverged model's NaN loss becomes null
        "accuracy": None if accuracy is None else plain(float(accuracy)),
        "n": int(result["n"]),
        "predicted": [int(p) for p in result.get("predicted", [])],
        "labels": [int(label) for label in result.get("labels", [])],
        "result": plain(result),
    }
