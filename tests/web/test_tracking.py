"""The Tracking page over HTTP: the example runs, a stored run, and bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.lessons import tracking
from app.web.templating import code_block
from tests.support import finished, launch


def test_the_page_shows_the_example_runs_with_every_panel(client: TestClient) -> None:
    page = client.get("/lessons/tracking")
    assert page.status_code == 200
    for text in ("lr=0.01", "lr=0.05", "lr=0.2", 'id="architecture"', 'id="samples"', "fig-pr"):
        assert text in page.text
    view = client.get("/api/lessons/tracking/view?metric=val_accuracy&smoothing=0").json()
    scalars = view["figures"]["scalars"]["data"]
    runs = tracking.example_runs()
    for i, run in enumerate(runs):
        raw = scalars[2 * i]
        assert raw["y"] == pytest.approx([v for _, v in run.metrics["val_accuracy"]])
        assert scalars[2 * i + 1]["y"] == pytest.approx(raw["y"])  # smoothing 0: the same line


def test_smoothing_and_the_threshold_update_in_place(client: TestClient) -> None:
    partial = client.get("/lessons/tracking/partial?smoothing=0.9&threshold=0.8&cls=5")
    assert partial.status_code == 200 and "<html" not in partial.text
    page = client.get("/lessons/tracking?smoothing=0.9&threshold=0.8&cls=5").text
    params = tracking.TrackingParams(smoothing=0.9, threshold=0.8, cls=5)
    assert str(code_block(tracking.snippet(params))) in page  # the lesson's own snippet
    view = client.get("/api/lessons/tracking/view?smoothing=0.9&threshold=0.8&cls=5").json()
    loss = [v for _, v in tracking.example_runs()[0].metrics["loss"]]
    assert view["figures"]["scalars"]["data"][1]["y"] == pytest.approx(tracking.smooth(loss, 0.9))
    at = view["result"]["curves"][0]["at"]
    curve = tracking.example_runs()[0].summary["eval"]
    predicted = [p[5] >= 0.8 for p in curve["probabilities"]]
    true = [label == 5 for label in curve["labels"]]
    hits = sum(p and t for p, t in zip(predicted, true, strict=True))
    assert at["recall"] == pytest.approx(hits / sum(true))
    assert at["precision"] == pytest.approx(hits / sum(predicted))


def test_a_stored_run_is_shown_with_its_own_metrics(client: TestClient) -> None:
    run_id = launch(client, "linear-regression", {"epochs": 20, "stage": "manual"})
    assert finished(client, run_id)["status"] == "completed"
    view = client.get(f"/api/lessons/tracking/view?runs={run_id}&metric=w&smoothing=0").json()
    stored = client.get(f"/api/runs/{run_id}").json()["metrics"]["w"]
    assert view["figures"]["scalars"]["data"][0]["y"] == [v for _, v in stored]
    assert view["result"]["runs"][0]["label"] == f"{run_id[:8]} manual lr=0.1"
    assert view["result"]["parameters"] == 2 and "pr" not in view["figures"]
    assert client.get(f"/lessons/tracking?runs={run_id}").status_code == 200


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("runs=nope", "no run 'nope'"),
        ("runs=" + ",".join(f"r{i}" for i in range(9)), "tracking_max_runs"),
        ("runs=a,a", "once"),
        ("smoothing=2", "smoothing"),
        ("smoothing=abc", "smoothing"),
        ("threshold=5", "threshold"),
        ("metric=w", "not logged"),
    ],
)
def test_bad_input_gets_422_naming_the_problem(client: TestClient, query: str, words: str) -> None:
    response = client.get(f"/api/lessons/tracking/view?{query}")
    assert response.status_code == 422 and words in response.json()["detail"]
    page = client.get(f"/lessons/tracking?{query}")
    assert page.status_code == 422 and "text/html" in page.headers["content-type"]
