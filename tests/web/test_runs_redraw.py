"""What the run page redraws is computed by the server: every chart at another smoothing
(GET /api/runs/{id}/scalars), a class's precision/recall at a threshold (GET /api/runs/{id}/pr),
and the live stream's metrics smoothed (GET /api/runs/{id}/events?smoothing=), checked against an
independent NumPy EMA and a brute-force threshold scan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from app.config import Settings
from app.jobs.store import run_dir
from app.jobs.tracking import read_summary
from app.main import create_app
from tests.support import finished, launch, parse_sse


def debiased_ema(values: list[float], weight: float) -> np.ndarray:
    """TensorBoard's smoothing written out independently: EMA / (1 - weight^n)."""
    x = np.asarray(values, dtype=np.float64)
    n = np.arange(1, len(x) + 1)
    lag = n[:, None] - n[None, :]  # EMA_t = (1 - w) * sum_{i<=t} w^(t-i) x_i
    weights = np.where(lag >= 0, weight ** np.maximum(lag, 0), 0.0)
    return (1 - weight) * (weights @ x) / (1 - weight**n if weight > 0 else 1.0)


def brute_force_point(labels: np.ndarray, scores: np.ndarray, t: float) -> tuple[float, float]:
    """Precision and recall of "predict the class when p >= t", counted sample by sample."""
    predicted = scores >= t
    true_pos = int(np.sum(predicted & labels))
    precision = true_pos / int(predicted.sum()) if predicted.any() else 1.0
    return precision, true_pos / int(labels.sum())


def events(client: TestClient, url: str, headers: dict[str, str] | None = None) -> list[dict]:
    with client.stream("GET", url, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        return parse_sse(response.iter_lines())


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data: Path = tmp_path_factory.mktemp("run-redraw") / "data"
    settings = Settings(data_dir=data, program_prewarm=False, warm_lessons=False)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def linear_run(app_client: TestClient) -> dict[str, Any]:
    run = finished(app_client, launch(app_client, "linear-regression", {"epochs": 40}))
    assert run["status"] == "completed", run
    return run


@pytest.fixture(scope="module")
def digits_run(app_client: TestClient) -> dict[str, Any]:
    config = {"epochs": 1, "batch_size": 64}
    run = finished(app_client, launch(app_client, "digits-cnn", config))
    assert run["status"] == "completed", run
    return run


@pytest.mark.parametrize("weight", [0.0, 0.35, 0.9, 0.99])
def test_scalars_answer_draws_every_metric_raw_and_smoothed_as_a_numpy_ema(
    app_client: TestClient, linear_run: dict[str, Any], weight: float
) -> None:
    r = app_client.get(f"/api/runs/{linear_run['id']}/scalars?smoothing={weight}")
    assert r.status_code == 200
    answer = r.json()
    assert answer["smoothing"] == weight
    assert set(answer["figures"]) == set(linear_run["metrics"])
    for name, points in linear_run["metrics"].items():
        raw, smoothed = answer["figures"][name]["data"]
        assert raw["x"] == [p[0] for p in points] and raw["y"] == [p[1] for p in points]
        assert np.allclose(smoothed["y"], debiased_ema([p[1] for p in points], weight), rtol=1e-12)
        assert smoothed["visible"] == (True if weight > 0 else "legendonly")
    # The stream after this id carries on from the last point drawn.
    streamed = events(app_client, f"/api/runs/{linear_run['id']}/events")
    assert answer["last_event_id"] == max(e["id"] for e in streamed if e["event"] == "metric")
    assert answer["template"]["data"][1]["meta"] == {"smoothing": weight}


def test_stream_with_smoothing_carries_each_metric_smoothed_over_its_whole_series(
    app_client: TestClient, linear_run: dict[str, Any]
) -> None:
    run_id = linear_run["id"]
    plain = [e for e in events(app_client, f"/api/runs/{run_id}/events") if e["event"] == "metric"]
    assert all("smoothed" not in e["data"] for e in plain)  # the contract's events, unchanged
    smoothed = events(app_client, f"/api/runs/{run_id}/events?smoothing=0.8")
    metrics = [e for e in smoothed if e["event"] == "metric"]
    assert [e["id"] for e in metrics] == [e["id"] for e in plain]
    for name, points in linear_run["metrics"].items():
        mine = [e["data"] for e in metrics if e["data"]["name"] == name]
        assert [m["value"] for m in mine] == [p[1] for p in points]
        expected = debiased_ema([p[1] for p in points], 0.8)
        assert np.allclose([m["smoothed"] for m in mine], expected, rtol=1e-12)
    # A reconnect (Last-Event-ID) resumes the average from the stored metrics before it.
    cut = metrics[len(metrics) // 2]["id"]
    resumed = events(
        app_client, f"/api/runs/{run_id}/events?smoothing=0.8", {"Last-Event-ID": str(cut)}
    )
    later = [e for e in resumed if e["event"] == "metric"]
    assert [e["id"] for e in later] == [e["id"] for e in metrics if e["id"] > cut]
    by_id = {e["id"]: e["data"]["smoothed"] for e in metrics}
    assert all(e["data"]["smoothed"] == by_id[e["id"]] for e in later)


def test_a_live_stream_smooths_the_points_as_they_come_and_after_a_resume(
    app_client: TestClient,
) -> None:
    run_id = launch(app_client, "test-sleepy", {"steps": 60})
    live = events(app_client, f"/api/runs/{run_id}/events?smoothing=0.5")
    assert live[-1]["event"] == "status" and live[-1]["data"]["status"] == "completed"
    metrics = [e for e in live if e["event"] == "metric"]
    values = [e["data"]["value"] for e in metrics]
    assert values == [1.0 / step for step in range(1, 61)]
    expected = debiased_ema(values, 0.5)
    assert np.allclose([e["data"]["smoothed"] for e in metrics], expected, rtol=1e-12)
    after = metrics[9]["id"]
    resumed = events(app_client, f"/api/runs/{run_id}/events?smoothing=0.5&after={after}")
    got = [e["data"]["smoothed"] for e in resumed if e["event"] == "metric"]
    assert np.allclose(got, expected[10:], rtol=1e-12)


@pytest.mark.parametrize(("k", "threshold"), [(3, 0.3), (8, 0.5), (0, 0.0), (5, 1.0)])
def test_pr_answer_is_the_operating_point_a_brute_force_threshold_scan_finds(
    app_client: TestClient, digits_run: dict[str, Any], k: int, threshold: float
) -> None:
    r = app_client.get(f"/api/runs/{digits_run['id']}/pr?pr_class={k}&threshold={threshold}")
    assert r.status_code == 200
    answer = r.json()
    summary = read_summary(run_dir(app_client.app.state.settings.data_dir, digits_run["id"]))
    assert summary is not None
    labels = np.asarray(summary["eval"]["labels"]) == k
    scores = np.asarray(summary["eval"]["probabilities"])[:, k]
    precision, recall = brute_force_point(labels, scores, threshold)
    assert (answer["pr_class"], answer["index"], answer["threshold"]) == (str(k), k, threshold)
    assert answer["precision"] == pytest.approx(precision, abs=1e-12)
    assert answer["recall"] == pytest.approx(recall, abs=1e-12)
    assert answer["positives"] == int(labels.sum())
    curve, marker = answer["figure"]["data"]
    assert marker["x"] == [answer["recall"]] and marker["y"] == [answer["precision"]]
    assert curve["name"] == f"digit {k}" and marker["name"] == f"digit {k} at p ≥ {threshold:g}"


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("scalars?smoothing=1", 422, "0.99"),
        ("scalars?smoothing=-0.1", 422, "0"),
        ("scalars?smoothing=abc", 422, "smoothing"),
        ("events?smoothing=1.5", 422, "0.99"),
        ("pr?threshold=2", 422, "threshold"),
        ("pr?pr_class=11", 422, "pr_class must be one of 0, 1, 2"),
    ],
)
def test_bad_redraw_settings_are_422_naming_the_allowed_range(
    app_client: TestClient, digits_run: dict[str, Any], path: str, status: int, message: str
) -> None:
    r = app_client.get(f"/api/runs/{digits_run['id']}/{path}")
    assert r.status_code == status
    assert message in r.text


def test_pr_of_a_run_without_classes_or_summary_says_why(
    app_client: TestClient, linear_run: dict[str, Any]
) -> None:
    r = app_client.get(f"/api/runs/{linear_run['id']}/pr")
    assert r.status_code == 422
    assert "linear-regression run: it has no held-out classes" in r.json()["detail"]
    assert app_client.get("/api/runs/nope/pr").status_code == 404
    assert app_client.get("/api/runs/nope/scalars").status_code == 404
    running = launch(app_client, "test-sleepy", {"steps": 100_000})
    try:
        r = app_client.get(f"/api/runs/{running}/pr")
        assert r.status_code == 404 and "has no precision/recall curves" in r.json()["detail"]
    finally:
        app_client.post(f"/api/runs/{running}/cancel")
        finished(app_client, running)
