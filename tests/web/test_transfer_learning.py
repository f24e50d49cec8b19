"""The Transfer learning page over HTTP: the example runs, the learner's own runs, bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.lessons import transfer_learning as transfer
from app.web.templating import code_block
from tests.support import finished, launch


def test_the_page_shows_the_three_modes_the_frozen_table_and_the_sweep(
    client: TestClient,
) -> None:
    page = client.get("/lessons/transfer-learning")
    assert page.status_code == 200
    for text in (
        "feature-extract",
        "finetune",
        "scratch",
        'id="frozen"',
        "fig-sweep",
        "fig-curves",
    ):
        assert text in page.text
    assert "requires_grad_(False)" in page.text  # the real code beside the table
    view = client.get("/api/lessons/transfer-learning/view").json()
    curves = view["figures"]["curves"]["data"]
    for trace, run in zip(curves, transfer.example_runs(), strict=True):
        assert trace["y"] == pytest.approx([v for _, v in run.metrics["val_accuracy"]])
        assert trace["x"] == list(range(1, len(trace["y"]) + 1))
    sweep = view["figures"]["sweep"]
    assert sweep["layout"]["shapes"][0]["x0"] == 10  # the chosen examples per class


def test_sliders_and_selects_update_in_place(client: TestClient) -> None:
    partial = client.get("/lessons/transfer-learning/partial?examples=20&metric=loss&focus=scratch")
    assert partial.status_code == 200 and "<html" not in partial.text
    assert 'class="chosen"' in partial.text
    params = transfer.TransferParams(examples=20, metric="loss", focus="scratch")
    assert str(code_block(transfer.snippet(params))) in partial.text  # the lesson's own snippet
    view = client.get("/api/lessons/transfer-learning/view?metric=loss").json()
    loss = transfer.example_runs()[0].metrics["loss"]
    trace = view["figures"]["curves"]["data"][0]
    assert trace["x"] == [s for s, _ in loss]
    assert trace["y"] == pytest.approx([v for _, v in loss])


def test_the_learners_own_runs_are_compared(client: TestClient) -> None:
    ids = [
        launch(client, "transfer", {"mode": mode, "epochs": 3, "examples_per_class": 4})
        for mode in ("feature-extract", "scratch")
    ]
    runs = [finished(client, run_id) for run_id in ids]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    view = client.get(f"/api/lessons/transfer-learning/view?runs={','.join(ids)}").json()
    result = view["result"]
    assert not result["examples"]
    assert [r["mode"] for r in result["runs"]] == ["feature-extract", "scratch"]
    for trace, run in zip(view["figures"]["curves"]["data"], runs, strict=True):
        assert trace["y"] == pytest.approx([v for _, v in run["metrics"]["val_accuracy"]])
        assert trace["x"] == [1, 2, 3]
    page = client.get(f"/lessons/transfer-learning?runs={ids[0]}")
    assert page.status_code == 200 and ids[0] in page.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("examples=0", "examples must be from 1 to 100"),
        ("epochs=abc", "epochs must be a whole number"),
        ("runs=nope", "there is no run 'nope'"),
        ("runs=a,a", "each run may be listed once"),
        ("metric=x", "metric must be one of"),
    ],
)
def test_bad_input_is_a_422_that_names_the_problem(
    client: TestClient, query: str, message: str
) -> None:
    response = client.get(f"/api/lessons/transfer-learning/view?{query}")
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_a_run_of_another_task_is_refused(client: TestClient) -> None:
    run_id = launch(client, "linear-regression", {"epochs": 2})
    finished(client, run_id)
    response = client.get(f"/api/lessons/transfer-learning/view?runs={run_id}")
    assert response.status_code == 422
    assert "is a linear-regression run" in response.json()["detail"]


def test_a_transfer_run_opens_in_tracking_and_on_its_run_page_with_digit_names(
    client: TestClient,
) -> None:
    run_id = launch(client, "transfer", {"mode": "finetune", "epochs": 2})
    assert finished(client, run_id)["status"] == "completed"
    view = client.get(f"/api/lessons/tracking/view?runs={run_id}").json()["result"]
    assert view["classes"] == ["5", "6", "7", "8", "9"]
    assert (view["cls"], view["cls_name"]) == (4, "9")  # the default class 8 is beyond 5 classes
    for sample in view["samples"]:
        assert sample["label_name"] == str(sample["label"] + 5)
        assert sample["predicted_name"] == str(sample["predicted"] + 5)
    assert client.get(f"/api/lessons/tracking/view?runs={run_id}&cls=7").status_code == 422
    page = client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert "label 5" in page.text and "label 0" not in page.text
