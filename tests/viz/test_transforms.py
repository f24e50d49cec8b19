"""The Transforms page's histogram: valid Plotly and strict JSON at every stage, and its bars are
the counts NumPy finds in the picture or tensor that stage holds, rebuilt here with Pillow and
NumPy alone (no transform class of the lesson)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from app.lessons import transforms
from app.lessons.images import sample_image
from app.lessons.stage_previews import HISTOGRAM_BINS
from app.lessons.transform_pipeline import TransformLimits
from app.viz import transforms as figures

LIMITS = TransformLimits()
BINS = HISTOGRAM_BINS


def explore(p: str, sample: str = "flower", stage: int = -1) -> dict[str, Any]:
    params = transforms.TransformParams(p=p, sample=sample, stage=stage)
    return transforms.explore(params, LIMITS, 64)


def valid(spec: dict[str, Any]) -> None:
    json.dumps(spec, allow_nan=False)
    go.Figure(spec)  # raises on any property plotly.js would not understand
    assert spec["data"]


def image_counts(image: Image.Image) -> list[list[int]]:
    """Per channel, how many pixels fall in each run of 8 values (0-7, 8-15, ...)."""
    pixels = np.asarray(image)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    edges = np.arange(0, 257, 256 // BINS)
    return [np.histogram(pixels[:, :, c], bins=edges)[0].tolist() for c in range(pixels.shape[2])]


def tensor_counts(array: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """Bin edges over the tensor's own range, and each channel's counts."""
    low, high = float(array.min()), float(array.max())
    flat = high == low  # one bin, widened to [low - 0.5, high + 0.5]
    edges = np.array([low - 0.5, high + 0.5]) if flat else np.linspace(low, high, BINS + 1)
    span = (edges[0], edges[-1])
    counts = [np.histogram(c, bins=len(edges) - 1, range=span)[0].tolist() for c in array]
    return edges, counts


def assert_bars(
    spec: dict[str, Any], edges: np.ndarray, counts: list[list[int]], names: list[str]
) -> None:
    bars = spec["data"]
    assert [b["name"] for b in bars] == names
    centres = (edges[:-1] + edges[1:]) / 2
    for bar, expected in zip(bars, counts, strict=True):
        assert bar["type"] == "bar"
        np.testing.assert_allclose(bar["x"], centres, rtol=1e-12, atol=1e-12)
        assert bar["y"] == expected
        assert bar["width"] == pytest.approx(edges[1] - edges[0])
        assert bar["marker"]["color"] == figures.CHANNEL_COLOURS.get(bar["name"], "#8172b3")


def to_tensor(image: Image.Image) -> np.ndarray:
    """(H, W, C) bytes as a float32 (C, H, W) array of 0..1, as ToTensor promises."""
    pixels = np.asarray(image)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
    return pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)


def test_the_default_pipeline_draws_each_stages_values_as_pillow_and_numpy_count_them() -> None:
    """resize 64x64, grayscale, rotate 30, to_tensor, normalize 0.5/0.5 on the flower."""
    picture = sample_image("flower")
    resized = picture.resize((64, 64), Image.Resampling.BILINEAR)
    grey = resized.convert("L")
    rotated = grey.rotate(30, resample=Image.Resampling.BILINEAR, fillcolor=0)
    tensor = to_tensor(rotated)
    normalized = (tensor - np.float32(0.5)) / np.float32(0.5)
    rgb = ["R", "G", "B"]
    images = [(picture, rgb), (resized, rgb), (grey, ["L"]), (rotated, ["L"])]
    tensors = [tensor, normalized]
    result = explore(transforms.DEFAULT_PIPELINE, stage=0)
    assert len(result["stages"]) == 5 and result["error"] is None
    for index in range(6):
        spec = figures.figures({**result, "stage": index})["histogram"]
        valid(spec)
        if index < 4:
            image, names = images[index]
            assert_bars(spec, np.arange(0, 257, 8, dtype=float), image_counts(image), names)
            assert sum(spec["data"][0]["y"]) == image.width * image.height
            assert spec["layout"]["xaxis"]["title"]["text"] == "pixel value (uint8, 0–255)"
        else:
            array = tensors[index - 4]
            edges, counts = tensor_counts(array)
            assert_bars(spec, edges, counts, ["L"])
            assert sum(counts[0]) == array.size
            assert spec["layout"]["xaxis"]["title"]["text"] == "tensor value (float32)"
        title = spec["layout"]["title"]["text"]
        call = "the picture" if index == 0 else result["stages"][index - 1]["call"]
        assert title == ("The input picture" if index == 0 else f"Stage {index} · {call}")
    # Normalize with mean 0.5 and std 0.5 sends [0, 1] to [-1, 1]: the last bars span it.
    last = figures.figures(result | {"stage": 5})["histogram"]["data"][0]
    assert -1.0 <= last["x"][0] < last["x"][-1] <= 1.0


def test_an_rgb_tensor_pipeline_draws_three_channels_of_the_normalized_values() -> None:
    p = "center_crop:40x48,horizontal_flip,to_tensor,normalize:0.485_0.456_0.406:0.229_0.224_0.225"
    result = explore(p, sample="shapes")
    assert result["stage"] == 4
    spec = figures.figures(result)["histogram"]
    valid(spec)
    picture = sample_image("shapes")  # 96 x 96: the 48-wide, 40-high window starts at (24, 28)
    crop = picture.crop((24, 28, 72, 68)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)
    array = (to_tensor(crop) - mean) / std
    assert array.shape == (3, 40, 48)
    edges, counts = tensor_counts(array)
    assert_bars(spec, edges, counts, ["R", "G", "B"])
    assert spec["layout"]["barmode"] == "overlay"


def test_a_constant_tensor_is_one_bar_of_width_one() -> None:
    result = explore("resize:16,to_tensor,multiply:0", sample="checkerboard")
    spec = figures.figures(result)["histogram"]
    valid(spec)
    assert [bar["name"] for bar in spec["data"]] == ["R", "G", "B"]
    for bar in spec["data"]:  # every value 0: the range is widened to [-0.5, 0.5], one bin
        assert bar["x"] == [0.0] and bar["y"] == [16 * 16] and bar["width"] == 1.0


def test_a_pipeline_that_stops_at_an_error_draws_the_last_stage_it_reached() -> None:
    result = explore("grayscale,to_tensor,resize:32")  # Resize refuses the tensor
    assert result["error"]["stage"] == 3 and len(result["stages"]) == 2
    spec = figures.figures(result)["histogram"]
    valid(spec)
    grey = sample_image("flower").convert("L")
    edges, counts = tensor_counts(to_tensor(grey))
    assert_bars(spec, edges, counts, ["L"])
    assert spec["layout"]["title"]["text"] == "Stage 2 · ToTensor()"
