"""POST /api/data/batches: the batches a real DataLoader draws."""

from __future__ import annotations

import math

import pytest
import torch
from fastapi.testclient import TestClient
from torch.utils.data import DataLoader

from app.lessons.datasets import IndexedDataset


def batches(client: TestClient, **body: object) -> dict:
    r = client.post("/api/data/batches", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_contract_example_ten_samples_in_batches_of_four(client: TestClient) -> None:
    r = batches(client, size=10, batch_size=4, shuffle=False, drop_last=False, epochs=1, seed=0)
    assert r["batches_per_epoch"] == 3
    assert r["epochs"][0] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize(("size", "batch_size"), [(10, 4), (12, 4), (7, 3), (5, 5), (9, 2)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_iterations_per_epoch_are_ceil_or_floor_of_n_over_batch_size(
    client: TestClient, size: int, batch_size: int, drop_last: bool
) -> None:
    r = batches(client, size=size, batch_size=batch_size, drop_last=drop_last, epochs=2)
    expected = size // batch_size if drop_last else math.ceil(size / batch_size)
    assert r["batches_per_epoch"] == expected
    for epoch in r["epochs"]:
        assert len(epoch) == expected
        assert all(len(b) == batch_size for b in epoch[: size // batch_size])


def test_shuffle_draws_every_sample_once_per_epoch_in_a_new_order(client: TestClient) -> None:
    r = batches(client, size=20, batch_size=6, shuffle=True, epochs=3, seed=7)
    orders = [[i for batch in epoch for i in batch] for epoch in r["epochs"]]
    for order in orders:
        assert sorted(order) == list(range(20))
    assert orders[0] != orders[1] != orders[2]


def test_the_shuffle_is_the_one_torch_draws_for_that_seed(client: TestClient) -> None:
    r = batches(client, size=8, batch_size=8, shuffle=True, epochs=2, seed=3)
    # torch's own DataLoader over a plain list of indices, with the same seed
    plain = DataLoader(list(range(8)), batch_size=8, shuffle=True,
                       generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert r["epochs"] == [[batch.tolist() for batch in plain] for _epoch in range(2)]
    again = batches(client, size=8, batch_size=8, shuffle=True, epochs=2, seed=3)
    assert again == r  # a shared link replays the same batches


def test_the_dataset_returns_sample_and_target_and_has_a_length() -> None:
    dataset = IndexedDataset(5)
    sample, target = dataset[3]
    assert sample.tolist() == [3] and target.item() == 1 and len(dataset) == 5


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"size": 0, "batch_size": 1}, "at least 1"),
        ({"size": 10**9, "batch_size": 4}, "max_dataset_size"),
        ({"size": 10, "batch_size": 4, "epochs": 10**6}, "max_batch_epochs"),
        ({"size": 10, "batch_size": 40}, "larger than the dataset"),
        ({"size": 10000, "batch_size": 1, "epochs": 20}, "max_batches_listed"),
        ({"size": 10, "batch_size": 4, "seed": -1}, "seed"),
        ({"size": "ten", "batch_size": 4}, "size"),
    ],
)
def test_bad_input_is_422_naming_the_problem(client: TestClient, body: dict, needle: str) -> None:
    r = client.post("/api/data/batches", json=body)
    assert r.status_code == 422 and needle in r.json()["detail"]
