"""The CNN lesson's figures: valid Plotly and strict JSON, and every heatmap cell and bar is what
NumPy (a cross-correlation written as loops, pooling by reshaping) computes from the lesson's
inputs on its own."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

from app.lessons import cnn
from app.lessons.images import sample_image
from app.viz import cnn as figures

LIMITS = cnn.CnnLimits()
Case = tuple[cnn.CnnParams, dict[str, Any]]  # the page's parameters and what explore() gave


def correlate(
    x: np.ndarray, k: np.ndarray, stride: int = 1, padding: int = 0, dilation: int = 1
) -> np.ndarray:
    """What PyTorch calls a convolution: x (C, H, W) and k (C, kh, kw) give one (H', W') map,
    the sum over channels of the elementwise products under the (dilated) kernel."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    _, kh, kw = k.shape
    span_h, span_w = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    rows = (x.shape[1] - span_h) // stride + 1
    cols = (x.shape[2] - span_w) // stride + 1
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            top, left = i * stride, j * stride
            window = x[:, top : top + span_h : dilation, left : left + span_w : dilation]
            out[i, j] = np.sum(window * k)
    return out


def pool(x: np.ndarray, kind: str, size: int, stride: int) -> np.ndarray:
    """Pooling of one (H, W) map over size x size windows, the floor dropping what is left."""
    rows, cols = (x.shape[0] - size) // stride + 1, (x.shape[1] - size) // stride + 1
    reducers: dict[str, Callable[..., Any]] = {"max": np.max, "min": np.min, "avg": np.mean}
    reduce = reducers[kind]
    return np.array(
        [
            [reduce(x[i * stride : i * stride + size, j * stride : j * stride + size])
             for j in range(cols)]
            for i in range(rows)
        ]
    )  # fmt: skip


def valid(every: dict[str, dict[str, Any]]) -> None:
    for name, spec in every.items():
        json.dumps(spec, allow_nan=False)
        go.Figure(spec)  # raises on any property plotly.js would not understand
        assert spec["data"], name


def picture(name: str) -> np.ndarray:
    """A sample picture as (3, H, W) float64 values 0..255."""
    return np.asarray(sample_image(name), dtype=np.float64).transpose(2, 0, 1)


CASES = {
    "defaults": cnn.CnnParams(),  # the notes' examples
    "strided": cnn.CnnParams(
        matrix=tuple(tuple(float(5 * r + c) for c in range(5)) for r in range(5)),
        kernel=((1, 0, -1), (2, 0, -2), (1, 0, -1)),
        stride=2,
        padding=1,
        image_kernel="sobel_x",
        image_stride=2,
        image_padding=1,
        image_pool="avg",
        image_pool_size=3,
        fmap=((1, 3, 2, 0, 5), (4, 2, 1, 5, 1), (0, 1, 7, 2, 3), (3, 2, 1, 0, 8), (6, 1, 2, 4, 0)),
        pool_size=3,
        pool_stride=1,
        out_channels=4,
        layer_kernel=2,
        layer_padding=1,
        seed=3,
    ),
    "dilated": cnn.CnnParams(
        matrix=tuple(tuple(float((r * 7 + c * 3) % 10) for c in range(7)) for r in range(6)),
        kernel=((1, 2), (3, 4)),
        dilation=3,
        image_kernel="[[0, -1, 0], [-1, 4, -1], [0, -1, 0]]",
        image_pool="min",
        out_channels=1,
        layer_kernel=5,
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    params = CASES[request.param]
    return params, cnn.explore(params, LIMITS, preview_side=64)


def test_every_figure_is_strict_json_and_valid_for_plotly(case: Case) -> None:
    _, result = case
    every = figures.figures(result)
    assert set(every) == {"window-output", "image-counts", "pooling", "layer"}
    valid(every)


def test_the_window_output_is_the_cross_correlation_of_the_matrix_and_kernel(case: Case) -> None:
    params, result = case
    spec = figures.window_figure(result["window"])
    expected = correlate(
        np.array(params.matrix, dtype=float)[None],
        np.array(params.kernel, dtype=float)[None],
        params.stride,
        params.padding,
        params.dilation,
    )
    (trace,) = spec["data"]
    np.testing.assert_allclose(trace["z"], expected, rtol=0, atol=1e-12)
    h, w = expected.shape
    assert spec["layout"]["title"]["text"] == f"F.conv2d output: {h}×{w}"
    assert spec["layout"]["yaxis"]["autorange"] == "reversed"  # row 0 on top, as printed
    assert ("texttemplate" in trace) == (h * w <= figures.LABELLED_CELLS)


def test_the_feature_counts_are_those_of_the_filtered_and_pooled_picture(case: Case) -> None:
    params, result = case
    x = picture(params.sample)
    _, weight = cnn.filter_bank(params.image_kernel, LIMITS)
    kernels = weight[:, 0].double().numpy()  # (3, k, k): one filter per channel, no sum
    conv = np.stack(
        [
            correlate(x[c : c + 1], kernels[c : c + 1], params.image_stride, params.image_padding)
            for c in range(3)
        ]
    )
    size = params.image_pool_size
    pooled = np.stack([pool(conv[c], params.image_pool, size, size) for c in range(3)])
    spec = figures.image_counts_figure(result["image"])
    (bars,) = spec["data"]
    assert bars["y"] == [x.size, conv.size, pooled.size]
    assert bars["text"] == [f"{v:,}" for v in (x.size, conv.size, pooled.size)]
    _, h, w = x.shape
    _, ch, cw = conv.shape
    _, ph, pw = pooled.shape
    assert bars["x"] == [
        f"input 3×{h}×{w}",
        f"conv 3×{ch}×{cw}",
        f"{params.image_pool} pool 3×{ph}×{pw}",
    ]
    # The lesson's own ranges for the maps agree with this independent filtering.
    for c, channel in enumerate(result["image"]["channels"]):
        assert channel["conv_range"] == pytest.approx([conv[c].min(), conv[c].max()], abs=1e-2)
        assert channel["pooled_range"] == pytest.approx(
            [pooled[c].min(), pooled[c].max()], abs=1e-2
        )


def test_the_pooling_figure_shows_max_min_and_mean_of_each_window_on_one_scale(case: Case) -> None:
    params, result = case
    spec = figures.pooling_figure(result["pooling"])
    fmap = np.array(params.fmap, dtype=float)
    stride = params.pool_stride or params.pool_size
    expected = [pool(fmap, kind, params.pool_size, stride) for kind in ("max", "min", "avg")]
    traces = spec["data"]
    assert [t["name"] for t in traces] == ["max pooling", "min pooling", "avg pooling"]
    for trace, want in zip(traces, expected, strict=True):
        np.testing.assert_allclose(trace["z"], want, rtol=0, atol=1e-12)
    everything = np.concatenate([e.ravel() for e in expected])
    for trace in traces:  # one colour scale: equal numbers get equal colours
        assert trace["zmin"] == pytest.approx(everything.min())
        assert trace["zmax"] == pytest.approx(everything.max())
    assert [t["showscale"] for t in traces] == [True, False, False]
    assert [(t["xaxis"], t["yaxis"]) for t in traces] == [("x", "y"), ("x2", "y2"), ("x3", "y3")]
    assert spec["layout"]["grid"]["rows"] == 1 and spec["layout"]["grid"]["columns"] == 3
    title = f"{params.pool_size}×{params.pool_size} windows, stride {stride}"
    assert spec["layout"]["title"]["text"] == title


def test_the_layer_figure_is_each_filter_over_r_g_and_b_plus_its_bias(case: Case) -> None:
    params, result = case
    layer = result["layer"]
    # The filters are nn.Conv2d's own seeded initialisation.
    torch.manual_seed(params.seed)
    conv = nn.Conv2d(3, params.out_channels, params.layer_kernel, padding=params.layer_padding)
    np.testing.assert_array_equal(layer["weight"], conv.weight.detach().numpy())
    assert conv.bias is not None
    np.testing.assert_array_equal(layer["bias"], conv.bias.detach().numpy())
    x = picture("tiny")  # the notes' 5x5 RGB picture
    weight = np.array(layer["weight"], dtype=np.float64)  # (out, 3, k, k)
    bias = np.array(layer["bias"], dtype=np.float64)
    expected = [
        correlate(x, weight[o], padding=params.layer_padding) + bias[o]
        for o in range(params.out_channels)
    ]
    spec = figures.layer_figure(layer)
    traces = spec["data"]
    assert len(traces) == params.out_channels
    for o, (trace, want) in enumerate(zip(traces, expected, strict=True)):
        np.testing.assert_allclose(trace["z"], want, rtol=1e-5, atol=1e-3)  # float32 sums
        assert trace["name"] == f"channel {o} (filter {o})"
    everything = np.concatenate([e.ravel() for e in expected])
    assert traces[0]["zmin"] == pytest.approx(everything.min(), abs=1e-3)
    assert traces[0]["zmax"] == pytest.approx(everything.max(), abs=1e-3)
    columns = min(params.out_channels, 3)
    grid = spec["layout"]["grid"]
    assert (grid["rows"], grid["columns"]) == (math.ceil(params.out_channels / columns), columns)
    assert spec["layout"]["height"] == 90 + 170 * grid["rows"]
