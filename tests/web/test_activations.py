"""The Activation functions lesson over HTTP: the page's partial, and the activations API
(curves, vanishing gradients, dead ReLUs), values checked against NumPy, bad input as clear 4xx."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient


def test_the_partial_is_the_changing_part_of_the_page(client: TestClient) -> None:
    r = client.get("/lessons/activations/partial?name=relu&depth=5")
    assert r.status_code == 200
    assert "<html" not in r.text and 'data-slot="fig-curve"' in r.text
    assert "Vanishing gradients through 5 layers" in r.text


# -- /api/activations -----------------------------------------------------------------------------


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
