"""The task registry: what a run can train, its config bounds, and the training loops.

A task's ``train(config, emit, should_stop, *, progress, resume, on_epoch)`` reports metrics
with ``emit(step, name, value)``, checks ``should_stop()`` between steps and returns early when it
says so, and returns a ``TrainResult`` that the worker saves as a checkpoint. After each epoch it
calls ``on_epoch(epoch, snapshot)`` when given one: ``snapshot()`` is the ``TrainResult`` of that
moment, which a class deployment's worker saves so that another worker can continue the run
from there if this one dies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

Emit = Callable[[int, str, float], None]
ShouldStop = Callable[[], bool]
Progress = Callable[[float], None]

CHECKPOINT_FILE = "checkpoint.pth"
STATE_DICT_FILE = "state_dict.pth"


class ConfigError(ValueError):
    """A task config is invalid; the message names the field and the bound."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownTask(ConfigError):
    """No task has this name."""


@dataclass
class TrainResult:
    """What a finished (or stopped) training loop leaves behind."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    epoch: int
    # JSON-able extras the Tracking views show (architecture, held-out predictions, samples).
    summary: dict[str, Any] | None = None


# Called after each epoch with the epoch and a function that snapshots the training state.
OnEpoch = Callable[[int, Callable[[], TrainResult]], None]


class TrainFn(Protocol):
    def __call__(
        self,
        config: Any,
        emit: Emit,
        should_stop: ShouldStop,
        *,
        progress: Progress,
        resume: dict[str, Any] | None,
        on_epoch: OnEpoch | None = None,
    ) -> TrainResult: ...


# The model a task trains, built from its validated config (untrained), and how it scores a
# model on the task's held-out data: {"loss", "accuracy" (classifiers), "n", ...}.
BuildModel = Callable[[Any], nn.Module]
Evaluate = Callable[[nn.Module, Any], dict[str, Any]]
# Run when a run that resumes is submitted, with its validated config and the checkpoint it
# resumes from: raises ``ConfigError`` (a 422) for a checkpoint the run could not continue, so
# the request is refused rather than the run failing in its worker.
CheckResume = Callable[[BaseModel, dict[str, Any]], None]


@dataclass(frozen=True)
class Task:
    """A named training task. Picklable (module-level config model and function), so the
    worker process receives the task itself."""

    name: str
    description: str
    config_model: type[BaseModel]
    train: TrainFn
    build_model: BuildModel | None = None  # None: its checkpoints cannot be evaluated
    evaluate: Evaluate | None = None
    check_resume: CheckResume | None = None  # None: every checkpoint of the task resumes

    def validate(self, config: dict[str, Any] | None) -> BaseModel:
        try:
            return self.config_model.model_validate(config or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(part) for part in err["loc"]) or "config"
            raise ConfigError(f"{self.name} config field {field!r}: {err['msg']}", field) from exc

    def info(self) -> dict[str, Any]:
        """The task as ``GET /api/tasks`` lists it: its name, description and config fields
        with their defaults and bounds."""
        fields: list[dict[str, Any]] = []
        schema = self.config_model.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            entry: dict[str, Any] = {"name": name, "default": prop.get("default")}
            for key in ("type", "enum", "minimum", "maximum", "exclusiveMinimum", "description"):
                if key in prop:
                    entry[key] = prop[key]
            fields.append(entry)
        return {"name": self.name, "description": self.description, "fields": fields}


_REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    _REGISTRY[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownTask(f"unknown task {name!r} (known: {sorted(_REGISTRY)})", "task") from None


def all_tasks() -> list[Task]:
    return list(_REGISTRY.values())


def save_checkpoint(
    artifacts_dir: Path, task: str, config: dict[str, Any], result: TrainResult
) -> Path:
    """``checkpoint.pth`` (model, optimizer, epoch, task, config) and ``state_dict.pth``; both
    open with ``torch.load(path, weights_only=True)``."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    path = artifacts_dir / CHECKPOINT_FILE
    torch.save(
        {
            "model": result.model_state,
            "optimizer": result.optimizer_state,
            "epoch": int(result.epoch),
            "task": task,
            "config": dict(config),
        },
        path,
    )
    torch.save(result.model_state, artifacts_dir / STATE_DICT_FILE)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    data = torch.load(path, weights_only=True)
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} is not a checkpoint", "resume_from")
    return data


# -- linear regression: the notes' three stages ---------------------------------------------


class LinearRegressionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Literal["manual", "autograd", "nn"] = Field(
        default="nn",
        description="manual gradients; autograd + optim.SGD + nn.MSELoss; nn.Linear",
    )
    epochs: int = Field(default=100, ge=1, le=500)
    learning_rate: float = Field(default=0.1, gt=0, le=1.0)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


N_SAMPLES = 20
# What every stage fits: one weight and one bias, as nn.Linear(1, 1) holds them.
LINEAR_SUMMARY: dict[str, Any] = {
    "architecture": [
        {
            "name": "linear",
            "layer": "Linear(in_features=1, out_features=1, bias=True)",
            "output_shape": [N_SAMPLES, 1],
            "parameters": 2,
        }
    ],
    "input_shape": [N_SAMPLES, 1],
}
TRUE_W = 3.0
TRUE_B = 2.0


def linear_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """20 points on y = 3x + 2 plus noise, x in [0, 1]; shapes (n, 1)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.linspace(0.0, 1.0, N_SAMPLES).reshape(-1, 1)
    y = TRUE_W * x + TRUE_B + 0.1 * torch.randn(x.shape, generator=gen)
    return x, y


def initial_params(seed: int) -> tuple[float, float]:
    """The same starting (w, b) for all three stages, like nn.Linear(1, 1)'s U(-1, 1) init."""
    gen = torch.Generator().manual_seed(seed + 1)
    w, b = (torch.rand(2, generator=gen) * 2 - 1).tolist()
    return float(w), float(b)


def _start(cfg: LinearRegressionConfig, resume: dict[str, Any] | None) -> tuple[float, float, int]:
    if resume is None:
        w, b = initial_params(cfg.seed)
        return w, b, 0
    model = resume["model"]
    return (
        float(model["weight"].reshape(-1)[0]),
        float(model["bias"].reshape(-1)[0]),
        int(resume["epoch"]),
    )


def manual_result(w: torch.Tensor, b: torch.Tensor, lr: float, epoch: int) -> TrainResult:
    """Stage 1's weight and bias as ``nn.Linear(1, 1)`` holds them, and a plain SGD's state."""
    model_state = {"weight": w.reshape(1, 1).clone(), "bias": b.reshape(1).clone()}
    optimizer_state: dict[str, Any] = {"state": {}, "param_groups": [{"lr": lr, "params": [0, 1]}]}
    return TrainResult(model_state, optimizer_state, epoch, summary=LINEAR_SUMMARY)


def _linear_result(
    model_state: Callable[[], dict[str, torch.Tensor]], optimizer: torch.optim.Optimizer, epoch: int
) -> TrainResult:
    return TrainResult(model_state(), optimizer.state_dict(), epoch, summary=LINEAR_SUMMARY)


def train_linear_regression(
    config: Any,
    emit: Emit,
    should_stop: ShouldStop,
    *,
    progress: Progress = lambda _p: None,
    resume: dict[str, Any] | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    cfg = (
        config
        if isinstance(config, LinearRegressionConfig)
        else LinearRegressionConfig.model_validate(config)
    )
    x, y = linear_data(cfg.seed)  # its own seeded generator: torch's global RNG is left alone
    w0, b0, start_epoch = _start(cfg, resume)
    lr = cfg.learning_rate
    epoch = start_epoch

    def log(epoch: int, loss: float, w: float, b: float, gw: float, gb: float) -> None:
        emit(epoch, "loss", loss)
        emit(epoch, "w", w)
        emit(epoch, "b", b)
        emit(epoch, "grad_w", gw)
        emit(epoch, "grad_b", gb)

    if cfg.stage == "manual":
        # Stage 1: prediction, loss and gradients all by hand.
        w = torch.tensor(w0)
        b = torch.tensor(b0)
        for i in range(cfg.epochs):
            if should_stop():
                break
            y_pred = w * x + b
            loss = ((y_pred - y) ** 2).mean()
            dw = (2 * x * (y_pred - y)).mean()
            db = (2 * (y_pred - y)).mean()
            w = w - lr * dw
            b = b - lr * db
            epoch = start_epoch + i + 1
            log(epoch, loss.item(), w.item(), b.item(), dw.item(), db.item())
            progress((i + 1) / cfg.epochs)
            if on_epoch is not None:
                on_epoch(epoch, partial(manual_result, w, b, lr, epoch))
        return manual_result(w, b, lr, epoch)

    if cfg.stage == "autograd":
        # Stage 2/3: autograd computes the gradients; nn.MSELoss and optim.SGD do the rest.
        wt = torch.tensor([[w0]], requires_grad=True)
        bt = torch.tensor([b0], requires_grad=True)
        params: list[torch.Tensor] = [wt, bt]

        def forward(inp: torch.Tensor) -> torch.Tensor:
            return inp * wt + bt

        model_state_fn: Callable[[], dict[str, torch.Tensor]] = lambda: {  # noqa: E731
            "weight": wt.detach().clone(),
            "bias": bt.detach().clone(),
        }
    else:
        # Stage 4: the model is nn.Linear.
        linear = nn.Linear(1, 1)
        with torch.no_grad():
            linear.weight.fill_(w0)
            linear.bias.fill_(b0)
        params = list(linear.parameters())
        forward = linear
        model_state_fn = lambda: {  # noqa: E731
            k: v.detach().clone() for k, v in linear.state_dict().items()
        }

    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(params, lr=lr)
    if resume is not None and resume.get("optimizer", {}).get("param_groups"):
        try:
            optimizer.load_state_dict(resume["optimizer"])
            for group in optimizer.param_groups:
                group["lr"] = lr
        except (ValueError, KeyError):
            pass
    for i in range(cfg.epochs):
        if should_stop():
            break
        loss = loss_fn(forward(x), y)
        loss.backward()
        gw = float(params[0].grad.reshape(-1)[0])  # type: ignore[union-attr]
        gb = float(params[1].grad.reshape(-1)[0])  # type: ignore[union-attr]
        optimizer.step()
        optimizer.zero_grad()
        epoch = start_epoch + i + 1
        w_now = float(params[0].detach().reshape(-1)[0])
        b_now = float(params[1].detach().reshape(-1)[0])
        log(epoch, loss.item(), w_now, b_now, gw, gb)
        progress((i + 1) / cfg.epochs)
        if on_epoch is not None:
            on_epoch(epoch, partial(_linear_result, model_state_fn, optimizer, epoch))
    return TrainResult(model_state_fn(), optimizer.state_dict(), epoch, summary=LINEAR_SUMMARY)


def linear_model(_cfg: Any) -> nn.Module:
    """Every stage's weight and bias, as ``nn.Linear(1, 1)`` holds them."""
    return nn.Linear(1, 1)


def evaluate_linear(model: nn.Module, cfg: Any) -> dict[str, Any]:
    """Mean squared error on the run's 20 points, and the fitted line."""
    x, y = linear_data(cfg.seed)
    model.eval()
    with torch.no_grad():
        loss = nn.functional.mse_loss(model(x), y).item()
    weight = float(model.state_dict()["weight"].reshape(-1)[0])
    bias = float(model.state_dict()["bias"].reshape(-1)[0])
    return {"loss": loss, "n": N_SAMPLES, "w": weight, "b": bias}


LINEAR_REGRESSION = register(
    Task(
        name="linear-regression",
        description="Fit y = w x + b by gradient descent, in the notes' three stages.",
        config_model=LinearRegressionConfig,
        train=train_linear_regression,
        build_model=linear_model,
        evaluate=evaluate_linear,
    )
)
