"""Datasets and DataLoaders: which samples go into which batch, epoch after epoch.

A real ``torch.utils.data.Dataset`` subclass, as the notes describe it (``__init__``,
``__getitem__`` returning ``(sample, target)``, ``__len__``), handed to a real ``DataLoader``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from app.lessons.errors import LessonInputError, check_limit


@dataclass(frozen=True)
class BatchLimits:
    """How much a learner may ask for; the app fills these from its settings."""

    max_dataset_size: int = 10_000
    max_batch_epochs: int = 20
    max_batches_listed: int = 20_000  # batches over all epochs, so the answer stays small
    # num_workers is only written into the code the page shows (the server loads with 0):
    # the bound keeps that code sensible.
    max_num_workers: int = 8


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


# ---- the lesson page: a Dataset over a real table, and the DataLoader's loop ---------------------

HEAD_ROWS = 5  # rows of the table shown above dataset[i]


@dataclass(frozen=True)
class DatasetsParams:
    """What the lesson page lets a learner change."""

    batch_size: int = 4  # the tutorial the notes follow: ceil(178 / 4) = 45 iterations, one short
    shuffle: bool = True  # a new order every epoch; the wine table is sorted by class
    drop_last: bool = False  # DataLoader's default: the short last batch is kept
    num_workers: int = 0  # DataLoader's default: the main process loads every batch
    epochs: int = 2  # two passes over the data, as in the tutorial: enough to see a new order
    seed: int = 0  # seeds the shuffle, so a shared link replays the same batches
    index: int = 0  # the i of dataset[i]
    step: int = 1  # the iteration the step-through shows, counted over all epochs from 1


class WineDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The wine table: 178 wines, 13 measurements each, and which of 3 cultivars it came from."""

    def __init__(self) -> None:
        from sklearn.datasets import load_wine  # the table ships inside scikit-learn

        wine = load_wine()
        self.x = torch.from_numpy(wine.data).float()  # (178, 13) features, float32
        self.y = torch.from_numpy(wine.target).long()  # (178,) class 0, 1 or 2, int64
        self.feature_names: list[str] = list(wine.feature_names)
        self.class_names: list[str] = [str(name) for name in wine.target_names]
        self.n_samples = self.x.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]  # (sample, target): (13,) and ()

    def __len__(self) -> int:
        return self.n_samples


@lru_cache(maxsize=1)
def wine_dataset() -> WineDataset:
    """One WineDataset per process: the table never changes, so it is read once."""
    return WineDataset()


def make_loader(
    dataset: Dataset[Any],
    batch_size: int,
    shuffle: bool,
    drop_last: bool,
    seed: int,
    num_workers: int = 0,
) -> DataLoader[Any]:
    """The DataLoader of the page; the seeded generator fixes the order, whatever num_workers."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,  # processes that call dataset[i]; the order is drawn here
        generator=torch.Generator().manual_seed(seed),
    )


def wine_batches(
    batch_size: int,
    shuffle: bool,
    drop_last: bool,
    epochs: int,
    seed: int,
    num_workers: int = 0,
) -> tuple[list[list[list[int]]], list[list[list[int]]]]:
    """Run the training loop's two for-loops; note each batch's table rows and class counts."""
    dataset = wine_dataset()
    loader = make_loader(dataset, batch_size, shuffle, drop_last, seed, num_workers)
    row_of = {tuple(row): i for i, row in enumerate(dataset.x.tolist())}  # the rows are distinct
    rows: list[list[list[int]]] = [[[] for _ in range(len(loader))] for _ in range(epochs)]
    classes: list[list[list[int]]] = [[[] for _ in range(len(loader))] for _ in range(epochs)]
    for epoch in range(epochs):
        for i, (inputs, labels) in enumerate(loader):
            # inputs: (batch_size, 13), labels: (batch_size,); a training step would go here
            rows[epoch][i] = [row_of[tuple(row)] for row in inputs.tolist()]
            classes[epoch][i] = torch.bincount(labels, minlength=3).tolist()
    return rows, classes


# Seeded, so equal arguments give equal batches: stepping back and forth reuses the answer.
_wine_batches = lru_cache(maxsize=128)(wine_batches)


def check_loader(params: DatasetsParams, size: int, limits: BatchLimits) -> None:
    """The page's controls, each named when it is out of range; the dataset is the table."""
    for name, value in (("batch_size", params.batch_size), ("epochs", params.epochs)):
        if value < 1:
            raise LessonInputError(f"{name} must be at least 1; got {value}.")
    check_batches(size, params.batch_size, params.epochs, params.seed, params.drop_last, limits)
    if params.num_workers < 0:
        raise LessonInputError(f"num_workers must be 0 or more; got {params.num_workers}.")
    check_limit("num_workers", "max_num_workers", limits.max_num_workers, params.num_workers)
    if not 0 <= params.index < size:
        raise LessonInputError(
            f"index must be 0 to {size - 1} (len(dataset) - 1); got {params.index}."
        )


def iteration_formula(size: int, batch_size: int, drop_last: bool) -> str:
    """ceil(n / batch_size) with the numbers in, as the page prints it."""
    per_epoch = batches_per_epoch(size, batch_size, drop_last)
    if drop_last:
        return f"⌊{size} / {batch_size}⌋ = ⌊{size / batch_size:.4g}⌋ = {per_epoch}"
    return f"⌈{size} / {batch_size}⌉ = ⌈{size / batch_size:.4g}⌉ = {per_epoch}"


def step_view(epochs: list[list[list[int]]], step: int, size: int) -> dict[str, Any]:
    """Iteration ``step`` (from 1, over all epochs): the loop's epoch and i, and each row's state.

    A row is "batch" (in this batch), "seen" (in an earlier batch of this epoch), "later" or
    "dropped" (in no batch this epoch: the short last batch that drop_last threw away).
    """
    per_epoch = len(epochs[0])
    epoch, i = divmod(step - 1, per_epoch)
    batches = epochs[epoch]
    state = ["dropped"] * size
    for k, indices in enumerate(batches):
        for index in indices:
            state[index] = "seen" if k < i else "batch" if k == i else "later"
    return {"epoch": epoch, "i": i, "rows": batches[i], "state": state}


def _short(value: float) -> float:
    """A float32 as people write it: 14.229999542236328 -> 14.23."""
    return float(f"{value:.6g}")


def explore(params: DatasetsParams, limits: BatchLimits) -> dict[str, Any]:
    """Everything the lesson page shows for one set of parameters, as plain numbers."""
    dataset = wine_dataset()
    size = len(dataset)
    check_loader(params, size, limits)
    sample, target = dataset[params.index]
    per_epoch = batches_per_epoch(size, params.batch_size, params.drop_last)
    drawn, classes = _wine_batches(
        params.batch_size, params.shuffle, params.drop_last, params.epochs, params.seed
    )
    total = per_epoch * params.epochs
    step = min(max(params.step, 1), total)
    return {
        "size": size,
        "feature_names": dataset.feature_names,
        "class_names": dataset.class_names,
        "class_counts": torch.bincount(dataset.y).tolist(),
        "table": [[_short(v) for v in row] for row in dataset.x.tolist()],  # (178, 13)
        "targets": dataset.y.tolist(),  # (178,)
        "head_rows": HEAD_ROWS,
        "item": {
            "index": params.index,
            "sample": [_short(v) for v in sample.tolist()],
            "sample_shape": list(sample.shape),
            "sample_dtype": str(sample.dtype),
            "target": int(target.item()),
            "target_shape": list(target.shape),
            "target_dtype": str(target.dtype),
        },
        "loader": {
            "batch_size": params.batch_size,
            "shuffle": params.shuffle,
            "drop_last": params.drop_last,
            "num_workers": params.num_workers,
            "seed": params.seed,
            "epochs": params.epochs,
        },
        "batches_per_epoch": per_epoch,
        "formula": iteration_formula(size, params.batch_size, params.drop_last),
        "total_iterations": total,
        "dropped": size - per_epoch * params.batch_size if params.drop_last else 0,
        "last_batch": len(drawn[0][-1]),
        "epochs": drawn,  # per epoch, per batch, the table rows it held
        "batch_classes": classes,  # per epoch, per batch, how many of class 0, 1 and 2
        "step": step,
        "at": step_view(drawn, step, size),
    }


def snippet(params: DatasetsParams) -> str:
    """Plain PyTorch that reproduces the page's batches; paste it into Python."""
    loader = (
        f"loader = DataLoader(dataset, batch_size={params.batch_size}, "
        f"shuffle={params.shuffle}, drop_last={params.drop_last},\n"
        f"                    num_workers={params.num_workers}, "
        f"generator=torch.Generator().manual_seed({params.seed}))\n"
    )
    loop = (
        f"num_epochs = {params.epochs}\n"
        "n_iterations = len(loader)  # math.ceil(len(dataset) / batch_size), floor with drop_last\n"
        "row_of = {tuple(row): i for i, row in enumerate(dataset.x.tolist())}\n"
        "for epoch in range(num_epochs):\n"
        "    for i, (inputs, labels) in enumerate(loader):\n"
        "        # inputs: (batch_size, 13), labels: (batch_size,); forward, backward, step here\n"
        "        rows = [row_of[tuple(row)] for row in inputs.tolist()]\n"
        '        print(f"epoch {epoch + 1}/{num_epochs}, step {i + 1}/{n_iterations}, "\n'
        '              f"inputs {tuple(inputs.shape)}, labels {tuple(labels.shape)}, "\n'
        '              f"rows {rows}")\n'
    )
    head = (
        "import torch\n"
        "from sklearn.datasets import load_wine\n"
        "from torch.utils.data import DataLoader, Dataset\n\n\n"
        "class WineDataset(Dataset):\n"
        "    def __init__(self):\n"
        "        wine = load_wine()  # 178 wines, 13 features, 3 classes; no download\n"
        "        self.x = torch.from_numpy(wine.data).float()  # (178, 13)\n"
        "        self.y = torch.from_numpy(wine.target).long()  # (178,)\n"
        "        self.n_samples = self.x.shape[0]\n\n"
        "    def __getitem__(self, index):\n"
        "        return self.x[index], self.y[index]  # (sample, target)\n\n"
        "    def __len__(self):\n"
        "        return self.n_samples\n\n\n"
        "dataset = WineDataset()\n"
        f"sample, target = dataset[{params.index}]\n"
        "print(len(dataset), sample.shape, sample.dtype, target, target.dtype)\n"
    )
    if params.num_workers == 0:
        return head + loader + loop
    # Worker processes may start by importing this file again (macOS and Windows do): the
    # loop must not run at import time there, so it goes under the __main__ guard.
    guarded = "\n".join("    " + line if line else line for line in (loader + loop).splitlines())
    return head + '\n\nif __name__ == "__main__":\n' + guarded + "\n"
