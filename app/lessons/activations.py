"""Activation functions, their derivatives by autograd, vanishing gradients and dead ReLUs.

Every function here is shown on the lesson page as it stands: the page renders this source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from app.lessons.errors import LessonInputError, check_limit

NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu")
INITS = ("kaiming", "xavier", "default")


@dataclass(frozen=True)
class ActivationLimits:
    """How much a learner may ask for; the app fills these from its settings."""

    max_points: int = 10_001
    max_abs_x: float = 1000.0
    max_depth: int = 100
    max_width: int = 256
    max_train_steps: int = 500


@dataclass(frozen=True)
class ActivationParams:
    """What the lesson page lets a learner change."""

    name: str = "sigmoid"  # the notes start with sigmoid for binary logistic regression
    x_min: float = -5.0  # wide enough to see sigmoid and tanh saturate
    x_max: float = 5.0
    negative_slope: float = 0.1  # 10x nn.LeakyReLU's default 0.01, so the leak shows on the plot
    depth: int = 20  # layers in the vanishing-gradient stack: deep enough to see the decay
    width: int = 32
    init: str = "kaiming"  # He init keeps ReLU's signal steady; "default" is nn.Linear's own
    seed: int = 0
    dead_units: int = 16  # hidden units pushed below zero, as one oversized SGD step can do
    steps: int = 200  # SGD steps in the dead-ReLU demo


def make_activation(name: str, negative_slope: float = 0.01) -> nn.Module:
    """The activation as the nn module a network would use."""
    modules: dict[str, nn.Module] = {
        "sigmoid": nn.Sigmoid(),  # 1 / (1 + e^-x), in (0, 1)
        "tanh": nn.Tanh(),  # in (-1, 1), zero-centred: for hidden layers
        "relu": nn.ReLU(),  # max(0, x): the rule-of-thumb default
        "leaky_relu": nn.LeakyReLU(negative_slope),  # a * x for x < 0, so the gradient never dies
        "elu": nn.ELU(),
        "gelu": nn.GELU(),
    }
    return modules[name]


def activation_curve(
    name: str, x_min: float, x_max: float, points: int, negative_slope: float = 0.01
) -> dict[str, list[float]]:
    """y = f(x) on a grid, and dy/dx from autograd (not from a formula)."""
    x = torch.linspace(x_min, x_max, points, requires_grad=True)  # (points,)
    y = make_activation(name, negative_slope)(x)
    y.sum().backward()  # each y_i depends on x_i only, so x.grad[i] = f'(x_i)
    assert x.grad is not None
    return {"x": x.detach().tolist(), "y": y.detach().tolist(), "derivative": x.grad.tolist()}


def softmax_output_layer(x: torch.Tensor) -> torch.Tensor:
    """Softmax as the last layer's activation: logits (x, 1, -1) become 3 probabilities."""
    logits = torch.stack([x, torch.ones_like(x), -torch.ones_like(x)], dim=-1)  # (points, 3)
    return torch.softmax(logits, dim=-1)  # each row sums to 1


def build_stack(
    name: str, depth: int, width: int, init: str, negative_slope: float = 0.01
) -> nn.Sequential:
    """``depth`` blocks of Linear(width, width) followed by the activation."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        linear = nn.Linear(width, width)
        if init == "kaiming":
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        elif init == "xavier":
            nn.init.xavier_normal_(linear.weight)
            nn.init.zeros_(linear.bias)
        layers += [linear, make_activation(name, negative_slope)]
    return nn.Sequential(*layers)


def vanishing_gradients(
    name: str,
    depth: int,
    width: int,
    seed: int,
    init: str = "kaiming",
    negative_slope: float = 0.01,
) -> list[float]:
    """One backward pass; the gradient norm of each layer's weights, index 0 nearest the input."""
    torch.manual_seed(seed)
    net = build_stack(name, depth, width, init, negative_slope)
    x = torch.randn(64, width)  # (batch, width)
    loss = net(x).pow(2).mean()
    loss.backward()  # the chain rule multiplies one f'(z) per layer on the way back
    linears = [m for m in net if isinstance(m, nn.Linear)]
    return [m.weight.grad.norm().item() if m.weight.grad is not None else 0.0 for m in linears]


def dead_relu_training(
    negative_slope: float, dead_units: int, steps: int, seed: int, hidden: int = 16
) -> dict[str, list[float]]:
    """Fit sin(1.5x) with one hidden layer whose first ``dead_units`` units start below zero.

    With ReLU (negative_slope 0) a unit that is negative for every input gets gradient 0, so its
    weights never change; with leaky ReLU it still gets a * gradient and keeps learning.
    """
    torch.manual_seed(seed)
    x = torch.linspace(-2, 2, 64).unsqueeze(1)  # (64, 1)
    y = torch.sin(1.5 * x)  # (64, 1)
    hidden_layer, output_layer = nn.Linear(1, hidden), nn.Linear(hidden, 1)
    with torch.no_grad():
        # |w * x| <= 2 here, so a bias of -3 keeps these units negative for every input
        hidden_layer.bias[:dead_units] = -3.0
    activation = nn.LeakyReLU(negative_slope) if negative_slope > 0 else nn.ReLU()
    params = list(hidden_layer.parameters()) + list(output_layer.parameters())
    optimizer = torch.optim.SGD(params, lr=0.3)
    start = hidden_layer.weight.detach().clone()
    losses, dead, silent = [], [], []
    for _ in range(steps):
        pre = hidden_layer(x)  # (64, hidden)
        loss = nn.functional.mse_loss(output_layer(activation(pre)), y)
        optimizer.zero_grad()
        loss.backward()
        grad = hidden_layer.weight.grad
        assert grad is not None
        losses.append(loss.item())
        dead.append(float((pre <= 0).all(dim=0).sum()))  # negative for every input
        silent.append(float((grad.abs().squeeze(1) == 0).sum()))  # got exactly zero gradient
        optimizer.step()
    moved = (hidden_layer.weight.detach() - start).abs().squeeze(1)  # (hidden,)
    return {"loss": losses, "dead": dead, "zero_grad": silent, "moved": moved.tolist()}


# ---- input checks: each names the problem and the limit ------------------------------------


def check_name(name: str) -> None:
    """Only the activations this lesson knows."""
    if name not in NAMES:
        raise LessonInputError(f"Unknown activation {name!r}: choose one of {', '.join(NAMES)}.")


def check_curve(
    x_min: float, x_max: float, points: int, slope: float, lim: ActivationLimits
) -> None:
    """A grid the server can draw: finite, ordered, bounded in range and size."""
    for label, value in (("x_min", x_min), ("x_max", x_max), ("negative_slope", slope)):
        if not math.isfinite(value):
            raise LessonInputError(f"{label} must be a finite number; got {value}.")
    check_limit("|x_min|", "max_abs_x", lim.max_abs_x, abs(x_min))
    check_limit("|x_max|", "max_abs_x", lim.max_abs_x, abs(x_max))
    if x_min >= x_max:
        raise LessonInputError(f"x_min ({x_min:g}) must be below x_max ({x_max:g}).")
    if points < 2:
        raise LessonInputError(f"points must be at least 2 to draw a curve; got {points}.")
    check_limit("points", "max_points", lim.max_points, points)
    check_slope(slope)


def check_slope(slope: float) -> None:
    """Leaky ReLU's slope for x < 0: between 0 (plain ReLU) and 1 (the identity)."""
    if not (math.isfinite(slope) and 0 <= slope <= 1):
        raise LessonInputError(f"negative_slope must be between 0 and 1; got {slope}.")


def check_stack(depth: int, width: int, init: str, lim: ActivationLimits) -> None:
    """A stack the server can run in well under a second."""
    if depth < 1 or width < 1:
        raise LessonInputError(f"depth and width must be at least 1; got {depth} and {width}.")
    check_limit("depth", "max_depth", lim.max_depth, depth)
    check_limit("width", "max_width", lim.max_width, width)
    if init not in INITS:
        raise LessonInputError(f"Unknown init {init!r}: choose one of {', '.join(INITS)}.")


def check_seed(seed: int) -> None:
    """torch.manual_seed takes a 64-bit seed."""
    if not 0 <= seed < 2**63:
        raise LessonInputError(f"seed must be between 0 and 2**63 - 1; got {seed}.")


def check_dead(dead_units: int, steps: int, hidden: int, lim: ActivationLimits) -> None:
    """The dead-ReLU demo's own bounds."""
    if not 0 <= dead_units <= hidden:
        raise LessonInputError(f"dead_units must be 0 to {hidden}; got {dead_units}.")
    if steps < 1:
        raise LessonInputError(f"steps must be at least 1; got {steps}.")
    check_limit("steps", "max_train_steps", lim.max_train_steps, steps)


# ---- the lesson page --------------------------------------------------------------------------

POINTS = 201  # enough for smooth curves, small enough to send on every slider move


# Both are seeded, so equal arguments give equal numbers: a slider that moves one section reuses
# the others' results instead of training them again (the dead-ReLU runs are most of the cost).
_vanishing = lru_cache(maxsize=256)(vanishing_gradients)
_dead = lru_cache(maxsize=256)(dead_relu_training)


def explore(params: ActivationParams, limits: ActivationLimits) -> dict[str, object]:
    """Everything the lesson page shows for one set of parameters, as plain numbers."""
    check_name(params.name)
    check_curve(params.x_min, params.x_max, POINTS, params.negative_slope, limits)
    check_stack(params.depth, params.width, params.init, limits)
    check_dead(params.dead_units, params.steps, 16, limits)
    check_seed(params.seed)
    curve = activation_curve(params.name, params.x_min, params.x_max, POINTS, params.negative_slope)
    x = torch.tensor(curve["x"])
    vanishing = {
        name: _vanishing(
            name, params.depth, params.width, params.seed, params.init, params.negative_slope
        )
        for name in ("sigmoid", "tanh", "relu", "leaky_relu")
    }
    slope = params.negative_slope if params.negative_slope > 0 else 0.01  # 0 would be plain ReLU
    return {
        "name": params.name,
        "curve": curve,
        "softmax": softmax_output_layer(x).tolist(),
        "vanishing": vanishing,
        "dead_relu": _dead(0.0, params.dead_units, params.steps, params.seed),
        "dead_leaky": _dead(slope, params.dead_units, params.steps, params.seed),
        "leaky_slope": slope,
    }


def snippet(params: ActivationParams) -> str:
    """Plain PyTorch that reproduces the page's curve; paste it into Python."""
    module = {
        "sigmoid": "nn.Sigmoid()",
        "tanh": "nn.Tanh()",
        "relu": "nn.ReLU()",
        "leaky_relu": f"nn.LeakyReLU(negative_slope={params.negative_slope:g})",
        "elu": "nn.ELU()",
        "gelu": "nn.GELU()",
    }[params.name]
    return (
        "import torch\n"
        "from torch import nn\n\n"
        f"activation = {module}\n"
        f"x = torch.linspace({params.x_min:g}, {params.x_max:g}, {POINTS}, requires_grad=True)\n"
        "y = activation(x)\n"
        "y.sum().backward()  # x.grad[i] = f'(x[i])\n"
        "derivative = x.grad\n"
        "print(y[:5], derivative[:5])\n"
    )
