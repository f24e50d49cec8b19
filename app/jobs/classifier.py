"""The image classifier task: a small CNN (conv -> ReLU -> pool -> FC) on real handwritten digits.

The data are the 1,797 8x8 greyscale digits that scikit-learn ships inside its package (the UCI
"optical recognition of handwritten digits" test set), so a run needs no download. A seeded split
keeps 20 % aside; after every epoch the run logs the held-out loss and accuracy, and at the end
it keeps what the Tracking lesson shows: the architecture, the held-out class probabilities (for
precision/recall curves) and a few sample predictions with their pictures.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import lru_cache, partial
from typing import Any, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from app.jobs.tasks import (
    ConfigError,
    Emit,
    OnEpoch,
    Progress,
    ShouldStop,
    Task,
    TrainResult,
    register,
)

N_CLASSES = 10
SIDE = 8  # the digits are 8x8 pictures
HELD_OUT = 0.2  # the share of the digits the model never trains on
N_SAMPLES_SHOWN = 16  # sample predictions kept for the Images panel


def resume_optimizer_field() -> Any:
    """The ``resume_optimizer`` config field, the same in every image task."""
    return Field(
        default=True,
        description="with resume_from: also restore the optimizer's state (momentum buffers); "
        "false starts it afresh",
    )


class DigitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=8, ge=1, le=50)
    learning_rate: float = Field(default=0.05, gt=0, le=1.0)
    batch_size: int = Field(default=32, ge=1, le=512)
    channels: int = Field(default=8, ge=1, le=32, description="filters in the conv layer")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    resume_optimizer: bool = resume_optimizer_field()


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
    on_epoch: OnEpoch | None = None,
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
        if on_epoch is not None:
            on_epoch(epoch, partial(snapshot, model, optimizer, epoch))
    return epoch


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int) -> TrainResult:
    """The training state now: copies of the model's tensors and the optimizer's state."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrainResult(state, copy.deepcopy(optimizer.state_dict()), epoch)


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


class ImageTaskConfig(Protocol):
    """The config fields every image task's run shares."""

    @property
    def seed(self) -> int: ...
    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def resume_optimizer(self) -> bool: ...


BuildFn = Callable[[], tuple[nn.Module, torch.optim.Optimizer]]
# Extra summary entries from the trained model and its optimizer (the transfer task's table).
SummaryFn = Callable[[nn.Module, torch.optim.Optimizer], dict[str, Any]]


def _groups(sizes: list[int]) -> str:
    """``[4, 2]`` as "2 parameter groups (4 and 2 tensors)"."""
    counts = " and ".join(str(n) for n in sizes)
    noun = "group" if len(sizes) == 1 else "groups"
    tensors = "tensor" if sizes == [1] else "tensors"
    return f"{len(sizes)} parameter {noun} ({counts} {tensors})"


def check_optimizer_fits(
    fresh: torch.optim.Optimizer,
    saved: Any,
    *,
    saved_as: str | None = None,
    resumed_as: str | None = None,
) -> None:
    """Raise ``ConfigError`` when ``saved`` (an optimizer's state_dict) cannot load into
    ``fresh``: its param groups differ in number or size, as they do between the transfer
    task's modes. ``saved_as`` and ``resumed_as`` name what each optimizer belongs to."""
    groups = saved.get("param_groups") if isinstance(saved, Mapping) else None
    if not isinstance(groups, list) or not all(isinstance(g, Mapping) for g in groups):
        raise ConfigError(
            "the checkpoint holds no optimizer state to restore: send resume_optimizer=false "
            "to start the optimizer afresh (the model's weights still resume).",
            "resume_optimizer",
        )
    have = [len(group["params"]) for group in groups]
    want = [len(group["params"]) for group in fresh.param_groups]
    if have == want:
        return
    theirs = f" ({saved_as})" if saved_as else ""
    ours = f" ({resumed_as})" if resumed_as else ""
    other = f", or resume in {saved_as}" if saved_as and saved_as != resumed_as else ""
    raise ConfigError(
        f"the checkpoint's optimizer{theirs} has {_groups(have)}, but this run's{ours} has "
        f"{_groups(want)}, so its state (the momentum buffers) cannot be restored. Send "
        "resume_optimizer=false to start the optimizer afresh (the model's weights still "
        f"resume){other}.",
        "resume_optimizer",
    )


def check_model_fits(model: nn.Module, saved: Any, *, built_by: str, field: str) -> None:
    """Raise ``ConfigError`` when ``saved`` (a model's state_dict) cannot load into ``model``:
    a tensor it lacks or one of another shape, as when a digits run is resumed with other
    ``channels``. ``built_by`` names the config that built ``model``; ``field`` is that field."""
    if not isinstance(saved, Mapping):
        raise ConfigError("the checkpoint holds no model state to resume", "resume_from")
    for name, tensor in model.state_dict().items():
        theirs = saved.get(name)
        shape = list(theirs.shape) if isinstance(theirs, torch.Tensor) else None
        if shape != list(tensor.shape):
            held = f"has {name} of shape {shape}" if shape is not None else f"has no {name}"
            raise ConfigError(
                f"the checkpoint's model {held}, but {built_by} builds it as "
                f"{list(tensor.shape)}, so its weights cannot load: resume with the "
                f"checkpoint's {field}, or start a new run.",
                field,
            )


def restore(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    resume: Mapping[str, Any] | None,
    *,
    resume_optimizer: bool,
) -> int:
    """Continue from the checkpoint ``resume`` in a freshly built model and optimizer; returns
    the epoch to start from (0 without one).

    The model's state always loads. With ``resume_optimizer`` a copy of the optimizer's state
    (its momentum buffers) loads too, and then each group's learning rate is set back to what
    the fresh optimizer, built from the new config, gave that group: a resumed run trains at the
    rate it was asked for (finetune's body still at lr x body_lr_factor), not the saved one.
    """
    if resume is None:
        return 0
    model.load_state_dict(resume["model"])
    if resume_optimizer:
        check_optimizer_fits(optimizer, resume.get("optimizer"))
        rates = [group["lr"] for group in optimizer.param_groups]  # the new config's, per group
        # A copy: the optimizer updates its state in place; the caller's checkpoint stays.
        optimizer.load_state_dict(copy.deepcopy(resume["optimizer"]))
        for group, lr in zip(optimizer.param_groups, rates, strict=True):
            group["lr"] = lr
    return int(resume["epoch"])


def train_image_task(
    cfg: ImageTaskConfig,
    build: BuildFn,
    data: tuple[TensorDataset, TensorDataset],
    classes: list[str],
    emit: Emit,
    should_stop: ShouldStop,
    *,
    progress: Progress,
    resume: Mapping[str, Any] | None,
    more_summary: SummaryFn | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    """The image tasks' run: seed, build the model and optimizer, restore the checkpoint (if
    any), ``fit`` on ``data`` = (train, held out), then the summary and a copy of the state."""
    train_set, test_set = data
    torch.manual_seed(cfg.seed)
    model, optimizer = build()
    start_epoch = restore(model, optimizer, resume, resume_optimizer=cfg.resume_optimizer)
    loader = DataLoader(
        train_set, batch_size=cfg.batch_size, shuffle=True, generator=torch.Generator()
    )  # fit() seeds the generator afresh for each epoch
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
        on_epoch=on_epoch,
    )
    summary = held_out_summary(model, test_set, classes)
    if more_summary is not None:
        summary.update(more_summary(model, optimizer))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrainResult(state, optimizer.state_dict(), epoch, summary=summary)


def train_digits(
    config: Any,
    emit: Emit,
    should_stop: ShouldStop,
    *,
    progress: Progress = lambda _p: None,
    resume: dict[str, Any] | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    cfg = config if isinstance(config, DigitsConfig) else DigitsConfig.model_validate(config)

    def build() -> tuple[nn.Module, torch.optim.Optimizer]:
        model = DigitsCNN(cfg.channels)
        return model, torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=0.9)

    return train_image_task(
        cfg,
        build,
        digits_split(cfg.seed),
        [str(c) for c in range(N_CLASSES)],
        emit,
        should_stop,
        progress=progress,
        resume=resume,
        on_epoch=on_epoch,
    )


def check_digits_resume(config: BaseModel, checkpoint: dict[str, Any]) -> None:
    """Refuse, before the run is queued, a resume whose ``channels`` differ from the
    checkpoint's (the conv and linear layers' shapes follow them) or, with
    ``resume_optimizer``, a checkpoint with no optimizer state to restore."""
    cfg = DigitsConfig.model_validate(config.model_dump())
    with torch.random.fork_rng(devices=[]):  # building draws the layers' random weights
        model = DigitsCNN(cfg.channels)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=0.9)
    check_model_fits(
        model, checkpoint.get("model"), built_by=f"channels={cfg.channels}", field="channels"
    )
    if cfg.resume_optimizer:
        check_optimizer_fits(optimizer, checkpoint.get("optimizer"))


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
        check_resume=check_digits_resume,
    )
)
