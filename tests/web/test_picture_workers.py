"""Uploaded pictures are decoded and filtered in picture worker processes, never in the server.

Issue 11's reproductions: a few hundred bytes of WebP (or PNG, GIF, JPEG) declaring a picture at
the pixel limit, sent to /api/cnn/image and to /api/transforms/apply with twelve stages, once and
four at a time. The app runs in this process (TestClient), so the server's memory is this
process's: its peak RSS (VmHWM, reset through /proc/self/clear_refs) may grow by the bytes and the
answers, not by the pixels. The workers are real processes; their limits and peaks are read
from /proc/<pid>. Answers are checked against NumPy and against the lesson functions run here.
"""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient
from PIL import Image

from app.config import Settings
from app.lessons import cnn, transforms
from app.lessons.errors import LessonInputError
from app.lessons.images import SAMPLES, open_image, sample_png
from app.lessons.stage_previews import stage_preview
from app.lessons.transform_classes import Normalize, ToTensor
from app.lessons.transform_pipeline import TransformLimits, check_pipeline, pipeline_from_url
from app.main import create_app
from app.web.routes.lessons.cnn import ImageResponse
from app.web.routes.lessons.transforms import TransformsResponse
from tests.support import proc_status

MB = 1024**2
LIMIT_SIZE = (4096, 3072)  # width x height: exactly the default max_image_pixels
COLOUR = (120, 40, 200)
# What the server may add while it answers a picture at the limit: the upload, the JSON answer
# and Python's own churn. Decoding there would add at least the RGB pixels (36 MB) and in fact
# several float32 copies (about 480 MB, as the worker's peak below shows).
ONE_REQUEST_GROWTH = 40 * MB
FOUR_REQUESTS_GROWTH = 80 * MB
TWELVE_STAGES = [{"name": "to_tensor"}] + [{"name": "normalize", "mean": [0.5], "std": [0.5]}] * 11
FORMATS = ("WEBP", "PNG", "GIF", "JPEG")


def flat(fmt: str, size: tuple[int, int] = LIMIT_SIZE) -> bytes:
    """A picture of one colour: a few hundred bytes (WebP) to a few hundred kB (JPEG)."""
    out = io.BytesIO()
    options = {"lossless": True} if fmt == "WEBP" else {}
    Image.new("RGB", size, COLOUR).save(out, fmt, **options)
    return out.getvalue()


def rss_of(pid: int) -> int:
    """A process's RSS, or 0 once it has gone."""
    try:
        return proc_status(pid)["VmRSS"]
    except FileNotFoundError:
        return 0


def reset_peak(pid: int | str = "self") -> None:
    """Set the process's VmHWM back to its VmRSS (Linux's clear_refs "5")."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_growth(fn: Callable[[], Any], pid: int | str = "self") -> tuple[int, Any]:
    """How far a process's peak RSS rose above its RSS while ``fn`` ran, and what it returned."""
    reset_peak(pid)
    before = proc_status(pid)["VmRSS"]
    result = fn()
    grew = proc_status(pid)["VmHWM"] - before
    print(f"peak RSS of process {pid} rose {grew / MB:.1f} MB")  # the figures, with pytest -s
    return grew, result


def rlimits(pid: int) -> dict[str, list[str]]:
    """/proc/<pid>/limits by name: [soft, hard, unit]."""
    lines = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {line[:26].strip(): line[26:].split() for line in lines}


def picture_workers() -> list[int]:
    """This process's children that are picture workers (python -m app.workers.pictures)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"app.workers.pictures" in cmdline:
            found.append(int(stat.parent.name))
    return found


def post_cnn(c: TestClient, data: bytes, name: str = "p.webp", **form: Any) -> httpx.Response:
    fields = {"kernel": "edge", "pool": "max", "pool_size": 2, **form}
    return c.post(
        "/api/cnn/image",
        files={"file": (name, data, "application/octet-stream")},
        data={k: str(v) for k, v in fields.items()},
    )


def post_pipeline(
    c: TestClient, data: bytes, stages: list[dict[str, Any]], name: str = "p.webp"
) -> httpx.Response:
    return c.post(
        "/api/transforms/apply",
        files={"file": (name, data, "application/octet-stream")},
        data={"pipeline": json.dumps(stages)},
    )


def in_parallel(fn: Callable[[], httpx.Response], n: int) -> list[httpx.Response]:
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def one() -> None:
        response = fn()
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert len(responses) == n
    return responses


def assert_busy(response: httpx.Response) -> None:
    """A 429 with Retry-After that names one of the picture gate's settings."""
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    limit = response.json()["limit"]
    assert limit.startswith("picture_") and limit in response.json()["detail"]


def assert_filtered_at_the_limit(body: dict[str, Any]) -> None:
    """The edge filter and 2x2 max pooling of a one-colour picture at the pixel limit."""
    w, h = LIMIT_SIZE
    assert body["input_shape"] == [3, h, w]
    assert body["feature_counts"] == {
        "input": 3 * w * h,
        "conv": 3 * (w - 2) * (h - 2),
        "pooled": 3 * ((w - 2) // 2) * ((h - 2) // 2),
    }
    for channel in body["channels"]:  # 8 x centre - 8 neighbours of one value: exactly 0
        assert channel["conv_range"] == [0.0, 0.0] and channel["pooled_range"] == [0.0, 0.0]


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app with its default limits, except that one client may send four pictures at once
    (a TestClient is always the same client)."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("pictures") / "data",
        warm_lessons=False,
        program_prewarm=False,
        picture_max_per_client=4,
    )
    with TestClient(create_app(settings)) as client:
        # Imports, templates and a warm worker: what a first request costs once, not per picture.
        assert post_cnn(client, flat("PNG", (8, 8)), "p.png").status_code == 200
        assert post_pipeline(client, flat("PNG", (8, 8)), TWELVE_STAGES).status_code == 200
        yield client


# ---- the reproductions: a picture at the limit costs the server its bytes, not its pixels ------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_picture_at_the_pixel_limit_is_filtered_in_a_worker_and_the_server_grows_under_40_mb(
    c: TestClient, fmt: str
) -> None:
    data = flat(fmt)
    grew, response = peak_growth(lambda: post_cnn(c, data, f"p.{fmt.lower()}"))
    assert response.status_code == 200, response.text
    assert_filtered_at_the_limit(response.json())
    assert grew < ONE_REQUEST_GROWTH, f"the server grew {grew / MB:.0f} MB for {len(data)} bytes"


def test_twelve_stages_at_the_pixel_limit_run_in_a_worker_and_match_numpy(c: TestClient) -> None:
    data = flat("WEBP")
    assert len(data) < 1000  # the issue's file: a few hundred bytes
    grew, response = peak_growth(lambda: post_pipeline(c, data, TWELVE_STAGES))
    assert response.status_code == 200, response.text
    assert grew < ONE_REQUEST_GROWTH, f"the server grew {grew / MB:.0f} MB"
    stages = response.json()["stages"]
    assert len(stages) == 12 and stages[-1]["shape"] == [3, LIMIT_SIZE[1], LIMIT_SIZE[0]]
    values = np.array(COLOUR, dtype=np.float32) / np.float32(255)
    for stage in stages[1:]:  # each normalize is (x - 0.5) / 0.5, in float32 as torch does it
        values = (values - np.float32(0.5)) / np.float32(0.5)
        assert (stage["min"], stage["max"]) == (float(values.min()), float(values.max()))


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "JPEG"])
def test_twelve_image_stages_at_the_pixel_limit_work_for_every_format(
    c: TestClient, fmt: str
) -> None:
    data = flat(fmt)
    flips = [{"name": "horizontal_flip"}] * 12
    grew, response = peak_growth(lambda: post_pipeline(c, data, flips, f"p.{fmt.lower()}"))
    assert response.status_code == 200, response.text
    assert grew < ONE_REQUEST_GROWTH, f"the server grew {grew / MB:.0f} MB"
    last = response.json()["stages"][-1]
    assert last["shape"] == [LIMIT_SIZE[1], LIMIT_SIZE[0], 3] and last["kind"] == "image"


@pytest.mark.parametrize("route", ["cnn", "transforms"])
def test_four_pictures_at_the_limit_at_once_are_answered_or_429_and_the_server_grows_under_80_mb(
    c: TestClient, route: str
) -> None:
    data = flat("WEBP")

    def send() -> httpx.Response:
        if route == "cnn":
            return post_cnn(c, data)
        return post_pipeline(c, data, TWELVE_STAGES)

    grew, responses = peak_growth(lambda: in_parallel(send, 4))
    answered = [r for r in responses if r.status_code == 200]
    for response in responses:
        if response.status_code == 422:  # two at once on a busy machine: past the wall clock
            assert "(setting picture_max_seconds)" in response.json()["detail"]
        elif response.status_code != 200:
            assert_busy(response)  # waited past picture_queue_seconds for a worker
    assert answered or route == "transforms", [r.text for r in responses]
    for response in answered:
        if route == "cnn":
            assert_filtered_at_the_limit(response.json())
        else:
            assert len(response.json()["stages"]) == 12
    assert grew < FOUR_REQUESTS_GROWTH, f"the server grew {grew / MB:.0f} MB"
    assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("route", ["cnn", "transforms"])
def test_the_issues_4096_square_webp_is_413_naming_max_image_pixels(
    c: TestClient, route: str
) -> None:
    data = flat("WEBP", (4096, 4096))  # 16,777,216 pixels: the old limit, now over it
    response = post_cnn(c, data) if route == "cnn" else post_pipeline(c, data, TWELVE_STAGES)
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "16777216 pixels, over the limit of 12582912 pixels (setting max_image_pixels)" in detail


# ---- the workers: their limits, their peak, and what happens when one dies ------------------


def test_picture_workers_run_under_an_address_space_limit_with_no_core_dumps(
    c: TestClient,
) -> None:
    workers = picture_workers()
    assert workers, "no picture worker process is running"
    headroom = Settings().picture_max_memory_bytes
    for pid in workers:
        deadline = time.monotonic() + 120
        while "unlimited" in (limits := rlimits(pid))["Max address space"][0]:
            assert time.monotonic() < deadline, "the worker never limited itself"
            time.sleep(0.1)  # still warming up: it limits itself once its imports are done
        soft, hard = (int(v) for v in limits["Max address space"][:2])
        assert soft == hard
        # What it mapped once warm, plus the headroom: never more than what it maps now plus
        # the headroom (it only grows after), and counted from a warm worker, torch and all.
        assert soft - proc_status(pid)["VmSize"] <= headroom
        assert soft - headroom > 256 * 1024**2
        assert limits["Max core file size"][:2] == ["0", "0"]
    # Each request sets its worker's CPU budget (picture_max_seconds more than it has used):
    # the fixture's pictures went to at least one of them.
    assert any(rlimits(pid)["Max cpu time"][0] != "unlimited" for pid in workers)


def test_the_worst_picture_at_the_limit_peaks_under_half_the_worker_memory_limit(
    c: TestClient,
) -> None:
    """The figures the README gives: a 7x7 filter, padding 3 and min pooling (the most copies of
    the picture at once) and twelve stages, each at the pixel limit, measured in the worker."""
    limit = Settings().picture_max_memory_bytes
    kernel = json.dumps([[1.0] * 7] * 7)
    worst = {
        "cnn": lambda: post_cnn(c, flat("WEBP"), kernel=kernel, padding=3, pool="min"),
        "transforms": lambda: post_pipeline(c, flat("WEBP"), TWELVE_STAGES),
    }
    for name, send in worst.items():
        workers = picture_workers()
        rss = {pid: proc_status(pid)["VmRSS"] for pid in workers}
        for pid in workers:
            reset_peak(pid)
        assert send().status_code == 200
        peak = max(proc_status(pid)["VmHWM"] - rss[pid] for pid in workers)
        print(f"{name}: the worker's peak rose {peak / MB:.0f} MB ({peak / limit:.0%} of {limit})")
        assert peak < 0.55 * limit, f"{name} peaked at {peak / MB:.0f} MB"


def test_a_worker_killed_mid_picture_is_413_naming_the_memory_limit_and_the_next_works(
    c: TestClient,
) -> None:
    """SIGKILL, as the kernel's out-of-memory killer sends it, to the worker at work."""
    before = {pid: proc_status(pid)["VmRSS"] for pid in picture_workers()}
    result: dict[str, httpx.Response] = {}
    sender = threading.Thread(
        target=lambda: result.setdefault("r", post_pipeline(c, flat("WEBP"), TWELVE_STAGES))
    )
    sender.start()
    deadline = time.monotonic() + 60
    busy: list[int] = []
    while not busy:  # the worker that took the picture is the one whose memory grows
        assert time.monotonic() < deadline, "no worker took the picture"
        busy = [p for p in before if rss_of(p) > before[p] + 100 * MB]
        time.sleep(0.01)
    os.kill(busy[0], signal.SIGKILL)
    sender.join(60)
    response = result["r"]
    assert response.status_code == 413, response.text
    assert "picture_max_memory_bytes = 1073741824" in response.json()["detail"]
    assert post_cnn(c, flat("PNG", (8, 8)), "p.png").status_code == 200
    assert c.get("/healthz").status_code == 200


# ---- the answers are today's: the same JSON as the lesson functions give in-process ------------


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_the_cnn_answer_equals_the_lesson_function_run_in_process(
    c: TestClient, sample: str
) -> None:
    data = sample_png(sample)
    image = open_image(data, Settings().max_image_pixels).image
    for kernel, stride, padding, pool, size in [
        ("edge", 1, 0, "max", 2),
        ("blur", 2, 1, "avg", 1),
        ("[[0, -1, 0], [-1, 4, -1], [0, -1, 0]]", 1, 3, "min", 3),
    ]:
        if min(image.size) + 2 * padding < 3 + size:
            continue  # the 5x5 sample: too small for some windows (a 422 either way)
        response = post_cnn(
            c, data, "s.png", kernel=kernel, stride=stride, padding=padding, pool=pool,
            pool_size=size,
        )  # fmt: skip
        here = cnn.picture_features(
            image, kernel, stride, padding, pool, size, cnn.CnnLimits(), 384
        )
        assert response.status_code == 200, response.text
        assert response.json() == ImageResponse.model_validate(here).model_dump(mode="json")


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_the_transforms_answer_equals_the_lesson_function_run_in_process(
    c: TestClient, sample: str
) -> None:
    data = sample_png(sample)
    image = open_image(data, Settings().max_image_pixels).image
    raw = pipeline_from_url(transforms.DEFAULT_PIPELINE) + [
        {"name": "multiply", "factor": 3},
        {"name": "horizontal_flip"},
    ]
    limits = TransformLimits()
    steps = check_pipeline(raw, limits)
    response = post_pipeline(c, data, raw, "s.png")
    here = transforms.run_pipeline(image, steps, limits, 256, True)
    expected = TransformsResponse(
        stages=here["stages"],
        input=here["input"],
        compose=here["compose"],
        pipeline=[step.as_json() for step in steps],
    )
    assert response.status_code == 200, response.text
    assert response.json() == expected.model_dump(mode="json")


def test_the_page_partial_is_drawn_from_the_worker_too(c: TestClient) -> None:
    response = c.post(
        "/lessons/cnn/image",
        files={"file": ("p.webp", flat("WEBP"), "image/webp")},
        data={"kernel": "edge"},
    )
    assert response.status_code == 200
    assert "4096" in response.text and "3072" in response.text


# ---- the lesson functions hold fewer copies of a picture, and give the same numbers -----------


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("pool", cnn.POOL_KINDS)
@pytest.mark.parametrize(("stride", "padding", "size"), [(1, 0, 1), (1, 3, 2), (2, 1, 3)])
def test_filtering_a_uint8_picture_gives_the_float_formulas_numbers_bit_for_bit(
    pool: str, stride: int, padding: int, size: int
) -> None:
    picture = noise(37, 29)
    weight = torch.randn(3, 1, 5, 5, generator=torch.Generator().manual_seed(stride))
    maps = cnn.image_features(
        cnn.picture_tensor(picture, torch.uint8), weight, stride, padding, pool, size
    )
    # What the lesson computed before issue 11: a float picture copied to channels last, and
    # min pooling as -max_pool2d(-x) with a copy for each minus.
    x = cnn.picture_tensor(picture).unsqueeze(0).to(memory_format=torch.channels_last)
    conv = F.conv2d(x, weight, stride=stride, padding=padding, groups=3).contiguous()
    pooled = {
        "max": lambda: F.max_pool2d(conv, size, size),
        "min": lambda: -F.max_pool2d(-conv, size, size),
        "avg": lambda: F.avg_pool2d(conv, size, size),
    }[pool]()
    assert torch.equal(maps["conv"], conv[0]) and torch.equal(maps["pooled"], pooled[0])
    assert maps["conv"].is_contiguous()


def test_a_uint8_picture_made_float_is_the_float_picture_with_the_same_layout() -> None:
    picture = noise(19, 11)
    floats = cnn.picture_tensor(picture)
    again = cnn.picture_tensor(picture, torch.uint8).float()
    assert torch.equal(floats, again) and floats.stride() == again.stride()


def test_to_tensor_and_normalize_give_the_formulas_numbers_bit_for_bit() -> None:
    picture = noise(41, 23, seed=3)
    tensor = ToTensor()(picture)
    before = torch.from_numpy(np.array(picture)).permute(2, 0, 1).contiguous().float().div(255)
    assert torch.equal(tensor, before) and tensor.is_contiguous()
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    normalized = Normalize(mean, std)(tensor)
    expected = (tensor - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    assert torch.equal(normalized, expected)
    assert torch.equal(tensor, before)  # the input is left as it was


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_a_stage_with_inf_or_nan_is_still_refused(bad: float) -> None:
    tensor = torch.rand(3, 8, 8)
    tensor[1, 4, 5] = bad
    with pytest.raises(LessonInputError, match="overflowed float32"):
        stage_preview(tensor, 256)
