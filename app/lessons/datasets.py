"""Datasets and DataLoaders: which samples go into which batch, epoch after epoch.

A real ``torch.utils.data.Dataset`` subclass, as the notes describe it (``__init__``,
``__getitem__`` returning ``(sample, target)``, ``__len__``), handed to a real ``DataLoader``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from app.lessons.errors import LessonInputError, check_limit


@dataclass(frozen=True)
class BatchLimits:
    """How much a learner may ask for; the app fills these from its settings."""

    max_dataset_size: int = 10_000
    max_batch_epochs: int = 20
    max_batches_listed: int = 20_000  # batches over all epochs, so the answer stays small


class IndexedDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """``size`` samples; sample i is the tensor [i] and its target is i % 2."""

    def __init__(self, size: int) -> None:
        self.samples = torch.arange(size).unsqueeze(1)  # (size, 1): one feature, the index
        self.targets = torch.arange(size) % 2  # (size,)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.samples[index], self.targets[index]  # (sample, target), as the notes say

    def __len__(self) -> int:
        return len(self.samples)


def draw_batches(
    size: int, batch_size: int, shuffle: bool, drop_last: bool, epochs: int, seed: int
) -> list[list[list[int]]]:
    """The sample indices a DataLoader yields, batch by batch, for each epoch."""
    loader = DataLoader(
        IndexedDataset(size),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=torch.Generator().manual_seed(seed),  # the same seed replays the same order
    )
    return [
        [samples[:, 0].tolist() for samples, _targets in loader]  # samples: (batch, 1)
        for _epoch in range(epochs)
    ]


def batches_per_epoch(size: int, batch_size: int, drop_last: bool) -> int:
    """ceil(n / batch_size) iterations, or floor(...) when the last short batch is dropped."""
    return size // batch_size if drop_last else math.ceil(size / batch_size)


def check_batches(
    size: int, batch_size: int, epochs: int, seed: int, drop_last: bool, limits: BatchLimits
) -> None:
    """Sizes the server can list quickly, each named when it is out of range."""
    if size < 1 or batch_size < 1 or epochs < 1:
        raise LessonInputError(
            f"size, batch_size and epochs must be at least 1; got {size}, {batch_size}, {epochs}."
        )
    check_limit("size", "max_dataset_size", limits.max_dataset_size, size)
    check_limit("epochs", "max_batch_epochs", limits.max_batch_epochs, epochs)
    if batch_size > size:
        raise LessonInputError(f"batch_size ({batch_size}) is larger than the dataset ({size}).")
    total = batches_per_epoch(size, batch_size, drop_last) * epochs
    check_limit("batches over all epochs", "max_batches_listed", limits.max_batches_listed, total)
    if not 0 <= seed < 2**63:
        raise LessonInputError(f"seed must be between 0 and 2**63 - 1; got {seed}.")
