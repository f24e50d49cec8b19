"""The Datasets and DataLoaders lesson over HTTP: the page, its partial and its JSON twin, and
POST /api/data/batches (the batches a real DataLoader draws)."""

from __future__ import annotations

import html
import json
import math
import re

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sklearn.datasets import load_wine
from torch.utils.data import DataLoader

from app.lessons.datasets import IndexedDataset

PAGE = "/lessons/datasets"
TWIN = "/api/lessons/datasets/view"
WINE = load_wine()


def text_of(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def steps_data(markup: str) -> dict:
    found = re.search(r'<script type="application/json" id="steps-data">(.*?)</script>', markup)
    assert found, "the page embeds no batches"
    return json.loads(found.group(1))


def batch_table_rows(markup: str) -> list[int]:
    table = re.search(r'<table class="values ds-table ds-batch".*?</table>', markup, re.S)
    assert table
    return [int(r) for r in re.findall(r'<tr data-row="(\d+)">', table.group(0))]


def test_the_page_shows_the_table_getitem_and_the_step_before_any_script(
    client: TestClient,
) -> None:
    r = client.get(f"{PAGE}?index=17&step=47")
    assert r.status_code == 200 and 'class="plot-data"' in r.text
    text = text_of(r.text)
    assert "sample, target = dataset[17]" in text and "len(dataset)" in text
    assert 'id="item-target">tensor(0)</code>' in r.text and "torch.float32" in text
    row = re.search(r'<tr data-row="17" class="selected">(.*?)</tr>', r.text, re.S)
    assert row, "the selected row is in the table"
    values = [float(v) for v in re.findall(r"<td>([^<]*)</td>", row.group(1))]
    np.testing.assert_allclose(values, WINE.data[17], rtol=1e-4)
    assert "⌈178 / 4⌉ = ⌈44.5⌉ = 45" in text and "Step 47 of 90" in text
    assert 'id="loop-epoch">1</b>' in r.text and 'id="loop-i">1</b>' in r.text  # 47 = 45 + 2
    data = steps_data(r.text)
    assert data["step"] == 47 and batch_table_rows(r.text) == data["epochs"][1][1]
    assert 'id="inputs-shape">(4, 13)</b>' in r.text
    for source in ("class WineDataset(Dataset", "def __getitem__", "def __len__",
                   "for i, (inputs, labels) in enumerate(loader):"):  # fmt: skip
        assert html.escape(source, quote=False) in text or source in text


def test_the_partial_is_the_lesson_without_the_page_around_it(client: TestClient) -> None:
    r = client.get(f"{PAGE}/partial?shuffle=false&batch_size=10&step=2")
    assert r.status_code == 200 and "<html" not in r.text
    for slot in ("table", "loader-readout", "steps", "fig-assignment", "fig-iterations"):
        assert f'data-slot="{slot}"' in r.text
    assert batch_table_rows(r.text) == list(range(10, 20))  # table order, second batch


def test_the_json_twin_agrees_with_post_api_data_batches(client: TestClient) -> None:
    query = {"batch_size": 12, "shuffle": "true", "drop_last": "true", "epochs": 3, "seed": 5}
    body = client.get(TWIN, params=query).json()
    result = body["result"]
    assert body["params"]["shuffle"] is True and body["params"]["batch_size"] == 12
    assert result["batches_per_epoch"] == 178 // 12 and result["total_iterations"] == 3 * 14
    api = client.post(
        "/api/data/batches",
        json={"size": 178, "batch_size": 12, "shuffle": True, "drop_last": True, "epochs": 3,
              "seed": 5},
    ).json()  # fmt: skip
    assert api["epochs"] == result["epochs"] and api["batches_per_epoch"] == 14
    z = body["figures"]["assignment"]["data"][0]["z"]
    assert [sum(v is None for v in row) for row in z] == [178 % 12] * 3


def test_the_default_view_is_the_tutorials_batches_of_four(client: TestClient) -> None:
    result = client.get(TWIN).json()["result"]
    assert result["loader"] == {"batch_size": 4, "shuffle": True, "drop_last": False,
                                "num_workers": 0, "seed": 0, "epochs": 2}  # fmt: skip
    assert result["batches_per_epoch"] == math.ceil(178 / 4) and result["last_batch"] == 2


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("epochs=21", "max_batch_epochs"),
        ("num_workers=9", "max_num_workers"),
        ("batch_size=500", "larger than the dataset (178)"),
        ("batch_size=0", "batch_size must be at least 1"),
        ("index=178", "index must be 0 to 177"),
        ("shuffle=maybe", "shuffle must be true or false"),
        ("seed=-1", "seed"),
        ("batch_size=four", "batch_size must be a whole number"),
    ],
)
def test_bad_input_is_422_naming_the_problem(client: TestClient, query: str, needle: str) -> None:
    r = client.get(f"{TWIN}?{query}")
    assert r.status_code == 422 and needle in r.json()["detail"]
    page = client.get(f"{PAGE}/partial?{query}", headers={"Accept": "text/html"})
    assert page.status_code == 422 and needle in html.unescape(page.text)


def test_a_lower_epoch_limit_from_settings_is_named(tmp_path) -> None:
    from app.config import Settings
    from app.main import create_app

    settings = Settings(data_dir=tmp_path, max_batch_epochs=3, program_prewarm=False)
    with TestClient(create_app(settings)) as client:
        r = client.get(f"{TWIN}?epochs=4")
        assert r.status_code == 422
        assert "epochs is 4, over the limit of 3 (setting max_batch_epochs)" in r.json()["detail"]


# -- POST /api/data/batches -----------------------------------------------------------------------


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
def test_bad_batches_input_is_422_naming_the_problem(
    client: TestClient, body: dict, needle: str
) -> None:
    r = client.post("/api/data/batches", json=body)
    assert r.status_code == 422 and needle in r.json()["detail"]
