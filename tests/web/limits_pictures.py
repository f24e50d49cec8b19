"""The picture workers' limits (issue 11), gathered by ``test_limits_enforced.py``.

Each case runs real picture worker processes (``app.workers.pictures``) behind the app's real
picture gate; a request is held at work by a real picture at the pixel limit, never a stub.
"""

from __future__ import annotations

import io
import json
import threading
import time

import httpx
from fastapi.testclient import TestClient
from PIL import Image

from tests.web.limit_helpers import Make, ok, picture, png, refused

# A lossless WebP of one colour at the default pixel limit (4096 x 3072): about 550 bytes.
SIDE = (4096, 3072)


def flat_webp(size: tuple[int, int] = SIDE) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (120, 40, 200)).save(out, "WEBP", lossless=True)
    return out.getvalue()


def slow_picture(c: TestClient) -> httpx.Response:
    """A filter that keeps a worker busy for a second or more: a 7x7 kernel, padding 3 and min
    pooling on a picture at the pixel limit."""
    kernel = "[" + ",".join(["[" + ",".join(["1"] * 7) + "]"] * 7) + "]"
    form = {"kernel": kernel, "padding": "3", "pool": "min", "pool_size": "2"}
    files = {"file": ("big.webp", flat_webp(), "image/webp")}
    return c.post("/api/cnn/image", files=files, data=form)


def slow_pipeline(c: TestClient) -> httpx.Response:
    """Twelve stages at the pixel limit (to_tensor, then eleven normalize): several seconds."""
    stages = [{"name": "to_tensor"}] + [{"name": "normalize", "mean": [0.5], "std": [0.5]}] * 11
    files = {"file": ("big.webp", flat_webp(), "image/webp")}
    return c.post("/api/transforms/apply", files=files, data={"pipeline": json.dumps(stages)})


class InFlight:
    """``slow_picture`` sent from a thread; ``started()`` returns once the gate admitted it."""

    def __init__(self, c: TestClient) -> None:
        self.c = c
        self.response: httpx.Response | None = None
        self.thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        self.response = slow_picture(self.c)

    def started(self) -> InFlight:
        gate = self.c.app.state.picture_gate  # type: ignore[attr-defined]
        self.thread.start()
        deadline = time.monotonic() + 30
        while gate.admitted < 1:
            assert time.monotonic() < deadline, "the slow picture was never admitted"
            time.sleep(0.005)
        return self

    def finished(self) -> httpx.Response:
        self.thread.join(120)
        assert self.response is not None
        return self.response


def refused_busy(response: httpx.Response, setting: str) -> None:
    """A 429 with Retry-After whose detail names ``setting`` and its value."""
    body = refused(response, setting, 429)
    assert body["limit"] == setting
    assert int(response.headers["retry-after"]) >= 1


def case_picture_max_waiting(make: Make) -> None:
    c = make(picture_workers=1, picture_max_waiting=0, picture_max_per_client=4)
    first = InFlight(c).started()
    refused_busy(picture(c, png(8, 8)), "picture_max_waiting")
    assert "picture_max_waiting = 0" in picture(c, png(8, 8)).json()["detail"]
    assert first.finished().status_code == 200
    assert ok(picture(c, png(8, 8)))["input_shape"] == [3, 8, 8]


def case_picture_max_per_client(make: Make) -> None:
    c = make(picture_workers=1, picture_max_per_client=1)
    first = InFlight(c).started()
    refused_busy(picture(c, png(8, 8)), "picture_max_per_client")
    assert "picture_max_per_client = 1" in picture(c, png(8, 8)).json()["detail"]
    assert first.finished().status_code == 200
    assert ok(picture(c, png(8, 8)))["input_shape"] == [3, 8, 8]


def case_picture_max_seconds(make: Make) -> None:
    c = make(picture_max_seconds=0.2)
    body = refused(slow_pipeline(c), "picture_max_seconds", 422)
    assert "0.2 s" in body["detail"]
    assert ok(picture(c, png(8, 8)))["input_shape"] == [3, 8, 8]  # a fresh worker answers


def case_picture_max_memory_bytes(make: Make) -> None:
    c = make(picture_max_memory_bytes=64 * 1024**2)
    body = refused(slow_picture(c), "picture_max_memory_bytes", 413)
    assert str(64 * 1024**2) in body["detail"]
    assert ok(picture(c, png(8, 8)))["input_shape"] == [3, 8, 8]
