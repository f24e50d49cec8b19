"""The run pages, /runs and /runs/{id}, rendered from real runs in a real store."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import precision_recall_curve

import tests.jobs.worker_tasks  # noqa: F401  (registers the test-only task "test-sleepy")
from app.config import Settings
from app.jobs.store import run_dir
from app.jobs.tracking import read_summary
from app.main import create_app
from app.web.templating import fmt
from tests.support import finished, launch, wait_for


def figures(page: str) -> dict[str, dict[str, Any]]:
    """Every figure on a page by element id, from its ``<script type="application/json">``."""
    found = re.findall(
        r'<div class="plot" id="([^"]+)"[^>]*></div>\s*'
        r'<script type="application/json" class="plot-data">(.*?)</script>',
        page,
        re.S,
    )
    return {fig_id: json.loads(body) for fig_id, body in found}


def page_data(page: str, element_id: str) -> dict[str, Any]:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page)
    assert match, f"no #{element_id} data block"
    return dict(json.loads(match.group(1)))


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


def debiased_ema(values: list[float], weight: float) -> np.ndarray:
    """TensorBoard's smoothing written out independently: EMA / (1 - weight^n)."""
    x = np.asarray(values, dtype=np.float64)
    n = np.arange(1, len(x) + 1)
    # EMA_t = (1 - w) * sum_{i<=t} w^(t-i) x_i, as a weighted cumulative sum
    weights = weight ** (n[:, None] - n[None, :]) * (n[None, :] <= n[:, None])
    ema = (1 - weight) * (weights @ x)
    return ema / (1 - weight**n)


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("run-pages") / "data"
    with TestClient(create_app(Settings(data_dir=data, program_prewarm=False))) as client:
        yield client


@pytest.fixture(scope="module")
def linear_run(app_client: TestClient) -> dict[str, Any]:
    run_id = launch(app_client, "linear-regression", {"stage": "autograd", "epochs": 30})
    run = finished(app_client, run_id)
    assert run["status"] == "completed", run
    return run


@pytest.fixture(scope="module")
def digits_run(app_client: TestClient) -> dict[str, Any]:
    run_id = launch(app_client, "digits-cnn", {"epochs": 1, "batch_size": 64})
    run = finished(app_client, run_id)
    assert run["status"] == "completed", run
    return run


def test_run_page_draws_one_figure_per_metric_with_the_apis_numbers(
    app_client: TestClient, linear_run: dict[str, Any]
) -> None:
    r = app_client.get(f"/runs/{linear_run['id']}?smoothing=0.6")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    shown = figures(r.text)
    assert set(shown) == {f"fig-{name}" for name in ("loss", "w", "b", "grad_w", "grad_b")}
    for name, points in linear_run["metrics"].items():
        raw, smoothed = shown[f"fig-{name}"]["data"][:2]
        steps = [p[0] for p in points]
        values = [p[1] for p in points]
        assert raw["x"] == steps and raw["y"] == values
        assert smoothed["x"] == steps
        np.testing.assert_allclose(smoothed["y"], debiased_ema(values, 0.6), rtol=1e-12)
    data = page_data(r.text, "run-data")
    assert data["status"] == "completed" and data["has_summary"] is True
    assert data["smoothing"] == 0.6


def test_smoothing_zero_shows_the_raw_curve_alone(
    app_client: TestClient, linear_run: dict[str, Any]
) -> None:
    shown = figures(app_client.get(f"/runs/{linear_run['id']}?smoothing=0").text)
    raw, smoothed = shown["fig-loss"]["data"][:2]
    assert smoothed["y"] == raw["y"]
    assert smoothed["visible"] == "legendonly" and raw["opacity"] == 1.0


def test_finished_run_shows_its_architecture_downloads_and_the_code_that_trained_it(
    app_client: TestClient, linear_run: dict[str, Any]
) -> None:
    run_id = linear_run["id"]
    r = app_client.get(f"/runs/{run_id}")
    text = text_of(r.text)
    assert "Linear(in_features=1, out_features=1, bias=True)" in text
    assert re.search(r'id="parameter-total">2<', r.text)
    for what in ("checkpoint", "state_dict", "tensorboard"):
        assert f'href="/api/runs/{run_id}/{what}"' in r.text
        assert app_client.get(f"/api/runs/{run_id}/{what}").status_code == 200
    assert f"unzip {run_id}-tensorboard.zip -d runs && tensorboard --logdir runs" in text
    assert f'torch.load("{run_id}-checkpoint.pth", weights_only=True)' in text
    assert "def train_linear_regression(" in text
    assert 'id="cancel-run"' not in r.text  # a finished run has nothing to cancel
    assert 'class="sample-grid"' not in r.text and 'id="fig-pr"' not in r.text


def test_digits_run_shows_its_sample_predictions_with_the_wrong_ones_marked(
    app_client: TestClient, digits_run: dict[str, Any]
) -> None:
    r = app_client.get(f"/runs/{digits_run['id']}")
    summary = read_summary(run_dir(app_client.app.state.settings.data_dir, digits_run["id"]))
    assert summary is not None
    samples = summary["samples"]
    items = re.findall(r'<li class="sample( wrong)?">(.*?)</li>', r.text, re.S)
    assert len(items) == len(samples) > 0
    for (wrong, body), sample in zip(items, samples, strict=True):
        assert bool(wrong) == (sample["label"] != sample["predicted"])
        assert f"label {sample['label']} · predicted <strong>{sample['predicted']}</strong>" in body
        assert 'src="data:image/png;base64,' in body
    assert "conv: " not in r.text  # the table splits name and layer
    assert "Conv2d(1, 8, kernel_size=(3, 3)" in text_of(r.text)


def test_pr_curve_for_the_class_in_the_url_matches_scikit_learn(
    app_client: TestClient, digits_run: dict[str, Any]
) -> None:
    k = 3
    r = app_client.get(f"/runs/{digits_run['id']}?pr_class={k}&threshold=0.3")
    assert r.status_code == 200
    assert re.search(rf'<option value="{k}" selected>', r.text)
    curve, marker = figures(r.text)["fig-pr"]["data"]
    summary = read_summary(run_dir(app_client.app.state.settings.data_dir, digits_run["id"]))
    assert summary is not None
    labels = np.asarray(summary["eval"]["labels"]) == k
    scores = np.asarray(summary["eval"]["probabilities"])[:, k]
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    # scikit-learn lists thresholds ascending (and stops at full recall); ours descend over all
    ours = {t: (p, q) for t, p, q in zip(curve["customdata"], curve["y"], curve["x"], strict=True)}
    for t, p, q in zip(thresholds, precision[:-1], recall[:-1], strict=True):
        assert ours[t] == pytest.approx((p, q))
    # The marker sits on the lowest listed threshold still >= 0.3 (the top one if none is).
    at = max((j for j, t in enumerate(curve["customdata"]) if t >= 0.3), default=0)
    assert marker["x"] == [curve["x"][at]] and marker["y"] == [curve["y"][at]]
    data = page_data(r.text, "run-data")
    assert data["pr"]["selected"] == k and len(data["pr"]["figures"]) == 10


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("smoothing=1", "smoothing must be in [0, 0.99]"),
        ("smoothing=abc", "smoothing must be a number in [0, 0.99]"),
        ("threshold=2", "threshold must be in [0, 1]"),
        ("pr_class=11", "pr_class must be one of 0, 1, 2"),
    ],
)
def test_bad_view_settings_are_422_naming_the_allowed_range(
    app_client: TestClient, digits_run: dict[str, Any], query: str, message: str
) -> None:
    r = app_client.get(f"/runs/{digits_run['id']}?{query}")
    assert r.status_code == 422
    assert message in text_of(r.text)


def test_unknown_run_is_the_apps_404_page(app_client: TestClient) -> None:
    r = app_client.get("/runs/nosuchrun", headers={"Accept": "text/html"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert 'class="error-page"' in r.text
    assert "There is no run 'nosuchrun'" in text_of(r.text)


def test_runs_page_lists_every_run_newest_first_like_the_api(
    app_client: TestClient, linear_run: dict[str, Any], digits_run: dict[str, Any]
) -> None:
    r = app_client.get("/runs")
    assert r.status_code == 200
    listed = re.findall(r'<tr data-run="([^"]+)" data-status="([^"]+)">', r.text)
    api = app_client.get("/api/runs").json()["runs"]
    assert listed == [(run["id"], run["status"]) for run in api]
    ids = [run_id for run_id, _ in listed]
    assert ids.index(digits_run["id"]) < ids.index(linear_run["id"])  # launched later: above
    row = r.text.split(f'<tr data-run="{linear_run["id"]}"', 1)[1].split("</tr>", 1)[0]
    final_loss = linear_run["metrics"]["loss"][-1][1]
    assert f"<td>{fmt(final_loss)}</td>" in row
    assert "stage=autograd" in row and 'class="status-badge status-completed"' in row
    assert f'href="/runs/{linear_run["id"]}"' in row
    assert 'class="compare-pick"' in row and "cancel-run" not in row
    assert 'data-base="/lessons/tracking"' in r.text


def test_launcher_renders_each_tasks_fields_with_their_bounds_and_url_values(
    app_client: TestClient,
) -> None:
    r = app_client.get("/runs?task=digits-cnn&epochs=3")
    tasks = {t["name"]: t for t in app_client.get("/api/tasks").json()["tasks"]}
    for name in ("linear-regression", "digits-cnn"):
        assert f'<option value="{name}"' in r.text
        for field in tasks[name]["fields"]:
            assert f'id="cfg-{name}-{field["name"]}"' in r.text
    epochs = re.search(
        r'<input type="number" name="epochs" id="cfg-digits-cnn-epochs"[^>]*>', r.text
    )
    assert epochs is not None
    bounds = next(f for f in tasks["digits-cnn"]["fields"] if f["name"] == "epochs")
    attributes = dict(re.findall(r'(\w+)="([^"]*)"', epochs.group(0)))
    assert float(attributes["min"]) == bounds["minimum"]
    assert float(attributes["max"]) == bounds["maximum"]
    assert 'value="3"' in epochs.group(0)  # from the URL
    assert '<option value="digits-cnn" selected>' in r.text
    assert re.search(r'<fieldset class="task-fields" data-task="linear-regression" hidden', r.text)
    for stage in ("manual", "autograd", "nn"):
        assert f'<option value="{stage}"' in r.text


def test_a_live_run_page_streams_from_after_what_it_drew_and_can_be_cancelled(
    app_client: TestClient,
) -> None:
    run_id = launch(app_client, "test-sleepy", {"steps": 100_000})
    wait_for(lambda: "loss" in app_client.get(f"/api/runs/{run_id}").json()["metrics"])
    r = app_client.get(f"/runs/{run_id}")
    data = page_data(r.text, "run-data")
    assert data["status"] in ("queued", "running")
    assert 'id="cancel-run"' in r.text
    drawn = figures(r.text)["fig-loss"]["data"][0]["x"]
    assert data["last_event_id"] > 0 and len(drawn) > 0
    assert data["template"]["data"][0]["x"] == []  # the shape a first-seen metric is drawn in
    assert app_client.post(f"/api/runs/{run_id}/cancel").status_code == 200
    assert finished(app_client, run_id)["status"] == "cancelled"
    r = app_client.get(f"/runs/{run_id}")
    assert 'class="status-badge status-cancelled"' in r.text and 'id="cancel-run"' not in r.text


def test_every_page_links_to_the_runs(app_client: TestClient) -> None:
    assert 'href="/runs"' in app_client.get("/").text
