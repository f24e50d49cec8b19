"""The training-pipeline page, its partial and its JSON twin, through the app."""

from __future__ import annotations

import html
import inspect
import re
import textwrap

import pytest
from fastapi.testclient import TestClient

from app.jobs import tasks
from app.lessons import training_pipeline as training
from app.web.views import training_pipeline as view

PAGE = "/lessons/training-pipeline"


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_page_shows_figures_controls_and_the_run_loop_split_by_stage(client: TestClient) -> None:
    r = client.get(PAGE)
    assert r.status_code == 200
    assert r.text.count('class="plot-data"') == 7
    for name in ("epoch", "epochs", "learning_rate", "seed", "stage"):
        assert f'name="{name}"' in r.text
    assert 'id="train-run"' in r.text
    text = text_of(r.text)
    assert "dw = (2 * x * (y_pred - y)).mean()" in text  # stage 1: by hand
    assert "wt = torch.tensor([[w0]], requires_grad=True)" in text  # stage 2: autograd
    assert "linear = nn.Linear(1, 1)" in text  # stage 3: nn.Linear
    assert "optimizer = torch.optim.SGD(params, lr=lr)" in text  # the loop they share
    assert re.search(r'class="tp-stage current" data-stage="nn"', r.text)


def test_stage_code_is_cut_from_the_run_loop_itself() -> None:
    whole = textwrap.dedent(inspect.getsource(tasks.train_linear_regression))
    parts = view.stage_sources()
    assert parts["manual"].startswith('if cfg.stage == "manual":')
    assert parts["autograd"].startswith('if cfg.stage == "autograd":')
    assert parts["nn"].startswith("else:") and "nn.Linear(1, 1)" in parts["nn"]
    assert parts["loop"].startswith("loss_fn = nn.MSELoss()")
    flat = re.sub(r"\s+", " ", whole)
    for source in parts.values():
        assert re.sub(r"\s+", " ", source) in flat


def test_the_page_state_comes_from_the_url(client: TestClient) -> None:
    r = client.get(f"{PAGE}?stage=manual&epochs=40&learning_rate=0.25&seed=4&epoch=13")
    assert r.status_code == 200
    assert 'id="epoch" min="0" max="40" step="1" value="13"' in r.text
    assert re.search(r'name="stage" value="manual"\s+checked', r.text)
    assert 'name="learning_rate" id="learning_rate" value="0.25"' in r.text
    assert "Epoch 13 of 40" in r.text


def test_the_partial_follows_the_epoch(client: TestClient) -> None:
    first = client.get(f"{PAGE}/partial?epoch=3")
    later = client.get(f"{PAGE}/partial?epoch=4")
    assert first.status_code == later.status_code == 200
    assert "Epoch 3 of 100" in first.text and "Epoch 4 of 100" in later.text
    assert "<html" not in first.text and first.text.count('class="plot-data"') == 7


def test_json_twin_holds_the_run_loops_numbers(client: TestClient) -> None:
    r = client.get(
        "/api/lessons/training-pipeline/view?epochs=30&learning_rate=0.4&seed=2&epoch=30"
    )
    assert r.status_code == 200
    body = r.json()
    expected = training.record_stage("autograd", 30, 0.4, 2)
    assert body["result"]["stages"]["autograd"]["w"] == pytest.approx(expected["w"])
    assert body["result"]["current"]["w"] == pytest.approx(expected["w"][-1])
    assert body["params"]["epoch"] == 30 and body["params"]["stage"] == "nn"
    assert set(body["figures"]) >= {"fit", "loss", "surface", "stages"}


def test_a_diverging_run_is_valid_json_with_nulls_and_a_warning(client: TestClient) -> None:
    query = "epochs=500&learning_rate=1&epoch=500"
    body = client.get(f"/api/lessons/training-pipeline/view?{query}").json()
    assert body["result"]["diverged_at"] is not None
    assert body["result"]["current"]["w"] is None
    page = client.get(f"{PAGE}?{query}")
    assert page.status_code == 200
    assert "overflowed float32" in text_of(page.text)


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("epochs=501&epoch=1", "epochs must be at least 1 and at most 500"),
        ("learning_rate=0", "learning_rate must be above 0 and at most 1"),
        ("learning_rate=2", "learning_rate must be above 0 and at most 1"),
        ("learning_rate=nan", "learning_rate must be a finite number"),
        ("seed=-3", "seed must be at least 0"),
        ("epoch=101", "epoch must be between 0 and epochs (100)"),
        ("epochs=ten", "epochs must be a whole number"),
        ("stage=adam", "stage must be one of manual, autograd, nn"),
    ],
)
def test_bad_input_is_422_naming_the_bound(client: TestClient, query: str, needle: str) -> None:
    api = client.get(f"/api/lessons/training-pipeline/view?{query}")
    assert api.status_code == 422 and needle in api.json()["detail"]
    page = client.get(f"{PAGE}/partial?{query}", headers={"Accept": "text/html"})
    assert page.status_code == 422 and needle in html.unescape(page.text)
