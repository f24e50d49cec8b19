"""The wine Dataset and the DataLoader's batches, checked against NumPy, scikit-learn and torch."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

from app.lessons import datasets
from app.lessons.datasets import (
    BatchLimits,
    DatasetsParams,
    WineDataset,
    draw_batches,
    explore,
    make_loader,
    snippet,
    step_view,
    wine_batches,
    wine_dataset,
)
from app.lessons.errors import LessonInputError, LimitExceeded
from app.viz import datasets as figures

WINE = load_wine()
N = 178


def test_the_dataset_is_the_wine_table_as_float32_with_int64_targets() -> None:
    dataset = WineDataset()
    assert len(dataset) == N == WINE.data.shape[0]
    for i in (0, 58, 59, 130, 177):
        sample, target = dataset[i]
        assert sample.shape == (13,) and sample.dtype == torch.float32
        assert target.shape == () and target.dtype == torch.int64
        np.testing.assert_array_equal(sample.numpy(), WINE.data[i].astype(np.float32))
        assert target.item() == WINE.target[i]
    assert dataset.feature_names == list(WINE.feature_names)


def test_the_table_is_sorted_by_class_59_71_48() -> None:
    result = explore(DatasetsParams(), BatchLimits())
    assert result["class_counts"] == np.bincount(WINE.target).tolist() == [59, 71, 48]
    assert result["targets"] == sorted(result["targets"])


@pytest.mark.parametrize("batch_size", [1, 4, 7, 32, 50, 89, 178])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_counts_are_ceil_or_floor_of_n_over_batch_size(
    batch_size: int, drop_last: bool
) -> None:
    rows, classes = wine_batches(batch_size, True, drop_last, 2, 5)
    expected = N // batch_size if drop_last else math.ceil(N / batch_size)
    assert len(make_loader(wine_dataset(), batch_size, True, drop_last, 5)) == expected
    for epoch, counts in zip(rows, classes, strict=True):
        assert len(epoch) == len(counts) == expected
        sizes = [len(batch) for batch in epoch]
        assert sizes[: N // batch_size] == [batch_size] * (N // batch_size)
        if not drop_last and N % batch_size:
            assert sizes[-1] == N % batch_size


@pytest.mark.parametrize(("batch_size", "drop_last"), [(4, False), (4, True), (50, True)])
def test_each_epoch_is_a_permutation_of_the_rows_minus_the_dropped_tail(
    batch_size: int, drop_last: bool
) -> None:
    rows, _ = wine_batches(batch_size, True, drop_last, 3, 11)
    kept = (N // batch_size) * batch_size if drop_last else N
    orders = [[i for batch in epoch for i in batch] for epoch in rows]
    for order in orders:
        assert len(order) == kept and len(set(order)) == kept
        assert set(order) <= set(range(N))
    assert orders[0] != orders[1] != orders[2]  # shuffle: a new order every epoch


def test_without_shuffle_the_batches_are_the_table_in_order() -> None:
    rows, classes = wine_batches(4, False, False, 2, 0)
    chunks = [list(range(k, min(k + 4, N))) for k in range(0, N, 4)]
    assert rows == [chunks, chunks]
    assert classes[0][0] == [4, 0, 0]  # the table is sorted: the first batch is all class 0


@pytest.mark.parametrize("seed", [0, 3, 12345])
@pytest.mark.parametrize("drop_last", [False, True])
def test_the_seeded_order_is_torch_randperm_from_the_same_generator(
    seed: int, drop_last: bool
) -> None:
    rows, _ = wine_batches(4, True, drop_last, 3, seed)
    g = torch.Generator().manual_seed(seed)
    for epoch in rows:
        # How torch 2.13 spends the generator each epoch: iter(loader) draws one int64 (the
        # workers' base seed); RandomSampler draws randperm(n) for the order, then one more
        # randperm(n) for the n % n == 0 remainder it slices to nothing.
        torch.empty((), dtype=torch.int64).random_(generator=g)
        order = torch.randperm(N, generator=g).tolist()
        torch.randperm(N, generator=g)
        kept = (N // 4) * 4 if drop_last else N
        assert [i for batch in epoch for i in batch] == order[:kept]


def test_the_wine_loader_draws_the_same_rows_as_the_api_over_indices() -> None:
    # POST /api/data/batches runs a DataLoader over IndexedDataset(size): the sampler sees only
    # len(dataset) and the generator, so the same arguments pick the same rows of the wine table.
    for args in [(4, True, False, 2, 0), (10, True, True, 3, 9), (7, False, False, 1, 0)]:
        rows, _ = wine_batches(*args)
        assert rows == draw_batches(N, *args)


def test_the_class_counts_are_the_bincount_of_each_batchs_targets() -> None:
    rows, classes = wine_batches(16, True, False, 2, 1)
    for epoch_rows, epoch_classes in zip(rows, classes, strict=True):
        for batch, counts in zip(epoch_rows, epoch_classes, strict=True):
            assert counts == np.bincount(WINE.target[batch], minlength=3).tolist()


def test_two_worker_processes_draw_the_same_batches_as_the_main_process() -> None:
    loader = make_loader(wine_dataset(), 8, True, False, 4, num_workers=2)
    iterator = iter(loader)
    assert type(iterator).__name__ == "_MultiProcessingDataLoaderIter"  # real workers
    del iterator
    with_workers = wine_batches(8, True, True, 2, 4, num_workers=2)
    assert with_workers == wine_batches(8, True, True, 2, 4, num_workers=0)
    batches = list(make_loader(wine_dataset(), 8, True, False, 4, num_workers=2))
    alone = list(make_loader(wine_dataset(), 8, True, False, 4, num_workers=0))
    for (x2, y2), (x0, y0) in zip(batches, alone, strict=True):  # the tensors themselves
        assert torch.equal(x2, x0) and torch.equal(y2, y0)


def test_step_view_counts_the_loop_variables_and_the_rows_states() -> None:
    rows, _ = wine_batches(4, True, True, 2, 0)  # 44 batches, 2 rows dropped per epoch
    view = step_view(rows, 44 + 3, N)  # epoch 1, i = 2
    assert (view["epoch"], view["i"]) == (1, 2) and view["rows"] == rows[1][2]
    states = view["state"]
    assert states.count("batch") == 4 and states.count("seen") == 8
    assert states.count("dropped") == 2 and states.count("later") == N - 4 - 8 - 2
    assert {i for i, s in enumerate(states) if s == "seen"} == set(rows[1][0] + rows[1][1])


def test_explore_clamps_the_step_and_prints_the_formula() -> None:
    result = explore(DatasetsParams(batch_size=4, epochs=2, step=999), BatchLimits())
    assert result["batches_per_epoch"] == 45 == math.ceil(N / 4)
    assert result["total_iterations"] == 90 and result["step"] == 90
    assert result["formula"] == "⌈178 / 4⌉ = ⌈44.5⌉ = 45"
    assert result["last_batch"] == 2 and result["dropped"] == 0
    dropped = explore(DatasetsParams(batch_size=50, drop_last=True, step=0), BatchLimits())
    assert dropped["formula"] == "⌊178 / 50⌋ = ⌊3.56⌋ = 3"
    assert dropped["dropped"] == 28 and dropped["step"] == 1
    item = explore(DatasetsParams(index=100), BatchLimits())["item"]
    np.testing.assert_allclose(item["sample"], WINE.data[100], rtol=1e-6)
    assert item["target"] == WINE.target[100] and item["sample_dtype"] == "torch.float32"


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (DatasetsParams(epochs=21), "max_batch_epochs"),
        (DatasetsParams(num_workers=9), "max_num_workers"),
        (DatasetsParams(batch_size=179), "larger than the dataset (178)"),
        (DatasetsParams(batch_size=0), "batch_size must be at least 1"),
        (DatasetsParams(epochs=0), "epochs must be at least 1"),
        (DatasetsParams(num_workers=-1), "num_workers must be 0 or more"),
        (DatasetsParams(index=178), "index must be 0 to 177"),
        (DatasetsParams(seed=-2), "seed"),
    ],
)
def test_bad_parameters_name_the_problem_and_the_limit(params: DatasetsParams, needle: str) -> None:
    with pytest.raises(LessonInputError, match=re.escape(needle)):
        explore(params, BatchLimits())


def test_the_listed_batches_limit_applies_to_the_table_too() -> None:
    with pytest.raises(LimitExceeded, match="max_batches_listed"):
        explore(DatasetsParams(batch_size=1, epochs=2), BatchLimits(max_batches_listed=300))


def test_the_figures_show_the_batches_and_mark_the_current_one() -> None:
    result = explore(
        DatasetsParams(batch_size=16, drop_last=True, epochs=3, step=13), BatchLimits()
    )
    drawn = figures.figures(result)
    z = drawn["assignment"]["data"][0]["z"]
    for e, epoch in enumerate(result["epochs"]):
        for i, batch in enumerate(epoch):
            assert all(z[e][row] == i for row in batch)
        assert sum(v is None for v in z[e]) == N % 16  # dropped rows are gaps
    mark = drawn["assignment"]["data"][-1]
    assert mark["x"] == result["epochs"][1][1] and mark["y"] == [1] * 16  # step 13 = epoch 1, i 1
    bars = drawn["iterations"]["data"]
    assert len(bars[0]["x"]) == result["total_iterations"] == 3 * (N // 16)
    heights = np.sum([t["y"] for t in bars[:3]], axis=0)
    assert heights.tolist() == [16.0] * 33
    assert bars[-1]["x"] == [13]


def run_script(source: str, tmp_path: Path) -> str:
    path = tmp_path / "snippet.py"
    path.write_text(source)
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "params",
    [DatasetsParams(), DatasetsParams(batch_size=32, drop_last=True, num_workers=2, seed=7)],
)
def test_the_snippet_prints_the_batches_the_page_shows(
    params: DatasetsParams, tmp_path: Path
) -> None:
    printed = run_script(snippet(params), tmp_path)
    rows = [json_list(m) for m in re.findall(r"rows (\[[^\]]*\])", printed)]
    result = explore(params, BatchLimits())
    assert rows == [batch for epoch in result["epochs"] for batch in epoch]
    per = result["batches_per_epoch"]
    assert f"step {per}/{per}" in printed and f"epoch {params.epochs}/{params.epochs}" in printed
    assert printed.splitlines()[0].startswith("178 torch.Size([13]) torch.float32 tensor(0)")


def json_list(text: str) -> list[int]:
    return [int(v) for v in text.strip("[]").split(",")]


def test_the_page_never_starts_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []
    real = datasets.make_loader

    def spy(*args: object, **kwargs: object) -> object:
        loader = real(*args, **kwargs)  # type: ignore[arg-type]
        asked.append(loader.num_workers)
        return loader

    monkeypatch.setattr(datasets, "make_loader", spy)
    datasets._wine_batches.cache_clear()
    explore(DatasetsParams(num_workers=8, seed=99), BatchLimits())
    assert asked == [0]  # whatever num_workers the page shows, the server loads in-process
