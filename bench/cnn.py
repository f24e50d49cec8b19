"""Filters on a picture: POST /api/cnn/image end to end, next to the same work in one process.

The app side is the whole trip a learner's upload makes to a real uvicorn server: a multipart
PNG upload (read with the byte limit), the picture gate, the bytes sent to a picture worker
process that decodes them behind the pixel guard, runs conv2d with groups=3 and 2x2 max pooling
and encodes nine PNG previews (three channels, three filtered maps, three pooled maps) as base64
data URLs, and the JSON answer. The bare side is the same work written plainly in this process,
one torch thread: Pillow decode, conv2d, pool, PNG encode of the same previews. Before timing,
the bare previews are checked pixel for pixel against the app's, so both sides provably make the
same pictures.

A second group measures the picture worker itself on the worst requests at the pixel limit: how
far its peak RSS (VmHWM in /proc/<pid>/status, reset through clear_refs) rises above its RSS at
rest, next to the address space it may add (picture_max_memory_bytes): the ratio is the share of
that limit the request used. These are the README's figures.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import time
from pathlib import Path

import httpx
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from app.config import Settings
from app.lessons.cnn import CHANNEL_LUTS, PRESETS, VIRIDIS, CnnLimits
from app.lessons.images import sample_image
from app.lessons.transform_pipeline import TransformLimits, check_pipeline
from app.workers import pictures
from bench.common import Context, Row, compare, serve

GROUP = "picture filters end to end (median of n; bare = decode + conv2d + pool + PNG encode)"
SIZES = (256, 1024, 2048)
PREVIEW_SIDE = Settings().cnn_preview_side  # the server runs with the default settings


def picture_png(side: int) -> bytes:
    """A photo-like PNG: the flower sample scaled up, with sensor-like noise so it compresses
    like a photograph (a flat drawing would make decoding unrealistically cheap)."""
    image = sample_image("flower").resize((side, side), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(side)
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 4, (side, side, 3)).astype(np.int16)
    buffer = io.BytesIO()
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def encode(
    maps: torch.Tensor, luts: list[bytes], lo: torch.Tensor, hi: torch.Tensor
) -> list[bytes]:
    """(3, H, W) maps -> PNG previews: block means down to the preview side, lo..hi -> 0..255."""
    factor = math.ceil(max(maps.shape[1:]) / PREVIEW_SIDE)
    if factor > 1:
        maps = F.avg_pool2d(maps.unsqueeze(0), factor, ceil_mode=True)[0]
    span = hi - lo
    scaled = torch.where(span > 0, (maps - lo) / span.clamp_min(1e-30), 0.5)
    index = (scaled * 255).round().clamp(0, 255).to(torch.uint8).contiguous()
    out = []
    for plane, lut in zip(index, luts, strict=True):
        image = Image.frombytes("L", (plane.shape[1], plane.shape[0]), plane.numpy().tobytes())
        image.putpalette(lut)
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        out.append(buffer.getvalue())
    return out


def bare(data: bytes) -> list[bytes]:
    """Decode, filter each channel with the edge preset, 2x2 max-pool, encode the previews."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    pixels = torch.from_numpy(np.asarray(image).copy())  # (H, W, 3) uint8
    x = pixels.permute(2, 0, 1).float().unsqueeze(0)  # (1, 3, H, W)
    x = x.to(memory_format=torch.channels_last)  # the fast depthwise layout, as the app uses
    weight = torch.tensor(PRESETS["edge"][1], dtype=torch.float32).expand(3, 1, 3, 3)
    conv = F.conv2d(x, weight, groups=3).contiguous()  # (1, 3, H-2, W-2)
    pooled = F.max_pool2d(conv, 2)  # (1, 3, (H-2)/2, (W-2)/2)
    channel_luts = [CHANNEL_LUTS[c] for c in "RGB"]
    fixed = torch.tensor([0.0]).view(1, 1, 1), torch.tensor([255.0]).view(1, 1, 1)
    out = encode(x[0], channel_luts, *fixed)
    for maps in (conv[0], pooled[0]):
        lo, hi = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
        out += encode(maps, [VIRIDIS] * 3, lo, hi)
    return out


def pixels_of(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def app_previews(body: dict[str, object]) -> list[bytes]:
    channels = body["channels"]
    assert isinstance(channels, list)
    return [
        base64.b64decode(channel[key].split(",", 1)[1])
        for key in ("input_png", "conv_png", "pooled_png")
        for channel in channels
    ]


MEMORY_GROUP = (
    "a picture worker's peak at the pixel limit (peak RSS rise; bare = picture_max_memory_bytes)"
)


def _worker_pids() -> list[int]:
    """This process's picture workers (children running python -m app.workers.pictures)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"app.workers.pictures" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _vm(pid: int) -> dict[str, int]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {
        k: int(v.split()[0]) * 1024 for k, _, v in (x.partition(":") for x in lines) if "Vm" in k
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flat_webp(width: int, height: int) -> bytes:
    """The issue's upload: a lossless WebP of one colour, a few hundred bytes at any size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 40, 200)).save(buffer, "WEBP", lossless=True)
    return buffer.getvalue()


def worker_peaks() -> list[Row]:
    """The worst requests at the pixel limit, each in one real picture worker."""
    settings = Settings(picture_workers=1, picture_max_seconds=120.0)
    limit = settings.picture_max_memory_bytes
    width = 4096
    height = settings.max_image_pixels // width
    data = flat_webp(width, height)
    seven = json.dumps([[1.0] * 7] * 7)
    twelve = [{"name": "to_tensor"}] + [{"name": "normalize", "mean": [0.5], "std": [0.5]}] * 11
    steps = tuple(check_pipeline(twelve, TransformLimits()))
    cases = {
        "POST /api/cnn/image, 7×7 filter, padding 3, 2×2 min pool": (
            "cnn_image",
            pictures.CnnImageParams(seven, 1, 3, "min", 2, CnnLimits(), settings.cnn_preview_side),
        ),
        "POST /api/cnn/image, edge, 2×2 max pool": (
            "cnn_image",
            pictures.CnnImageParams("edge", 1, 0, "max", 2, CnnLimits(), settings.cnn_preview_side),
        ),
        "POST /api/transforms/apply, to_tensor + 11 × normalize": (
            "transforms",
            pictures.TransformsParams(steps, TransformLimits(), settings.transform_preview_side),
        ),
    }
    rows = []
    for name, (kind, params) in cases.items():
        pictures.shutdown()  # a fresh worker for each case: nothing left from the one before
        pictures.get_pool(settings).warm(1, wait=True)
        (pid,) = _worker_pids()
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM back to VmRSS
        rest, cpu, started = _vm(pid), _cpu_seconds(pid), time.perf_counter()
        pictures.ask(kind, data, params, settings)
        wall, cpu = time.perf_counter() - started, _cpu_seconds(pid) - cpu
        peak = _vm(pid)
        rows.append(
            Row(
                group=MEMORY_GROUP,
                name=f"{name}, {width}×{height} WebP",
                unit="B",
                app=peak["VmHWM"] - rest["VmRSS"],
                bare=limit,
                notes=f"{len(data)} B in; worker at rest {rest['VmRSS'] / 2**20:.0f} MB RSS; "
                f"address space +{(peak['VmPeak'] - rest['VmSize']) / 2**20:.0f} MB; "
                f"{cpu:.1f} s CPU, {wall:.1f} s wall",
            )
        )
    pictures.shutdown()
    return rows


def run(ctx: Context) -> list[Row]:
    torch.set_num_threads(1)  # as the server's torch_threads setting
    rows: list[Row] = []
    with serve(ctx.tmp / "cnn") as base, httpx.Client(base_url=base, timeout=60) as client:

        def post(data: bytes) -> httpx.Response:
            response = client.post(
                "/api/cnn/image",
                files={"file": ("picture.png", data, "image/png")},
                data={"kernel": "edge", "pool": "max", "pool_size": "2"},
            )
            response.raise_for_status()
            return response

        for side in SIZES:
            data = picture_png(side)
            answer = post(data)
            body = answer.json()
            counts = body["feature_counts"]
            assert counts["input"] == 3 * side * side and counts["conv"] == 3 * (side - 2) ** 2
            mine, theirs = bare(data), app_previews(body)
            assert len(mine) == len(theirs) == 9
            for a, b in zip(mine, theirs, strict=True):
                assert np.array_equal(pixels_of(a), pixels_of(b)), "bare and app previews differ"
            app_t, bare_t = compare(
                lambda data=data: post(data),
                lambda data=data: bare(data),
                ctx.repeat(40 if side < 2048 else 15),
                2,
                ctx.budget(12.0 if side < 2048 else 20.0),
            )
            rows.append(
                Row.timed(
                    GROUP,
                    f"POST /api/cnn/image {side}×{side} PNG, edge + 2×2 max pool",
                    app_t,
                    bare_t,
                    f"{len(data) / 1e6:.2f} MB in, {len(answer.content) / 1e3:.0f} kB JSON out; "
                    "previews equal",
                    upload_bytes=len(data),
                    response_bytes=len(answer.content),
                )
            )
    return rows + worker_peaks()
