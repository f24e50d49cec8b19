"""Softmax and cross entropy: logits to probabilities, -log(p) of the true class, and its gradient.

Every function here is shown on the lesson page as it stands: the page renders this source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from app.lessons.errors import LessonInputError, check_limit


@dataclass(frozen=True)
class SoftmaxLimits:
    """How much a learner may ask for; the app fills these from its settings."""

    max_logits: int = 1000
    max_batch_rows: int = 64
    max_abs_logit: float = 1e6
    min_temperature: float = 0.01
    max_temperature: float = 100.0


@dataclass(frozen=True)
class SoftmaxParams:
    """What the lesson page lets a learner change; the defaults are the notes' 3-class example."""

    logits: tuple[float, ...] = (2.0, 1.0, 0.1)  # a 3-class network's raw outputs
    target: int = 0  # the true class: loss is -log(p[target])
    temperature: float = 1.0  # softmax(logits / T): T < 1 sharpens, T > 1 flattens
    shift: float = 1000.0  # added to every logit in the overflow demo: exp(1000) is inf in float32
    batch: tuple[tuple[tuple[float, ...], int], ...] = field(
        # three samples of a batch, each (logits, true class)
        default=(((2.0, 1.0, 0.1), 0), ((0.5, 2.5, 0.3), 1), ((1.0, 1.0, 1.0), 2))
    )


def softmax_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor | None, temperature: float = 1.0
) -> dict[str, torch.Tensor | None]:
    """Probabilities, log-probabilities, the loss and d loss / d logits, all by PyTorch."""
    logits = logits.detach().clone().requires_grad_(True)  # (K,) or (N, K): a leaf we can grad
    scaled = logits / temperature
    probabilities = torch.softmax(scaled, dim=-1)  # exp(z_i) / sum_j exp(z_j)
    log_probabilities = torch.log_softmax(scaled, dim=-1)  # stable: never exp() of a large number
    if target is None:
        return {"probabilities": probabilities, "log_probabilities": log_probabilities,
                "loss": None, "gradient": None}  # fmt: skip
    # nn.CrossEntropyLoss wants RAW logits: it applies log_softmax itself, then takes -log p[target]
    loss = nn.CrossEntropyLoss()(scaled, target)  # mean over the batch
    loss.backward()  # autograd fills logits.grad = (softmax - one_hot(target)) / (N * T)
    return {"probabilities": probabilities, "log_probabilities": log_probabilities,
            "loss": loss, "gradient": logits.grad}  # fmt: skip


def temperature_sweep(logits: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
    """softmax(logits / T) for each T: how temperature sharpens or flattens the distribution."""
    return torch.softmax(logits.unsqueeze(0) / temperatures.unsqueeze(1), dim=-1)  # (T, K)


def double_softmax_mistake(logits: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """The classic mistake: softmax before nn.CrossEntropyLoss, which applies softmax again."""
    loss_fn = nn.CrossEntropyLoss()
    right = logits.detach().clone().requires_grad_(True)
    right_loss = loss_fn(right.unsqueeze(0), target.unsqueeze(0))  # raw logits in
    right_loss.backward()
    wrong = logits.detach().clone().requires_grad_(True)
    wrong_loss = loss_fn(torch.softmax(wrong, dim=-1).unsqueeze(0), target.unsqueeze(0))
    wrong_loss.backward()  # softmax twice: the loss can never reach 0, the gradient shrinks
    return {
        "right_loss": right_loss.item(),
        "wrong_loss": wrong_loss.item(),
        "right_grad_norm": right.grad.norm().item() if right.grad is not None else 0.0,
        "wrong_grad_norm": wrong.grad.norm().item() if wrong.grad is not None else 0.0,
    }


def naive_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax straight from the formula: in float32, exp overflows to inf past about 88."""
    exps = torch.exp(logits)
    return exps / exps.sum()  # inf / inf = nan


def overflow_demo(logits: torch.Tensor) -> dict[str, list[float]]:
    """The formula overflows; torch.softmax and torch.log_softmax subtract the max first."""
    naive = naive_softmax(logits)
    return {
        "logits": logits.tolist(),
        "naive_exp": torch.exp(logits).tolist(),
        "naive_softmax": naive.tolist(),
        "naive_log": torch.log(naive).tolist(),
        "softmax": torch.softmax(logits, dim=-1).tolist(),
        "log_softmax": torch.log_softmax(logits, dim=-1).tolist(),
    }


def batch_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """A batch: one loss per sample, and nn.CrossEntropyLoss's default is their mean."""
    per_sample = nn.CrossEntropyLoss(reduction="none")(logits, targets)  # (N,)
    return {
        "probabilities": torch.softmax(logits, dim=-1),  # (N, K)
        "per_sample": per_sample,
        "mean": nn.CrossEntropyLoss()(logits, targets),  # == per_sample.mean()
    }


# ---- input checks: each names the problem and the limit ------------------------------------


def check_logit_row(row: list[float] | tuple[float, ...], limits: SoftmaxLimits, what: str) -> None:
    """A row of logits: non-empty, finite, within the configured size and magnitude."""
    if len(row) < 2:
        raise LessonInputError(f"{what} needs at least 2 values (one per class); got {len(row)}.")
    check_limit(f"The number of {what}", "max_logits", limits.max_logits, len(row))
    for value in row:
        if not math.isfinite(value):
            raise LessonInputError(f"{what} must be finite numbers; got {value}.")
        check_limit(f"|{what}|", "max_abs_logit", limits.max_abs_logit, abs(value))


def check_temperature(temperature: float, limits: SoftmaxLimits) -> None:
    """Temperature divides the logits, so it must be positive and within the limits."""
    if not math.isfinite(temperature) or not (
        limits.min_temperature <= temperature <= limits.max_temperature
    ):
        raise LessonInputError(
            f"temperature must be between {limits.min_temperature:g} and "
            f"{limits.max_temperature:g} (settings min_temperature, max_temperature); "
            f"got {temperature:g}."
        )


def check_target(target: int, classes: int, what: str = "target") -> None:
    """A class index must name one of the logits."""
    if not 0 <= target < classes:
        raise LessonInputError(
            f"{what} {target} is not a class: with {classes} logits it must be 0 to {classes - 1}."
        )


def to_tensors(
    logits: list[float] | list[list[float]],
    target: int | list[int] | None,
    temperature: float,
    limits: SoftmaxLimits,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check a request's logits and target(s) and turn them into tensors."""
    check_temperature(temperature, limits)
    if not logits:
        raise LessonInputError("logits is empty: give at least 2 numbers, one per class.")
    rows: list[list[float]]
    batched = isinstance(logits[0], list)
    rows = [list(r) for r in logits] if batched else [list(logits)]  # type: ignore[arg-type]
    check_limit("The number of rows of logits", "max_batch_rows", limits.max_batch_rows, len(rows))
    for row in rows:
        check_logit_row(row, limits, "logits")
    if len({len(row) for row in rows}) > 1:
        raise LessonInputError("Every row of logits must have the same number of classes.")
    tensor = torch.tensor(rows if batched else rows[0], dtype=torch.float32)  # (N, K) or (K,)
    if target is None:
        return tensor, None
    targets = target if isinstance(target, list) else [target]
    if batched != isinstance(target, list) or len(targets) != len(rows):
        raise LessonInputError(
            "target must be one class index for one row of logits, or a list with one index "
            f"per row for a batch; got {target!r} for {len(rows)} row(s)."
        )
    for t in targets:
        check_target(t, len(rows[0]))
    return tensor, torch.tensor(targets if batched else targets[0], dtype=torch.long)


# ---- the lesson page --------------------------------------------------------------------------


def explore(params: SoftmaxParams, limits: SoftmaxLimits) -> dict[str, object]:
    """Everything the lesson page shows for one set of parameters, as plain numbers."""
    logits, target = to_tensors(list(params.logits), params.target, params.temperature, limits)
    assert target is not None
    main = softmax_cross_entropy(logits, target, params.temperature)
    temperatures = torch.logspace(-1, 1, 61)  # T from 0.1 to 10
    shifted = logits + params.shift
    check_limit(
        "|logit + shift|", "max_abs_logit", limits.max_abs_logit, shifted.abs().max().item()
    )
    batch_rows = [list(row) for row, _ in params.batch]
    batch_targets = [t for _, t in params.batch]
    batch_logits, batch_target = to_tensors(batch_rows, batch_targets, 1.0, limits)
    assert batch_target is not None
    batch = batch_cross_entropy(batch_logits, batch_target)
    scales = torch.linspace(0, 10, 41)  # multiply the logits: a more and more confident network
    scale_sweep = [double_softmax_mistake(logits * s, target) for s in scales]
    return {
        "classes": len(params.logits),
        "target": params.target,
        "temperature": params.temperature,
        "logits": logits.tolist(),
        "probabilities": _list(main["probabilities"]),
        "log_probabilities": _list(main["log_probabilities"]),
        "loss": _item(main["loss"]),
        "gradient": _list(main["gradient"]),
        "sweep_temperatures": temperatures.tolist(),
        "sweep_probabilities": temperature_sweep(logits, temperatures).tolist(),
        "mistake": double_softmax_mistake(logits, target),
        "mistake_scales": scales.tolist(),
        "mistake_sweep": scale_sweep,
        "shift": params.shift,
        "overflow": overflow_demo(shifted),
        "batch_logits": batch_logits.tolist(),
        "batch_targets": batch_targets,
        "batch_probabilities": batch["probabilities"].tolist(),
        "batch_losses": batch["per_sample"].tolist(),
        "batch_mean": batch["mean"].item(),
    }


def _list(tensor: torch.Tensor | None) -> list[float] | None:
    return None if tensor is None else tensor.detach().tolist()


def _item(tensor: torch.Tensor | None) -> float | None:
    return None if tensor is None else float(tensor.item())


def snippet(params: SoftmaxParams) -> str:
    """Plain PyTorch that reproduces the page's main numbers; paste it into Python."""
    logits = ", ".join(f"{v:g}" for v in params.logits)
    return (
        "import torch\n"
        "from torch import nn\n\n"
        f"logits = torch.tensor([{logits}])  # raw outputs of a {len(params.logits)}-class net\n"
        f"target = torch.tensor({params.target})  # the true class\n"
        f"temperature = {params.temperature:g}\n\n"
        "z = (logits / temperature).requires_grad_(True)\n"
        "probabilities = torch.softmax(z, dim=-1)\n"
        "loss = nn.CrossEntropyLoss()(z.unsqueeze(0), target.unsqueeze(0))  # raw logits in!\n"
        "loss.backward()\n"
        "gradient = z.grad / temperature  # d loss / d logits\n"
        "print(probabilities, loss.item(), gradient)\n"
    )
