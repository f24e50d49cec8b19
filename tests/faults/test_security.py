"""Security headers on every kind of response, no inline script anywhere, and uploads judged by
their bytes, never by their name or declared type."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.lessons.images import sample_png
from app.lessons.registry import LESSONS
from tests.support import finished, launch

ROOT = Path(__file__).resolve().parents[2]


def check_headers(response: object, what: str) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    csp = headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert "script-src" in directives, f"{what}: no script-src in {csp!r}"
    assert directives["script-src"] == ["'self'"], f"{what}: script-src {directives['script-src']}"
    assert "'unsafe-inline'" not in directives.get("default-src", [])
    assert directives.get("object-src") == ["'none'"] and directives.get("frame-ancestors")
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("referrer-policy") == "same-origin", what


def test_every_kind_of_response_carries_the_security_headers(client: TestClient) -> None:
    run_id = launch(client, "linear-regression", {"epochs": 5})
    assert finished(client, run_id)["status"] == "completed"
    pages = ["/", "/runs", f"/runs/{run_id}", "/docs", *(lesson.path for lesson in LESSONS)]
    samples: dict[str, tuple[str, str, dict]] = {
        **{f"page {p}": ("GET", p, {"headers": {"accept": "text/html"}}) for p in pages},
        "partial": ("GET", f"{LESSONS[0].path}/partial", {}),
        "json": ("GET", "/api/limits", {}),
        "health": ("GET", "/healthz", {}),
        "openapi": ("GET", "/openapi.json", {}),
        "static": ("GET", "/static/js/dom.js", {}),
        "404 page": ("GET", "/no/such/page", {"headers": {"accept": "text/html"}}),
        "404 api": ("GET", "/api/runs/nope", {}),
        "405": ("DELETE", "/api/limits", {}),
        "422": ("POST", "/api/runs", {"json": {"task": "nope"}}),
        "413": ("POST", "/api/softmax", {"content": b"x" * (9 * 1024 * 1024)}),
        "415": ("POST", "/api/cnn/image", {"files": {"file": ("a.png", b"<svg/>", "image/png")}}),
        "download": ("GET", f"/api/runs/{run_id}/checkpoint", {}),
        "zip": ("GET", f"/api/runs/{run_id}/tensorboard", {}),
        "sse": ("GET", f"/api/runs/{run_id}/events", {}),
    }
    statuses = {}
    for what, (method, path, kwargs) in samples.items():
        response = client.request(method, path, **kwargs)
        statuses[what] = response.status_code
        check_headers(response, what)
        if what.startswith("page") or what in ("partial", "404 page"):
            # Every rendered page: scripts come from files only, never inline code.
            assert inline_code(response.text) == [], what
            assert what == "partial" or "<script" in response.text, what
    assert statuses["404 page"] == 404 and statuses["404 api"] == 404
    assert (statuses["405"], statuses["422"], statuses["413"], statuses["415"]) == (
        405,
        422,
        413,
        415,
    )
    assert all(statuses[k] == 200 for k in ("static", "download", "zip", "sse", "openapi"))


INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>")
HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"(href|src|action)\s*=\s*[\"']?\s*javascript:", re.IGNORECASE)


def inline_code(html: str) -> list[str]:
    return [m.group(0) for p in (INLINE_SCRIPT, HANDLER, JS_URL) for m in p.finditer(html)]


def test_no_template_has_inline_script_or_event_handlers() -> None:
    found = {
        str(path.relative_to(ROOT)): hits
        for path in sorted((ROOT / "templates").rglob("*.html"))
        if (hits := inline_code(path.read_text()))
    }
    assert found == {}


def test_the_scanner_catches_what_it_looks_for() -> None:
    assert inline_code("<script>alert(1)</script>")
    assert inline_code('<button onclick="x()">')
    assert inline_code('<a href="javascript:x()">')
    assert not inline_code('<script src="/static/js/app.js" defer></script>')
    assert not inline_code('<script type="application/json" id="d">{}</script>')


# ---- uploads: sniffed by content ---------------------------------------------------------------


def cnn_image(client: TestClient, name: str, data: bytes, content_type: str) -> object:
    return client.post("/api/cnn/image", files={"file": (name, data, content_type)})


def test_a_png_named_jpg_and_sent_as_jpeg_is_read_as_the_png_it_is(client: TestClient) -> None:
    png = sample_png("shapes")
    honest = cnn_image(client, "shapes.png", png, "image/png")
    lying = cnn_image(client, "x.jpg", png, "image/jpeg")
    assert honest.status_code == lying.status_code == 200, lying.text  # type: ignore[attr-defined]
    a, b = honest.json(), lying.json()  # type: ignore[attr-defined]
    assert a["input_shape"] == b["input_shape"] == [3, *Image.open(io.BytesIO(png)).size[::-1]]
    assert a == b


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "hello")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        b"just some text, not a picture\n",
        b"<!doctype html><html><script>alert(1)</script></html>",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        _zip(),
    ],
    ids=["text", "html", "svg", "zip"],
)
def test_a_file_named_png_that_is_not_a_picture_is_refused(client: TestClient, data: bytes) -> None:
    response = cnn_image(client, "x.png", data, "image/png")
    assert response.status_code == 415  # type: ignore[attr-defined]
    detail = response.json()["detail"]  # type: ignore[attr-defined]
    assert "not a picture" in detail and "PNG, JPEG" in detail


def test_the_checkpoint_endpoint_reads_content_not_names(client: TestClient) -> None:
    state = {"weight": torch.arange(6.0).reshape(2, 3), "bias": torch.zeros(2)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    response = client.post(
        "/api/checkpoints/inspect", files={"file": ("model.png", buffer.getvalue(), "image/png")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=True)
    assert [t["key"] for t in body["tensors"]] == list(loaded)
    assert [t["shape"] for t in body["tensors"]] == [list(v.shape) for v in loaded.values()]
    assert body["total_parameters"] == int(np.sum([v.numel() for v in loaded.values()]))

    picture = client.post(
        "/api/checkpoints/inspect",
        files={"file": ("model.pth", sample_png("flower"), "application/octet-stream")},
    )
    assert picture.status_code == 422
    assert "not a zip archive" in picture.json()["detail"]
