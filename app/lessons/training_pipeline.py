"""Training pipeline: linear regression three ways, with the app's own training loop.

Every number comes from ``app.jobs.tasks.train_linear_regression``, the loop a "Train as a run"
job runs: this module only records what it emits per epoch (loss, w, b and the gradients) for
its three stages, and adds what a learner needs beside it: the least-squares optimum, the loss
surface over (w, b) and the learning rate past which plain gradient descent diverges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from app.jobs.tasks import (
    LINEAR_REGRESSION,
    N_SAMPLES,
    TRUE_B,
    TRUE_W,
    LinearRegressionConfig,
    initial_params,
    linear_data,
    train_linear_regression,
)
from app.lessons.errors import LessonInputError

STAGES = ("manual", "autograd", "nn")
STAGE_TITLES = {
    "manual": "1. Gradients by hand",
    "autograd": "2. Autograd, optim.SGD and nn.MSELoss",
    "nn": "3. nn.Linear",
}
STAGE_NAMES = {"manual": "by hand", "autograd": "autograd + SGD", "nn": "nn.Linear"}
METRICS = ("loss", "w", "b", "grad_w", "grad_b")
SURFACE_POINTS = 51  # grid points per axis: a smooth contour for a few tens of kB of JSON
SURFACE_REACH = 10.0  # path points further than this from the optimum do not widen the grid


@dataclass(frozen=True)
class TrainingParams:
    """What the page lets a learner change; the run config's fields plus the epoch on screen."""

    stage: str = "nn"  # the stage the page highlights and "Train as a run" sends; all agree
    epochs: int = 100  # the run task's default: lr 0.5 reaches the least-squares fit well before
    learning_rate: float = 0.5  # under 2 / λ_max ≈ 0.79 for this data, so descent converges
    seed: int = 0  # picks the noise on the data and the starting (w, b): replay it exactly
    epoch: int = 10  # the epoch on screen: a few steps in, the line is still on its way


def bounds() -> dict[str, dict[str, Any]]:
    """The run task's own config bounds (``GET /api/tasks``): the page enforces the same."""
    return {field["name"]: field for field in LINEAR_REGRESSION.info()["fields"]}


def check_params(params: TrainingParams) -> LinearRegressionConfig:
    """The run config these params describe, or a message naming the bound that was broken."""
    if params.stage not in STAGES:
        raise LessonInputError(
            f"stage must be one of {', '.join(STAGES)}; got {params.stage[:40]!r}."
        )
    fields = bounds()
    for name in ("epochs", "learning_rate", "seed"):
        value = getattr(params, name)
        field = fields[name]
        low = float(field.get("minimum", field.get("exclusiveMinimum", 0)))
        high = float(field["maximum"])
        above = value > low if "exclusiveMinimum" in field else value >= low
        if not (above and value <= high and math.isfinite(value)):
            low_word = "above" if "exclusiveMinimum" in field else "at least"
            raise LessonInputError(
                f"{name} must be {low_word} {_show(low)} and at most {_show(high)} (the "
                f"linear-regression task's bounds); got {_show(value)}."
            )
    if not 0 <= params.epoch <= params.epochs:
        raise LessonInputError(
            f"epoch must be between 0 and epochs ({params.epochs}); got {params.epoch}."
        )
    return LinearRegressionConfig(
        stage=params.stage,
        epochs=params.epochs,
        learning_rate=params.learning_rate,
        seed=params.seed,
    )


def _show(value: float) -> str:
    """Whole numbers in full (2147483647, not 2.14748e+09); others compactly."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def record_stage(stage: str, epochs: int, learning_rate: float, seed: int) -> dict[str, list]:
    """Train one stage with the app's run loop and keep every metric it emits, per epoch.

    At epoch k the loop logs the loss and gradients of that epoch's forward pass, taken at
    (w, b) before its ``optimizer.step()``, and the (w, b) after the step.
    """
    metrics: dict[str, list] = {name: [] for name in METRICS}

    def emit(step: int, name: str, value: float) -> None:
        metrics[name].append(value)

    config = LinearRegressionConfig(
        stage=stage,
        epochs=epochs,
        learning_rate=learning_rate,
        seed=seed,
    )
    train_linear_regression(config, emit, lambda: False)
    return metrics


def least_squares(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """The exact minimiser of the MSE, the point gradient descent walks towards."""
    design = torch.cat([x, torch.ones_like(x)], dim=1).double()  # (n, 2): columns x and 1
    solution = torch.linalg.lstsq(design, y.double()).solution  # (2, 1): w and b
    return float(solution[0, 0]), float(solution[1, 0])


def stable_learning_rate(x: torch.Tensor) -> float:
    """Gradient descent on the MSE diverges once lr > 2 / the Hessian's largest eigenvalue."""
    design = torch.cat([x, torch.ones_like(x)], dim=1).double()  # (n, 2)
    hessian = 2 * design.T @ design / len(x)  # (2, 2): the MSE's curvature, the same everywhere
    return float(2 / torch.linalg.eigvalsh(hessian).max())


@torch.no_grad()
def loss_surface(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """The MSE at every (w, b) of a grid, by broadcasting: rows follow b, columns follow w."""
    pred = w.view(1, -1, 1) * x.view(1, 1, -1) + b.view(-1, 1, 1)  # (len(b), len(w), n)
    return ((pred - y.view(1, 1, -1)) ** 2).mean(dim=-1)  # (len(b), len(w))


def _clean(values: list[float]) -> list[float | None]:
    """Non-finite numbers (a diverged run) as None, so the result stays valid JSON."""
    return [v if math.isfinite(v) else None for v in values]


def _largest_gap(mine: list[float], theirs: list[float]) -> float | None:
    """max |mine - theirs| over the epochs where both are finite (None: there are none)."""
    gaps = [abs(a - b) for a, b in zip(mine, theirs, strict=True) if math.isfinite(a - b)]
    return max(gaps) if gaps else None


def _grid_axis(points: list[float], centre: float) -> list[float]:
    near = [p for p in points if math.isfinite(p) and abs(p - centre) <= SURFACE_REACH]
    low, high = min(near), max(near)
    pad = max(0.5, 0.2 * (high - low))
    return torch.linspace(low - pad, high + pad, SURFACE_POINTS).tolist()


@lru_cache(maxsize=64)
def train_all(epochs: int, learning_rate: float, seed: int) -> dict[str, Any]:
    """Everything that does not depend on the epoch on screen; cached (stepping is free)."""
    x, y = linear_data(seed)
    w0, b0 = initial_params(seed)
    runs = {stage: record_stage(stage, epochs, learning_rate, seed) for stage in STAGES}
    w_star, b_star = least_squares(x, y)
    paths_w = [w0, *runs["nn"]["w"]]
    paths_b = [b0, *runs["nn"]["b"]]
    grid_w = _grid_axis([w_star, *paths_w], w_star)
    grid_b = _grid_axis([b_star, *paths_b], b_star)
    surface = loss_surface(x, y, torch.tensor(grid_w), torch.tensor(grid_b))
    optimum_loss = float(((w_star * x + b_star - y) ** 2).mean())
    losses = runs["nn"]["loss"]
    diverged_at = next((i + 1 for i, v in enumerate(losses) if not math.isfinite(v)), None)
    return {
        "x": x.reshape(-1).tolist(),
        "y": y.reshape(-1).tolist(),
        "true_w": TRUE_W,
        "true_b": TRUE_B,
        "w0": w0,
        "b0": b0,
        "stages": {
            stage: {name: _clean(values) for name, values in metrics.items()}
            for stage, metrics in runs.items()
        },
        "agreement": {
            stage: {
                name: _largest_gap(runs[stage][name], runs["nn"][name])
                for name in ("w", "b", "loss")
            }
            for stage in ("manual", "autograd")
        },
        "optimum": {"w": w_star, "b": b_star, "loss": optimum_loss},
        "stable_learning_rate": stable_learning_rate(x),
        "diverged_at": diverged_at,
        "surface": {"w": grid_w, "b": grid_b, "loss": surface.tolist()},
    }


def explore(params: TrainingParams) -> dict[str, Any]:
    """Everything the lesson page shows for one set of parameters, as plain numbers."""
    check_params(params)
    trained = train_all(params.epochs, params.learning_rate, params.seed)
    k = params.epoch
    runs = trained["stages"]

    def path(stage: str, name: str) -> list[float | None]:
        start = trained["w0"] if name == "w" else trained["b0"]
        return [start, *runs[stage][name]]  # index t: the value after t epochs

    current: dict[str, Any] = {"epoch": k, "w": path(params.stage, "w")[k]}
    current["b"] = path(params.stage, "b")[k]
    if k >= 1:  # epoch k's forward pass ran at the previous (w, b); its step made the new one
        current |= {
            "w_before": path(params.stage, "w")[k - 1],
            "b_before": path(params.stage, "b")[k - 1],
            **{name: runs[params.stage][name][k - 1] for name in ("loss", "grad_w", "grad_b")},
        }
    return {
        **trained,
        "stage": params.stage,
        "stage_names": STAGE_NAMES,
        "epochs": params.epochs,
        "learning_rate": params.learning_rate,
        "seed": params.seed,
        "epoch": k,
        "current": current,
        "at_epoch": {
            stage: {"w": path(stage, "w")[k], "b": path(stage, "b")[k]} for stage in STAGES
        },
        "paths": {stage: {"w": path(stage, "w"), "b": path(stage, "b")} for stage in STAGES},
    }


def snippet(params: TrainingParams) -> str:
    """Plain PyTorch that reproduces the page's nn.Linear stage; paste it into Python."""
    return f"""\
import torch
from torch import nn

seed, epochs, learning_rate = {params.seed}, {params.epochs}, {params.learning_rate!r}

# The data: {N_SAMPLES} points on y = {TRUE_W:g} x + {TRUE_B:g} plus noise, shapes (n, 1)
gen = torch.Generator().manual_seed(seed)
x = torch.linspace(0.0, 1.0, {N_SAMPLES}).reshape(-1, 1)
y = {TRUE_W:g} * x + {TRUE_B:g} + 0.1 * torch.randn(x.shape, generator=gen)

# The starting point the page uses for every stage: w, b ~ U(-1, 1)
gen = torch.Generator().manual_seed(seed + 1)
w0, b0 = (torch.rand(2, generator=gen) * 2 - 1).tolist()

model = nn.Linear(1, 1)  # one input feature, one output: y = w x + b
with torch.no_grad():
    model.weight.fill_(w0)
    model.bias.fill_(b0)
loss_fn = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)

for epoch in range(1, epochs + 1):
    loss = loss_fn(model(x), y)  # forward pass
    loss.backward()  # fills model.weight.grad and model.bias.grad
    optimizer.step()  # w <- w - lr * dL/dw, b <- b - lr * dL/db
    optimizer.zero_grad()
    if epoch % max(1, epochs // 10) == 0 or epoch == epochs:
        print(f"epoch {{epoch}}: loss {{loss.item():.6f}}, "
              f"w {{model.weight.item():.6f}}, b {{model.bias.item():.6f}}")
"""
