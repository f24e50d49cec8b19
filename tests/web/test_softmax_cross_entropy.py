"""The Softmax and cross-entropy lesson over HTTP: the page and its state from the URL, and
POST /api/softmax and the JSON twin, values checked against NumPy, bad input as clear 4xx."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def html_text(html: str) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded."""
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", html))


def test_a_live_lesson_page_shows_figures_controls_and_its_real_code(client: TestClient) -> None:
    html = client.get("/lessons/softmax-cross-entropy").text
    assert 'id="controls"' in html and 'name="temperature"' in html
    assert html.count('class="plot-data"') == 7
    text = html_text(html)
    assert "def softmax_cross_entropy" in text
    assert "loss = nn.CrossEntropyLoss()(scaled, target)" in text


def test_the_page_state_comes_from_the_url(client: TestClient) -> None:
    html = client.get("/lessons/softmax-cross-entropy?logits=1,2,3,4&target=3&temperature=2").text
    assert html.count('data-logit="') == 4
    assert re.search(r'name="target" value="3"\s+checked', html)
    assert 'id="temperature" min="0.1" max="5" step="0.05" value="2.0"' in html


# -- POST /api/softmax and the JSON twin ----------------------------------------------------------


def test_softmax_the_notes_example(client: TestClient) -> None:
    r = client.post("/api/softmax", json={"logits": [2.0, 1.0, 0.1], "target": 0}).json()
    p = np_softmax(np.array([2.0, 1.0, 0.1]))
    assert np.allclose(r["probabilities"], p, atol=1e-6)
    assert np.allclose(r["log_probabilities"], np.log(p), atol=1e-6)
    assert r["loss"] == pytest.approx(-np.log(p[0]), rel=1e-6)
    assert np.allclose(r["gradient"], p - np.eye(3)[0], atol=1e-6)


def test_softmax_batch_and_temperature(client: TestClient) -> None:
    z = np.array([[1.0, 3.0, 0.0], [2.0, -1.0, 0.5]])
    body = {"logits": z.tolist(), "target": [1, 2], "temperature": 2.0}
    r = client.post("/api/softmax", json=body).json()
    p = np_softmax(z / 2.0)
    assert np.allclose(r["probabilities"], p, atol=1e-6)
    expected_loss = -np.mean(np.log(p[[0, 1], [1, 2]]))
    assert r["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert np.allclose(r["gradient"], (p - np.eye(3)[[1, 2]]) / (2 * 2.0), atol=1e-6)


def test_softmax_without_target_has_no_loss(client: TestClient) -> None:
    r = client.post("/api/softmax", json={"logits": [1.0, 2.0]}).json()
    assert r["loss"] is None and r["gradient"] is None
    assert np.allclose(r["probabilities"], np_softmax(np.array([1.0, 2.0])))


def test_softmax_large_logits_stay_finite(client: TestClient) -> None:
    r = client.post("/api/softmax", json={"logits": [1000.0, 999.0, 998.0], "target": 2}).json()
    assert np.allclose(r["probabilities"], np_softmax(np.array([1000.0, 999.0, 998.0])))
    assert r["loss"] == pytest.approx(-np.log(np_softmax(np.array([2.0, 1.0, 0.0]))[2]), rel=1e-4)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"logits": ["a", "b"], "target": 0}, "logits"),
        ({"logits": [], "target": 0}, "empty"),
        ({"logits": [1.0, 2.0], "target": 5}, "0 to 1"),
        ({"logits": [1.0, 2.0], "target": 0, "temperature": 0}, "temperature"),
        ({"logits": [[1.0, 2.0], [3.0, 4.0, 5.0]], "target": [0, 0]}, "same number"),
        ({"logits": [0.0] * 1_000_000, "target": 0}, "max_logits"),
        ({"logits": [1.0, 1e300], "target": 0}, "max_abs_logit"),
        ({"target": 0}, "logits"),
    ],
)
def test_softmax_bad_input_is_422_naming_the_problem(
    client: TestClient, body: dict, needle: str
) -> None:
    r = client.post("/api/softmax", json=body)
    assert r.status_code == 422
    assert needle in r.json()["detail"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_softmax_nan_and_inf_are_422(client: TestClient, literal: str) -> None:
    raw = '{"logits": [1.0, LITERAL], "target": 0}'.replace("LITERAL", literal)
    r = client.post("/api/softmax", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "finite" in r.json()["detail"]


def test_lesson_view_json_twin_matches_the_api(client: TestClient) -> None:
    view = client.get(
        "/api/lessons/softmax-cross-entropy/view", params={"logits": "1, 2, 3", "target": "2"}
    ).json()
    api = client.post("/api/softmax", json={"logits": [1, 2, 3], "target": 2}).json()
    assert np.allclose(view["result"]["probabilities"], api["probabilities"])
    assert view["result"]["loss"] == pytest.approx(api["loss"])
    assert set(view["figures"]) >= {"probabilities", "negative-log", "gradient", "batch"}
    probs_trace = view["figures"]["probabilities"]["data"][0]["y"]
    assert np.allclose(probs_trace, api["probabilities"])
