"""Requests and checks the limit tests share (``test_limits_enforced.py`` and ``limits_*.py``)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import torch
from fastapi.testclient import TestClient
from PIL import Image

Make = Callable[..., TestClient]


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 40, 200)).save(out, "PNG")
    return out.getvalue()


def saved(obj: Any) -> bytes:
    out = io.BytesIO()
    torch.save(obj, out)
    return out.getvalue()


def refused(response: httpx.Response, name: str, status: int = 422) -> dict[str, Any]:
    """A 4xx of ``status`` whose detail (or limit/field extra) names ``name``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    named = [str(body.get("detail")), str(body.get("limit")), str(body.get("field"))]
    assert any(name in text for text in named), body
    return body


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ---- requests ---------------------------------------------------------------------------------


def softmax(c: TestClient, logits: Any, temperature: float = 1.0) -> httpx.Response:
    return c.post("/api/softmax", json={"logits": logits, "temperature": temperature})


def curve(c: TestClient, **query: Any) -> httpx.Response:
    return c.get("/api/activations/relu", params=query)


def convolve(c: TestClient, matrix: Any, kernel: Any, **extra: Any) -> httpx.Response:
    return c.post("/api/cnn/convolve", json={"input": matrix, "kernel": kernel, **extra})


def square(n: int, value: float = 1.0) -> list[list[float]]:
    return [[value] * n for _ in range(n)]


def picture(c: TestClient, data: bytes) -> httpx.Response:
    return c.post("/api/cnn/image", files={"file": ("p.png", data, "image/png")})


def transform(c: TestClient, pipeline: list[dict[str, Any]]) -> httpx.Response:
    form = {"pipeline": json.dumps(pipeline), "sample": "tiny"}
    return c.post("/api/transforms/apply", data=form)


def batches(c: TestClient, **body: Any) -> httpx.Response:
    return c.post("/api/data/batches", json=body)


def view(c: TestClient, slug: str, **query: Any) -> httpx.Response:
    return c.get(f"/api/lessons/{slug}/view", params=query)


def inspect(c: TestClient, data: bytes) -> httpx.Response:
    return c.post("/api/checkpoints/inspect", files={"file": ("m.pth", data)})


def program(c: TestClient, code: str) -> httpx.Response:
    return c.post("/api/tensors/run", json={"code": code})


def sandbox_refuses(make: Make, setting: str, value: Any, over: str, under: str) -> None:
    """A ``program_*`` setting lowered: ``over`` is a 422 naming the sandbox's short name."""
    c = make(**{setting: value})
    short = setting.removeprefix("program_")
    body = refused(program(c, over), short)
    assert body["limit"] == short
    assert ok(program(c, under))["error"] is None
