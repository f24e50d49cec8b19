"""The JSON API through the app: values checked against NumPy, bad input as clear 4xx."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_healthz_is_ok(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_limits_lists_every_setting_limit(client: TestClient, settings: Settings) -> None:
    limits = client.get("/api/limits").json()
    assert limits["max_logits"] == settings.max_logits
    assert limits["max_depth"] == settings.max_depth
    assert set(limits) == set(settings.limits())


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("EXPLORER_MAX_LOGITS", "7")
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        assert client.get("/api/limits").json()["max_logits"] == 7
        r = client.post("/api/softmax", json={"logits": [0.0] * 8, "target": 0})
    assert r.status_code == 422 and "max_logits" in r.json()["detail"]


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


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    r = client.post("/api/softmax", content="{logits", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"]


def test_a_body_over_the_limit_is_413_and_names_the_limit(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, max_json_bytes=2048)
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/softmax", content=json.dumps({"logits": [0.5] * 2000}))
    assert r.status_code == 413
    assert "2048" in r.json()["detail"] and "max_json_bytes" in r.json()["detail"]


def test_activation_relu_on_the_contract_grid(client: TestClient) -> None:
    r = client.get("/api/activations/relu", params={"x_min": -2, "x_max": 2, "points": 5}).json()
    assert r["x"] == [-2, -1, 0, 1, 2] and r["y"] == [0, 0, 0, 1, 2]
    assert r["derivative"] == [0, 0, 0, 1, 1]


def test_activation_tanh_derivative_is_one_minus_tanh_squared(client: TestClient) -> None:
    r = client.get("/api/activations/tanh", params={"x_min": -3, "x_max": 3, "points": 61}).json()
    x = np.array(r["x"])
    assert np.allclose(r["y"], np.tanh(x), atol=1e-6)
    assert np.allclose(r["derivative"], 1 - np.tanh(x) ** 2, atol=1e-6)


def test_activation_leaky_relu_uses_the_slope(client: TestClient) -> None:
    params = {"x_min": -1, "x_max": 1, "points": 3, "negative_slope": 0.2}
    r = client.get("/api/activations/leaky_relu", params=params).json()
    assert np.allclose(r["y"], [-0.2, 0, 1]) and np.allclose(r["derivative"][0], 0.2)


@pytest.mark.parametrize(
    ("path", "params", "needle"),
    [
        ("/api/activations/swish", {}, "Unknown activation"),
        ("/api/activations/relu", {"points": 10**9}, "max_points"),
        ("/api/activations/relu", {"points": "many"}, "points"),
        ("/api/activations/relu", {"x_min": 3, "x_max": 1}, "below x_max"),
        ("/api/activations/relu", {"x_min": "nan"}, "x_min"),
        ("/api/activations/relu", {"x_max": "inf"}, "x_max"),
        ("/api/activations/leaky_relu", {"negative_slope": 5}, "negative_slope"),
    ],
)
def test_activation_bad_input_is_422(
    client: TestClient, path: str, params: dict, needle: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422
    assert needle in r.json()["detail"]


def test_vanishing_sigmoid_shrinks_toward_the_input(client: TestClient) -> None:
    body = {"activation": "sigmoid", "depth": 10, "width": 8, "seed": 0}
    r = client.post("/api/activations/vanishing", json=body).json()
    layers = sorted(r["layers"], key=lambda layer: layer["index"])
    assert [layer["index"] for layer in layers] == list(range(10))
    assert layers[0]["grad_norm"] < layers[-1]["grad_norm"] / 100


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"activation": "sigmoid", "depth": 10**6, "width": 8, "seed": 0}, "max_depth"),
        ({"activation": "sigmoid", "depth": 3, "width": 10**6, "seed": 0}, "max_width"),
        ({"activation": "sigmoid", "depth": 0, "width": 8, "seed": 0}, "at least 1"),
        ({"activation": "cube", "depth": 3, "width": 8, "seed": 0}, "Unknown activation"),
        ({"activation": "relu", "depth": 3, "width": 8, "seed": 2**80}, "seed"),
    ],
)
def test_vanishing_bad_input_is_422(client: TestClient, body: dict, needle: str) -> None:
    r = client.post("/api/activations/vanishing", json=body)
    assert r.status_code == 422
    assert needle in r.json()["detail"]


def test_dead_relu_units_get_no_gradient(client: TestClient) -> None:
    relu = client.post("/api/activations/dead-relu", json={"dead_units": 4, "steps": 20}).json()
    leaky = client.post(
        "/api/activations/dead-relu", json={"negative_slope": 0.1, "dead_units": 4, "steps": 20}
    ).json()
    assert relu["moved"][:4] == [0, 0, 0, 0] and all(m > 0 for m in leaky["moved"][:4])
    assert len(relu["loss"]) == 20


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


def test_lesson_view_unknown_is_404(client: TestClient) -> None:
    r = client.get("/api/lessons/nope/view")
    assert r.status_code == 404 and "no lesson called 'nope'" in r.json()["detail"]


def test_lessons_list_is_the_notes_order(client: TestClient) -> None:
    slugs = [lesson["slug"] for lesson in client.get("/api/lessons").json()]
    assert slugs == [
        "tensors", "autograd", "training-pipeline", "datasets", "transforms",
        "softmax-cross-entropy", "activations", "cnn", "transfer-learning", "tracking",
        "saving-loading",
    ]  # fmt: skip


def test_openapi_lists_every_contract_route_with_models(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path, method in [
        ("/healthz", "get"),
        ("/api/limits", "get"),
        ("/api/softmax", "post"),
        ("/api/activations/{name}", "get"),
        ("/api/activations/vanishing", "post"),
    ]:
        operation = paths[path][method]
        assert "200" in operation["responses"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert "requestBody" in paths["/api/softmax"]["post"]
    assert client.get("/docs").status_code == 200


def test_a_streamed_body_over_the_limit_is_413(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, max_json_bytes=2048)

    def chunks():
        yield b'{"logits": ['
        for _ in range(500):
            yield b"0.5, "
        yield b"0.5]}"

    with TestClient(create_app(settings)) as client:
        r = client.post("/api/softmax", content=chunks())
        assert r.status_code == 413 and "max_json_bytes" in r.json()["detail"]
        assert client.get("/healthz").status_code == 200


def test_sample_pictures_are_listed_and_served_as_png(client: TestClient) -> None:
    from app.lessons.images import sample_png

    listed = client.get("/api/images/samples").json()
    assert {s["name"] for s in listed} >= {"flower", "tiny"}
    for s in listed:
        r = client.get(s["url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content == sample_png(s["name"])
    r = client.get("/api/images/samples/cat.png")
    assert r.status_code == 422 and "Unknown sample" in r.json()["detail"]
