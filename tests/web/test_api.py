"""The app-wide JSON API through the app: health, limits, body size and malformed JSON, the
lesson list and an unknown lesson, OpenAPI, the sample pictures. Each lesson's own API is tested in
that lesson's file (test_<lesson>.py)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app


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


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    r = client.post("/api/softmax", content="{logits", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"]


def test_a_body_over_the_limit_is_413_and_names_the_limit(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, max_json_bytes=2048)
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/softmax", content=json.dumps({"logits": [0.5] * 2000}))
    assert r.status_code == 413
    assert "2048" in r.json()["detail"] and "max_json_bytes" in r.json()["detail"]


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
