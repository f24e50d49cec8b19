"""The CNN feature-maps figures: valid Plotly and strict JSON, and every panel, bar and cell is what
NumPy computes with the source model's weights on scikit-learn's digits (its own split, its own
convolution, ReLU, pooling, linear head and softmax), without the model's forward pass."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.datasets import load_digits

from app.jobs.transfer import pretrained
from app.lessons import cnn_feature_maps as lesson
from app.viz import cnn_feature_maps as figures

View = tuple[lesson.FeatureMapParams, dict[str, Any]]  # the page's parameters and its result
Digits = tuple[np.ndarray, np.ndarray]  # (359, 8, 8) images and (359,) labels
Weights = dict[str, np.ndarray]
SOURCE = lesson.ModelSource()  # the transfer lesson's source model: digits 0-4
CLASSES = [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def weights() -> Weights:
    return {k: v.numpy().astype(np.float64) for k, v in pretrained()[0].items()}


@pytest.fixture(scope="module")
def held_out() -> Digits:
    """The 359 held-out digits (seed-0 80/20 split) as (359, 8, 8) in 0..1, and their labels."""
    import torch  # only for the seeded permutation the split is drawn with

    digits = load_digits()
    order = torch.randperm(len(digits.target), generator=torch.Generator().manual_seed(0))
    held = order[: int(len(digits.target) * 0.2)].numpy()
    return digits.images[held] / 16.0, digits.target[held]


def conv_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A padding-1 3x3 conv layer and ReLU: x (N, C_in, H, W), w (C_out, C_in, 3, 3)."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = sliding_window_view(padded, (3, 3), axis=(2, 3))  # (N, C_in, H, W, 3, 3)
    out = np.einsum("nchwij,ocij->nohw", windows, w) + b[None, :, None, None]
    return np.maximum(out, 0.0)


def max_pool(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def forward(x: np.ndarray, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Both conv layers' maps, their pooled maps and the class probabilities of (N, 8, 8)."""
    first = conv_relu(x[:, None], weights["features.0.weight"], weights["features.0.bias"])
    pooled1 = max_pool(first)
    second = conv_relu(pooled1, weights["features.3.weight"], weights["features.3.bias"])
    pooled2 = max_pool(second)
    logits = (
        pooled2.reshape(len(x), -1) @ weights["classifier.weight"].T + weights["classifier.bias"]
    )
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return {
        "maps": [first, second],
        "pooled": [pooled1, pooled2],
        "probabilities": e / e.sum(axis=1, keepdims=True),
    }


@pytest.fixture(scope="module")
def every_digit(held_out: Digits, weights: Weights) -> dict[str, Any]:
    return forward(held_out[0], weights)


def valid(spec: dict[str, Any]) -> None:
    json.dumps(spec, allow_nan=False)
    go.Figure(spec)  # raises on any property plotly.js would not understand
    assert spec["data"]


VIEWS = [
    lesson.FeatureMapParams(),  # a held-out 4, layer 1, channel 0
    lesson.FeatureMapParams(image=42, layer=2, channel=5),
    lesson.FeatureMapParams(image=3, layer=2, channel=15),
]


@pytest.fixture(scope="module", params=VIEWS, ids=["defaults", "layer-2", "last-channel"])
def view(request: pytest.FixtureRequest) -> View:
    params = request.param
    result = lesson.explore(params, SOURCE)
    return params, result


def test_every_figure_is_strict_json_and_valid_for_plotly(view: View) -> None:
    params, result = view
    every = figures.figures(result)
    expected = {"prediction", "filters", "maps", "classes", "channel_classes", "channel_map"}
    assert set(every) == expected | ({"kernels"} if params.layer > 1 else set())
    for spec in every.values():
        valid(spec)


def test_the_prediction_bars_are_the_softmax_of_the_models_logits(
    view: View, held_out: Digits, every_digit: dict[str, Any]
) -> None:
    params, result = view
    spec = figures.figures(result)["prediction"]
    (bars,) = spec["data"]
    probabilities = every_digit["probabilities"][params.image]
    assert bars["x"] == [f"digit {c}" for c in CLASSES]
    np.testing.assert_allclose(bars["y"], probabilities, atol=1e-5)
    assert sum(bars["y"]) == pytest.approx(1.0, abs=1e-5)
    label = int(held_out[1][params.image])
    colours = bars["marker"]["color"]
    assert [c == figures.TRUE_CLASS for c in colours] == [d == label for d in CLASSES]
    assert bars["text"] == [f"{p:.1%}" for p in bars["y"]]


def test_the_filters_are_the_weights_or_their_sum_over_inputs_on_a_centred_scale(
    view: View, weights: Weights
) -> None:
    params, result = view
    spec = figures.figures(result)["filters"]
    w = weights[f"features.{3 * (params.layer - 1)}.weight"]  # (C_out, C_in, 3, 3)
    shown = w[:, 0] if params.layer == 1 else w.sum(axis=1)
    traces = spec["data"]
    assert len(traces) == len(shown)
    m = np.abs(shown).max()
    for trace, want in zip(traces, shown, strict=True):
        np.testing.assert_allclose(trace["z"], want, atol=1e-6)
        assert trace["zmin"] == pytest.approx(-m, rel=1e-6)
        assert trace["zmax"] == pytest.approx(m, rel=1e-6)
        assert ("texttemplate" in trace) == (len(shown) <= 8)  # layer 1's 8 print their weights
    # The focused channel is framed and its title bold.
    (frame,) = spec["layout"]["shapes"]
    suffix = "" if params.channel == 0 else str(params.channel + 1)
    assert frame["xref"] == f"x{suffix} domain"
    assert spec["layout"]["annotations"][params.channel]["text"] == f"<b>ch {params.channel}</b>"


def test_the_maps_are_relu_of_the_filters_over_the_digit_on_a_shared_scale(
    view: View, every_digit: dict[str, Any]
) -> None:
    params, result = view
    spec = figures.figures(result)["maps"]
    maps = every_digit["maps"][params.layer - 1][params.image]  # (C, H, W)
    traces = spec["data"]
    assert len(traces) == len(maps)
    for trace, want in zip(traces, maps, strict=True):
        np.testing.assert_allclose(trace["z"], want, atol=1e-5)
        assert trace["zmin"] == 0.0
        assert trace["zmax"] == pytest.approx(maps.max() if maps.max() > 0 else 1.0, abs=1e-5)
    assert spec["layout"]["grid"]["columns"] == min(len(maps), 4)


def test_the_class_means_are_each_digits_mean_activation_each_row_against_its_largest(
    view: View, held_out: Digits, every_digit: dict[str, Any]
) -> None:
    params, result = view
    maps = every_digit["maps"][params.layer - 1]  # (359, C, H, W)
    labels = held_out[1]
    means = np.stack([maps[labels == d].mean(axis=(0, 2, 3)) for d in range(10)]).T  # (C, 10)
    spec = figures.figures(result)["classes"]
    (heat,) = spec["data"]
    np.testing.assert_allclose(heat["customdata"], means, atol=1e-5)
    top = means.max(axis=1, keepdims=True)
    relative = np.divide(means, top, out=np.zeros_like(means), where=top > 0)
    np.testing.assert_allclose(heat["z"], relative, atol=1e-4)
    assert heat["x"] == [str(d) for d in range(10)]
    assert heat["y"] == [f"ch {k}" for k in range(len(means))]
    frame = spec["layout"]["shapes"][0]
    assert (frame["y0"], frame["y1"]) == (params.channel - 0.5, params.channel + 0.5)

    # The focused channel's bars are its row; its favourite digit stands out.
    (bars,) = figures.figures(result)["channel_classes"]["data"]
    row = means[params.channel]
    np.testing.assert_allclose(bars["y"], row, atol=1e-5)
    best = int(np.argmax(bars["y"]))
    colours = bars["marker"]["color"]
    assert colours[best] == figures.HIGHLIGHT
    assert colours.count(figures.HIGHLIGHT) == 1


def test_the_focused_channels_map_and_its_pooled_map(
    view: View, every_digit: dict[str, Any]
) -> None:
    params, result = view
    spec = figures.figures(result)["channel_map"]
    fmap = every_digit["maps"][params.layer - 1][params.image, params.channel]
    pooled = every_digit["pooled"][params.layer - 1][params.image, params.channel]
    shown, halved = spec["data"]
    np.testing.assert_allclose(shown["z"], fmap, atol=1e-5)
    np.testing.assert_allclose(halved["z"], pooled, atol=1e-5)
    np.testing.assert_allclose(
        halved["z"], np.array(shown["z"]).reshape(len(pooled), 2, len(pooled), 2).max(axis=(1, 3))
    )
    side = len(fmap)
    assert [shown["name"], halved["name"]] == [
        f"map {side}×{side}",
        f"MaxPool2d {side // 2}×{side // 2}",
    ]
    top = max(fmap.max(), 0.0)
    assert shown["zmax"] == halved["zmax"] == pytest.approx(top if top > 0 else 1.0, abs=1e-5)
    assert "texttemplate" in shown  # at most 64 cells: the numbers are printed


def test_the_kernels_figure_is_the_focused_channels_kernel_per_input(
    view: View, weights: Weights
) -> None:
    params, result = view
    every = figures.figures(result)
    if params.layer == 1:  # one grey input channel: nothing to show per input
        assert "kernels" not in every
        return
    kernels = weights["features.3.weight"][params.channel]  # (8, 3, 3)
    traces = every["kernels"]["data"]
    assert [t["name"] for t in traces] == [f"in {i}" for i in range(len(kernels))]
    m = np.abs(kernels).max()
    for trace, want in zip(traces, kernels, strict=True):
        np.testing.assert_allclose(trace["z"], want, atol=1e-6)
        assert (trace["zmin"], trace["zmax"]) == pytest.approx((-m, m), rel=1e-6)


def test_a_channel_that_never_fires_gets_an_empty_but_valid_scale(
    every_digit: dict[str, Any],
) -> None:
    """A ReLU that is 0 on every held-out digit (the source model has one in layer 2)."""
    peaks = every_digit["maps"][1].max(axis=(0, 2, 3))
    dead = [int(k) for k in np.flatnonzero(peaks <= 0)]
    if not dead:
        pytest.skip("no dead channel in this source model")
    channel = dead[0]
    result = lesson.explore(lesson.FeatureMapParams(layer=2, channel=channel), SOURCE)
    every = figures.figures(result)
    for spec in every.values():
        valid(spec)
    (bars,) = every["channel_classes"]["data"]
    assert bars["y"] == [0.0] * 10
    assert every["channel_classes"]["layout"]["yaxis"]["range"] == [0, 1]
    assert every["classes"]["data"][0]["z"][channel] == [0.0] * 10
    fmap, _ = every["channel_map"]["data"]
    assert fmap["zmax"] == 1.0 and np.all(np.array(fmap["z"]) == 0)
