"""The Datasets and DataLoaders figures: valid Plotly and strict JSON, and each cell and bar is
what the DataLoader drew, replayed here with torch.randperm on the same seeded generator and
counted with NumPy from scikit-learn's wine labels."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from sklearn.datasets import load_wine

from app.lessons.datasets import BatchLimits, DatasetsParams, explore
from app.viz import datasets as figures

WINE = load_wine()
N = len(WINE.target)  # 178, sorted by class


def replayed_batches(
    batch_size: int, shuffle: bool, drop_last: bool, epochs: int, seed: int
) -> list[list[list[int]]]:
    """The rows of each batch of each epoch, without a DataLoader: how torch 2.13's loader
    spends its generator (one int64 for the workers' base seed, then randperm(n) for the order
    and one more randperm(n) the sampler slices to nothing)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(epochs):
        if shuffle:
            torch.empty((), dtype=torch.int64).random_(generator=gen)
            order = torch.randperm(N, generator=gen).tolist()
            torch.randperm(N, generator=gen)
        else:
            order = list(range(N))
        kept = (N // batch_size) * batch_size if drop_last else N
        out.append([order[i : i + batch_size] for i in range(0, kept, batch_size)])
    return out


def valid(every: dict[str, dict[str, Any]]) -> None:
    for name, spec in every.items():
        json.dumps(spec, allow_nan=False)
        go.Figure(spec)  # raises on any property plotly.js would not understand
        assert spec["data"], name


CASES = [
    DatasetsParams(),  # the page's defaults: batches of 4, shuffled, 2 epochs
    DatasetsParams(batch_size=16, drop_last=True, epochs=3, seed=5, step=13),
    DatasetsParams(batch_size=50, shuffle=False, epochs=1, step=4),
]


@pytest.mark.parametrize("params", CASES, ids=["defaults", "drop-last", "in-order"])
def test_the_figures_draw_the_batches_the_loader_drew(params: DatasetsParams) -> None:
    result = explore(params, BatchLimits())
    every = figures.figures(result)
    valid(every)
    batches = replayed_batches(
        params.batch_size, params.shuffle, params.drop_last, params.epochs, params.seed
    )
    per_epoch = len(batches[0])
    assert per_epoch == (
        N // params.batch_size if params.drop_last else math.ceil(N / params.batch_size)
    )

    # The assignment heatmap: z[epoch][row] is the i of the batch that held the row, or a gap.
    heat, mark = every["assignment"]["data"]
    expected = np.full((params.epochs, N), np.nan)
    for e, epoch in enumerate(batches):
        for i, rows in enumerate(epoch):
            expected[e, rows] = i
    z = np.array(heat["z"], dtype=float)  # None -> nan
    np.testing.assert_array_equal(z, expected)
    assert heat["x"] == list(range(N)) and heat["y"] == list(range(params.epochs))
    assert (heat["zmin"], heat["zmax"]) == (0, max(per_epoch - 1, 1))
    dropped = N - per_epoch * params.batch_size if params.drop_last else 0
    assert [int(np.isnan(row).sum()) for row in z] == [dropped] * params.epochs

    # The marker sits on the step-through's batch: step s is epoch (s-1) // per_epoch.
    step = min(max(params.step, 1), params.epochs * per_epoch)
    at_epoch, at_i = divmod(step - 1, per_epoch)
    current = batches[at_epoch][at_i]
    assert mark["x"] == current and mark["y"] == [at_epoch] * len(current)

    # The iterations figure: one stacked bar per step, each class's count in that batch.
    *bars, marker = every["iterations"]["data"]
    flat = [rows for epoch_batches in batches for rows in epoch_batches]
    counts = np.array([np.bincount(WINE.target[rows], minlength=3) for rows in flat])
    assert [b["name"] for b in bars] == [str(n) for n in WINE.target_names]
    for k, trace in enumerate(bars):
        assert trace["x"] == list(range(1, len(flat) + 1))
        np.testing.assert_array_equal(trace["y"], counts[:, k])
    heights = np.sum([b["y"] for b in bars], axis=0)
    np.testing.assert_array_equal(heights, [len(rows) for rows in flat])
    assert marker["x"] == [step] and marker["y"] == [len(current)]
    assert every["iterations"]["layout"]["barmode"] == "stack"


def test_the_class_borders_and_labels_sit_between_the_sorted_classes() -> None:
    result = explore(DatasetsParams(), BatchLimits())
    spec = figures.assignment_figure(result)
    counts = np.bincount(WINE.target)  # 59, 71, 48
    ends = np.cumsum(counts)
    borders = [shape["x0"] for shape in spec["layout"]["shapes"]]
    assert borders == (ends[:-1] - 0.5).tolist()
    # Every row left of a border is of a lower class than every row right of it.
    for border in borders:
        cut = int(border + 0.5)
        assert WINE.target[:cut].max() < WINE.target[cut:].min()
    starts = np.concatenate([[-0.5], ends[:-1] - 0.5])
    labels = spec["layout"]["annotations"]
    assert [a["text"] for a in labels] == [str(n) for n in WINE.target_names]
    assert [a["x"] for a in labels] == pytest.approx(((starts + ends - 0.5) / 2).tolist())


def test_the_epoch_separators_fall_between_the_last_and_first_iterations() -> None:
    params = DatasetsParams(batch_size=32, epochs=4)
    result = explore(params, BatchLimits())
    spec = figures.iterations_figure(result)
    per_epoch = math.ceil(N / 32)
    assert [s["x0"] for s in spec["layout"]["shapes"]] == [e * per_epoch + 0.5 for e in (1, 2, 3)]
    assert spec["layout"]["title"]["text"].startswith(f"{4 * per_epoch} iterations")
