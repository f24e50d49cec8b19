"""The transfer task: reuse a feature extractor trained on digits 0-4 to learn digits 5-9 from a
few labelled examples.

The source model is trained here, by ``pretrain_source``, deterministically (fixed seed, one
torch thread, the same data every time) in well under a second, so nothing binary ships with the
project: the first use in a process trains it and the process keeps it (the runner's fork server
does this once, so every run starts with it). ``python -m app.jobs.transfer out.pth`` saves it.

The target task trains one of three ways (``mode``):

* ``feature-extract``: the pretrained conv layers are frozen (``requires_grad_(False)``) and only
  a new fully connected head trains, as the notes describe;
* ``finetune``: every layer trains, the pretrained body with a lower learning rate;
* ``scratch``: the same architecture from random weights, every layer at the full rate.

Every mode starts its head from the same seeded weights, sees the same examples in the same
order, and is scored after every epoch on the same held-out digits 5-9.
"""

from __future__ import annotations

import sys
import threading
from functools import lru_cache
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from app.jobs.classifier import (
    check_optimizer_fits,
    digits_split,
    evaluate,
    resume_optimizer_field,
    score,
    train_image_task,
)
from app.jobs.tasks import Emit, OnEpoch, Progress, ShouldStop, Task, TrainResult, register

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
SPLIT_SEED = 0  # one split of the digits for the source model and every target run
SOURCE_SEED = 0
SOURCE_EPOCHS = 12
SOURCE_LR = 0.05
SOURCE_BATCH = 32
FEATURES = 16 * 2 * 2  # the body's output: 16 channels of 2x2

Mode = Literal["feature-extract", "finetune", "scratch"]
MODES: tuple[str, ...] = ("feature-extract", "finetune", "scratch")


class DigitsNet(nn.Module):
    """Two conv blocks (the feature extractor, ``features``) and a linear head (``classifier``).

    (N, 1, 8, 8) -> conv 8 -> ReLU -> pool -> (N, 8, 4, 4) -> conv 16 -> ReLU -> pool
    -> (N, 16, 2, 2) -> flatten (N, 64) -> linear -> (N, classes)
    """

    def __init__(self, n_classes: int = len(TARGET_CLASSES)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(FEATURES, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def class_subset(data: TensorDataset, classes: tuple[int, ...]) -> TensorDataset:
    """The images of ``classes`` only, relabelled 0..len(classes)-1."""
    images, labels = data.tensors
    keep = torch.isin(labels, torch.tensor(classes))
    relabel = torch.full((10,), -1, dtype=torch.long)
    relabel[list(classes)] = torch.arange(len(classes))
    return TensorDataset(images[keep], relabel[labels[keep]])


def few_per_class(data: TensorDataset, per_class: int, seed: int) -> TensorDataset:
    """``per_class`` seeded picks of each class (all of a class when it has fewer)."""
    images, labels = data.tensors
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for cls in labels.unique().tolist():
        where = (labels == cls).nonzero().flatten()
        picks.append(where[torch.randperm(len(where), generator=gen)[:per_class]])
    chosen = torch.cat(picks).sort().values
    return TensorDataset(images[chosen], labels[chosen])


def source_data() -> tuple[TensorDataset, TensorDataset]:
    """Digits 0-4: (train, held out)."""
    train, test = digits_split(SPLIT_SEED)
    return class_subset(train, SOURCE_CLASSES), class_subset(test, SOURCE_CLASSES)


def target_data(per_class: int, seed: int) -> tuple[TensorDataset, TensorDataset]:
    """Digits 5-9 relabelled 0-4: ``per_class`` labelled examples each, and every held-out one."""
    train, test = digits_split(SPLIT_SEED)
    pool = class_subset(train, TARGET_CLASSES)
    return few_per_class(pool, per_class, seed), class_subset(test, TARGET_CLASSES)


def pretrain_source() -> tuple[dict[str, torch.Tensor], float]:
    """Train ``DigitsNet`` on digits 0-4; returns its state_dict and held-out accuracy.

    Deterministic: a fixed seed, the same data and one thread give the same weights every time.
    """
    train, test = source_data()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SOURCE_SEED)
            model = DigitsNet(len(SOURCE_CLASSES))
            optimizer = torch.optim.SGD(model.parameters(), lr=SOURCE_LR, momentum=0.9)
            gen = torch.Generator()
            loader = DataLoader(train, batch_size=SOURCE_BATCH, shuffle=True, generator=gen)
            for epoch in range(SOURCE_EPOCHS):
                gen.manual_seed(SOURCE_SEED * 1000 + epoch)
                for images, labels in loader:
                    loss = nn.functional.cross_entropy(model(images), labels)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    _, accuracy, _ = evaluate(model, test)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, accuracy


_PRETRAINING = threading.Lock()


def pretrained() -> tuple[dict[str, torch.Tensor], float]:
    """The source model, trained once per process (threads asking at once wait for it)."""
    with _PRETRAINING:
        return _pretrained()


@lru_cache(maxsize=1)
def _pretrained() -> tuple[dict[str, torch.Tensor], float]:
    return pretrain_source()


class TransferConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field(
        default="feature-extract",
        description="feature-extract: frozen conv layers, new head; finetune: every layer "
        "trains, the body slower; scratch: random init",
    )
    examples_per_class: int = Field(
        default=10, ge=1, le=100, description="labelled target examples of each digit 5-9"
    )
    epochs: int = Field(default=15, ge=1, le=100)
    learning_rate: float = Field(default=0.05, gt=0, le=1.0)
    body_lr_factor: float = Field(
        default=0.1, gt=0, le=1.0, description="finetune: the body's rate is this times the head's"
    )
    batch_size: int = Field(default=10, ge=1, le=512)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    resume_optimizer: bool = resume_optimizer_field()


def build_model(cfg: TransferConfig) -> tuple[DigitsNet, torch.optim.Optimizer]:
    """The model and optimizer for ``cfg.mode``: what is frozen and what each group's rate is.

    Call after seeding torch: the head (and, for scratch, the body) start from seeded weights.
    """
    model = DigitsNet(len(TARGET_CLASSES))
    if cfg.mode == "scratch":
        return model, torch.optim.SGD(model.parameters(), lr=cfg.learning_rate, momentum=0.9)

    source, _ = pretrained()
    body = {k.removeprefix("features."): v for k, v in source.items() if k.startswith("features.")}
    model.features.load_state_dict(body)  # the pretrained conv layers; the head stays new
    if cfg.mode == "feature-extract":
        model.features.requires_grad_(False)  # frozen: no gradients, no updates
        optimizer = torch.optim.SGD(
            model.classifier.parameters(), lr=cfg.learning_rate, momentum=0.9
        )
    else:  # finetune: every layer trains, the pretrained body more gently
        optimizer = torch.optim.SGD(
            [
                {
                    "params": model.features.parameters(),
                    "lr": cfg.learning_rate * cfg.body_lr_factor,
                },
                {"params": model.classifier.parameters(), "lr": cfg.learning_rate},
            ],
            momentum=0.9,
        )
    return model, optimizer


def parameter_table(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Each parameter with its shape, size, whether it trains and its optimizer group."""
    group_of = {
        id(p): index for index, group in enumerate(optimizer.param_groups) for p in group["params"]
    }
    names = {id(p): name for name, p in model.named_parameters()}
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "shape": list(p.shape),
            "numel": p.numel(),
            "requires_grad": p.requires_grad,
            "group": group_of.get(id(p)),
        }
        for name, p in model.named_parameters()
    ]
    groups = [
        {
            "lr": group["lr"],
            "momentum": group.get("momentum"),
            "params": [names[id(p)] for p in group["params"]],
            "numel": sum(p.numel() for p in group["params"]),
        }
        for group in optimizer.param_groups
    ]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"rows": rows, "groups": groups, "trainable": trainable, "frozen": total - trainable}


def train_transfer(
    config: Any,
    emit: Emit,
    should_stop: ShouldStop,
    *,
    progress: Progress = lambda _p: None,
    resume: dict[str, Any] | None = None,
    on_epoch: OnEpoch | None = None,
) -> TrainResult:
    cfg = config if isinstance(config, TransferConfig) else TransferConfig.model_validate(config)
    train_set, test_set = target_data(cfg.examples_per_class, cfg.seed)

    def transfer_summary(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        _, source_accuracy = pretrained()
        return {
            "parameters": parameter_table(model, optimizer),
            "transfer": {
                "mode": cfg.mode,
                "source_classes": list(SOURCE_CLASSES),
                "target_classes": list(TARGET_CLASSES),
                "source_accuracy": source_accuracy,
                "train_examples": len(train_set),
                "held_out": len(test_set),
            },
        }

    return train_image_task(
        cfg,
        lambda: build_model(cfg),
        (train_set, test_set),
        [str(c) for c in TARGET_CLASSES],
        emit,
        should_stop,
        progress=progress,
        resume=resume,
        more_summary=transfer_summary,
        on_epoch=on_epoch,
    )


def check_resume(config: BaseModel, checkpoint: dict[str, Any]) -> None:
    """Refuse, before the run is queued, to restore an optimizer saved in another mode: the
    modes' optimizers hold different parameter groups (feature-extract one over the head,
    finetune two, scratch one over every layer), so its state cannot load into this one."""
    cfg = TransferConfig.model_validate(config.model_dump())
    if not cfg.resume_optimizer:
        return  # a fresh optimizer: only the model's state loads, and every mode's model fits
    with torch.random.fork_rng(devices=[]):  # building draws the head's random weights
        _, fresh = build_model(cfg)
    saved_config = checkpoint.get("config")
    saved_mode = saved_config.get("mode") if isinstance(saved_config, dict) else None
    check_optimizer_fits(
        fresh,
        checkpoint.get("optimizer"),
        saved_as=f"{saved_mode} mode" if isinstance(saved_mode, str) else None,
        resumed_as=f"{cfg.mode} mode",
    )


def transfer_model(_cfg: Any) -> nn.Module:
    return DigitsNet(len(TARGET_CLASSES))


def evaluate_transfer(model: nn.Module, cfg: Any) -> dict[str, Any]:
    """Scored on every held-out digit 5-9 (labels 0-4 stand for 5-9)."""
    return score(model, target_data(cfg.examples_per_class, cfg.seed)[1])


TRANSFER = register(
    Task(
        name="transfer",
        description=(
            "Adapt a CNN pretrained on digits 0-4 to digits 5-9 from a few examples: frozen "
            "features, fine-tuning, or from scratch."
        ),
        config_model=TransferConfig,
        train=train_transfer,
        build_model=transfer_model,
        evaluate=evaluate_transfer,
        check_resume=check_resume,
    )
)


def main(argv: list[str]) -> int:
    """``python -m app.jobs.transfer OUT.pth``: save the source model's state_dict."""
    if len(argv) != 1:
        print("usage: python -m app.jobs.transfer OUT.pth", file=sys.stderr)
        return 2
    state, accuracy = pretrain_source()
    torch.save(state, argv[0])
    print(f"saved {argv[0]}: digits 0-4, held-out accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
