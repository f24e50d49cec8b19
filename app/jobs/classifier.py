"""The image classifier task: a small CNN (conv -> ReLU -> pool -> FC) on real handwritten digits.

The data are the 1,797 8x8 greyscale digits that scikit-learn ships inside its package (the UCI
"optical recognition of handwritten digits" test set), so a run needs no download. A seeded split
keeps 20 % aside; after every epoch the run logs the held-out loss and accuracy, and at the end
it keeps what the Tracking lesson shows: the architecture, the held-out class probabilities (for
precision/recall curves) and a few sample predictions with their pictures.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from app.jobs.tasks import Emit, Progress, ShouldStop, Task, TrainResult, register

N_CLASSES = 10
SIDE = 8  # the digits are 8x8 pictures
HELD_OUT = 0.2  # the share of the digits the model never trains on
N_SAMPLES_SHOWN = 16  # sample predictions kept for the Images panel


class DigitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=8, ge=1, le=50)
    learning_rate: float = Field(default=0.05, gt=0, le=1.0)
    batch_size: int = Field(default=32, ge=1, le=512)
    channels: int = Field(default=8, ge=1, le=32, description="filters in the conv layer")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    resume_optimizer: bool = Field(
        default=True,
        description="with resume_from: also restore the optimizer's state (momentum buffers); "
        "false starts it afresh",
    )


class DigitsCNN(nn.Module):
    """conv -> ReLU -> pool -> FC, as the notes' CNN section builds it."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding=1)  # (N, 1, 8, 8) -> (N, C, 8, 8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)  # -> (N, C, 4, 4)
        self.flatten = nn.Flatten()  # -> (N, C * 16)
        self.fc = nn.Linear(channels * (SIDE // 2) ** 2, N_CLASSES)  # -> (N, 10) logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


@lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits  # reads the CSV inside the package

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N,1,8,8)
    labels = torch.tensor(digits.target, dtype=torch.long)
    return images, labels


def digits_split(seed: int) -> tuple[TensorDataset, TensorDataset]:
    """A seeded 80/20 split of the digits into (train, held out)."""
    images, labels = _digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(labels) * HELD_OUT)
    test, train = order[:n_test], order[n_test:]
    return TensorDataset(images[train], labels[train]), TensorDataset(images[test], labels[test])


def architecture(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """Each leaf layer with its output shape and parameter count, from a real forward pass."""
    rows: list[dict[str, Any]] = []
    hooks = []
    for name, module in model.named_modules():
        if name and not list(module.children()):

            def hook(mod: nn.Module, _inp: Any, out: torch.Tensor, name: str = name) -> None:
                rows.append(
                    {
                        "name": name,
                        "layer": repr(mod),
                        "output_shape": list(out.shape),
                        "parameters": sum(p.numel() for p in mod.parameters()),
                    }
                )

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for handle in hooks:
            handle.remove()
    return rows


def evaluate(model: nn.Module, data: TensorDataset) -> tuple[float, float, torch.Tensor]:
    """Mean cross-entropy, accuracy and the class probabilities on ``data``."""
    images, labels = data.tensors
    with torch.no_grad():
        logits = model(images)
        loss = nn.functional.cross_entropy(logits, labels).item()
        probs = logits.softmax(dim=1)
    accuracy = (probs.argmax(dim=1) == labels).float().mean().item()
    return loss, accuracy, probs


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader[Any],
    test_set: TensorDataset,
    *,
    seed: int,
    start_epoch: int,
    epochs: int,
    emit: Emit,
    should_stop: ShouldStop,
    progress: Progress,
) -> int:
    """The image classifiers' training loop: ``epochs`` more epochs after ``start_epoch``, the
    loss after every batch and the held-out loss and accuracy after every epoch. Returns the
    last epoch completed (a stop ends it early).

    Each epoch's shuffle is seeded by the seed and the epoch alone (through the loader's own
    generator), and steps count on from the start epoch: a run resumed from a checkpoint sees
    the batches, and logs the steps, an unbroken run would have.
    """
    shuffle = loader.generator
    if shuffle is None:
        raise ValueError("fit() needs a DataLoader built with its own generator")
    step = start_epoch * len(loader)
    epoch = start_epoch
    for i in range(epochs):
        shuffle.manual_seed(seed * 1000 + start_epoch + i)
        model.train()
        correct = seen = 0
        for images, labels in loader:
            if should_stop():
                return epoch
            logits = model(images)
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            correct += int((logits.argmax(dim=1) == labels).sum())
            seen += len(labels)
            emit(step, "loss", loss.item())
        epoch = start_epoch + i + 1
        model.eval()
        val_loss, val_accuracy, _ = evaluate(model, test_set)
        emit(step, "accuracy", correct / max(seen, 1))
        emit(step, "val_loss", val_loss)
        emit(step, "val_accuracy", val_accuracy)
        emit(step, "epoch", epoch)
        progress((i + 1) / epochs)
    return epoch


def held_out_summary(
    model: nn.Module, test_set: TensorDataset, classes: list[str]
) -> dict[str, Any]:
    """What the Tracking views show of a trained classifier: its architecture, every held-out
    class probability (for precision/recall) and a few sample predictions with their pictures."""
    model.eval()
    _, val_accuracy, probs = evaluate(model, test_set)
    test_images, test_labels = test_set.tensors
    shown = range(min(N_SAMPLES_SHOWN, len(test_labels)))
    return {
        "architecture": architecture(model, (1, 1, SIDE, SIDE)),
        "input_shape": [1, 1, SIDE, SIDE],
        "classes": classes,
        "eval": {
            "labels": test_labels.tolist(),
            "probabilities": probs.round(decimals=5).tolist(),
            "accuracy": val_accuracy,
        },
        "samples": [
            {
                "image": test_images[i, 0].round(decimals=4).tolist(),
                "label": int(test_labels[i]),
                "predicted": int(probs[i].argmax()),
                "confidence": float(probs[i].max()),
            }
            for i in shown
        ],
    }


def train_digits(
    config: Any,
    emit: Emit,
    should_stop: ShouldStop,
    *,
    progress: Progress = lambda _p: None,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    cfg = config if isinstance(config, DigitsConfig) else DigitsConfig.model_validate(config)
    torch.manual_seed(cfg.seed)
    train_set, test_set = digits_split(cfg.seed)
    loader = DataLoader(
        train_set, batch_size=cfg.batch_size, shuffle=True, generator=torch.Generator()
    )  # fit() seeds the generator afresh for each epoch
    model = DigitsCNN(cfg.channels)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=0.9)
    start_epoch = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        if cfg.resume_optimizer:
            # A copy: the optimizer updates its state in place; the caller's checkpoint stays.
            optimizer.load_state_dict(copy.deepcopy(resume["optimizer"]))
            for group in optimizer.param_groups:
                group["lr"] = cfg.learning_rate
        start_epoch = int(resume["epoch"])

    epoch = fit(
        model,
        optimizer,
        loader,
        test_set,
        seed=cfg.seed,
        start_epoch=start_epoch,
        epochs=cfg.epochs,
        emit=emit,
        should_stop=should_stop,
        progress=progress,
    )
    summary = held_out_summary(model, test_set, [str(c) for c in range(N_CLASSES)])
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrainResult(state, optimizer.state_dict(), epoch, summary=summary)


def digits_model(cfg: Any) -> nn.Module:
    return DigitsCNN(cfg.channels)


def score(model: nn.Module, data: TensorDataset) -> dict[str, Any]:
    """Held-out loss and accuracy, and each example's predicted class, with ``model.eval()``."""
    model.eval()
    loss, accuracy, probs = evaluate(model, data)
    return {
        "loss": loss,
        "accuracy": accuracy,
        "n": len(data),
        "predicted": probs.argmax(dim=1).tolist(),
        "labels": data.tensors[1].tolist(),
    }


def evaluate_digits(model: nn.Module, cfg: Any) -> dict[str, Any]:
    return score(model, digits_split(cfg.seed)[1])


DIGITS = register(
    Task(
        name="digits-cnn",
        description=(
            "Classify scikit-learn's 8x8 handwritten digits with a small CNN "
            "(conv -> ReLU -> max pool -> linear)."
        ),
        config_model=DigitsConfig,
        train=train_digits,
        build_model=digits_model,
        evaluate=evaluate_digits,
    )
)
