"""The CNN lesson's numbers, each checked against SciPy's correlate2d or a NumPy reduction."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy.signal import correlate2d

from app.lessons import cnn
from app.lessons.errors import LessonInputError, LimitExceeded
from app.lessons.images import sample_image

LIMITS = cnn.CnnLimits()
NOTES_INPUT = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
NOTES_KERNEL = [[1, 0], [0, 1]]
NOTES_FMAP = [[1, 3, 2, 0], [4, 2, 1, 5], [0, 1, 7, 2], [3, 2, 1, 0]]


def dilate(kernel: np.ndarray, d: int) -> np.ndarray:
    """A kernel with d - 1 zeros between its taps: what dilation means."""
    kh, kw = kernel.shape
    out = np.zeros(((kh - 1) * d + 1, (kw - 1) * d + 1))
    out[::d, ::d] = kernel
    return out


def reference(x: np.ndarray, kernel: np.ndarray, stride: int, padding: int, d: int) -> np.ndarray:
    """Cross-correlation the SciPy way: pad, correlate each channel ('valid'), sum, subsample."""
    x3 = x if x.ndim == 3 else x[None]
    k3 = kernel if kernel.ndim == 3 else kernel[None]
    total = sum(
        correlate2d(np.pad(xc, padding), dilate(kc, d), mode="valid")
        for xc, kc in zip(x3, k3, strict=True)
    )
    return np.asarray(total)[::stride, ::stride]


def block_reduce(x: np.ndarray, size: int, stride: int, kind: str) -> np.ndarray:
    windows = sliding_window_view(x, (size, size))[::stride, ::stride]
    reduce = {"max": np.max, "min": np.min, "avg": np.mean}[kind]
    return reduce(windows, axis=(-1, -2))


# ---- the notes' numbers ------------------------------------------------------------------------


def test_the_notes_3x3_input_and_2x2_filter_give_a_2x2_output_in_four_steps() -> None:
    result = cnn.convolution(NOTES_INPUT, NOTES_KERNEL, 1, 0, 1, LIMITS)
    assert result["output"] == [[6, 8], [12, 14]]
    assert result["output_shape"] == [2, 2]
    steps = result["steps"]
    assert [(s["row"], s["col"]) for s in steps] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert steps[0]["window"] == [[1, 2], [4, 5]]
    assert steps[0]["products"] == [[1, 0], [0, 5]]
    assert [s["sum"] for s in steps] == [6, 8, 12, 14]
    assert [f["value"] for f in result["formula"]] == [2, 2]
    assert result["formula"][0]["text"].endswith("= 2")


def test_max_pooling_the_notes_4x4_map_gives_2x2_and_16_features_become_4() -> None:
    result = cnn.pooling(NOTES_FMAP, "max", 2, None, LIMITS)
    assert result["output"] == [[4, 5], [3, 7]]
    assert result["stride"] == 2
    page = cnn.explore(cnn.CnnParams(), LIMITS)["pooling"]
    assert page["features"] == [16, 4]
    assert page["outputs"]["min"] == [[1, 0], [0, 0]]
    assert page["outputs"]["avg"] == [[2.5, 2], [1.5, 2.5]]


def test_a_5x5_rgb_picture_with_a_3x3_filter_has_75_then_27_features() -> None:
    result = cnn.picture_features(sample_image("tiny"), "edge", 1, 0, "max", 1, LIMITS)
    assert result["feature_counts"] == {"input": 75, "conv": 27, "pooled": 27}
    assert result["input_shape"] == [3, 5, 5]
    assert [c["conv_shape"] for c in result["channels"]] == [[3, 3]] * 3


def test_six_output_channels_are_six_filters_that_each_span_all_three_colours() -> None:
    layer = cnn.explore(cnn.CnnParams(), LIMITS)["layer"]
    assert layer["weight_shape"] == [6, 3, 3, 3]
    assert layer["out_shape"] == [6, 3, 3]
    assert layer["features"] == [75, 54, 6]
    assert layer["parameters"] == 6 * 3 * 3 * 3 + 6


# ---- the sliding window against SciPy ----------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_convolution_equals_scipy_correlate2d_for_random_shapes_strides_paddings_dilations(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    channels = int(rng.integers(1, 4))
    h, w = (int(v) for v in rng.integers(3, 13, size=2))
    d = int(rng.integers(1, 4))
    kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
    padding = int(rng.integers(0, 4))
    while (kh - 1) * d + 1 > h + 2 * padding or (kw - 1) * d + 1 > w + 2 * padding:
        d = max(1, d - 1)
        kh, kw = max(1, kh - 1), max(1, kw - 1)
    stride = int(rng.integers(1, 5))
    x = rng.normal(size=(channels, h, w)).round(3)
    k = rng.normal(size=(channels, kh, kw)).round(3)
    flat = channels == 1 and seed % 2 == 0  # half the single-channel cases as plain H×W lists
    x_in, k_in = (x[0], k[0]) if flat else (x, k)
    result = cnn.convolution(x_in.tolist(), k_in.tolist(), stride, padding, d, LIMITS)
    want = reference(x, k, stride, padding, d)
    np.testing.assert_allclose(result["output"], want, rtol=1e-12, atol=1e-12)
    assert result["output_shape"] == list(want.shape)
    assert [f["value"] for f in result["formula"]] == list(want.shape)  # the formula is the shape
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    assert len(result["steps"]) == want.size
    for step in result["steps"]:
        rows = slice(step["top"], step["top"] + (kh - 1) * d + 1, d)
        cols = slice(step["left"], step["left"] + (kw - 1) * d + 1, d)
        window = padded[:, rows, cols]
        got_window = np.asarray(step["window"]).reshape(window.shape)
        np.testing.assert_allclose(got_window, window)
        np.testing.assert_allclose(np.asarray(step["products"]).reshape(window.shape), window * k)
        assert step["sum"] == pytest.approx(want[step["row"], step["col"]], abs=1e-12)


def test_a_kxk_kernel_with_a_multichannel_input_is_used_on_every_channel_and_summed() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 5, 6))
    k = rng.normal(size=(2, 2))
    result = cnn.convolution(x.tolist(), k.tolist(), 1, 1, 1, LIMITS)
    np.testing.assert_allclose(result["output"], reference(x, np.stack([k] * 3), 1, 1, 1))


@pytest.mark.parametrize(
    ("n", "k", "s", "p", "d"),
    [(3, 2, 1, 0, 1), (5, 3, 2, 1, 1), (7, 3, 3, 2, 2), (12, 7, 4, 3, 1), (6, 2, 1, 0, 3)],
)
def test_the_output_size_formula_matches_what_conv2d_returns(
    n: int, k: int, s: int, p: int, d: int
) -> None:
    out = torch.nn.functional.conv2d(
        torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d
    )
    assert cnn.output_size(n, k, s, p, d) == out.shape[-1]
    formula = cnn.size_formula("H", n, k, s, p, d)
    assert formula["value"] == out.shape[-1]
    assert formula["text"].endswith(f"= {out.shape[-1]}")


# ---- pooling against NumPy ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", cnn.POOL_KINDS)
@pytest.mark.parametrize("seed", range(5))
def test_pooling_equals_numpy_block_reductions(kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(2, 13, size=2))
    size = int(rng.integers(1, min(h, w) + 1))
    stride = None if seed % 2 else int(rng.integers(1, 5))
    x = rng.normal(size=(h, w))
    result = cnn.pooling(x.tolist(), kind, size, stride, LIMITS)
    want = block_reduce(x, size, stride or size, kind)
    np.testing.assert_allclose(result["output"], want, rtol=1e-12)
    assert result["output_shape"] == list(want.shape)
    assert [f["value"] for f in result["formula"]] == list(want.shape)


def test_non_overlapping_max_pooling_is_a_reshape_and_max() -> None:
    x = np.arange(36.0).reshape(6, 6) % 7
    result = cnn.pooling(x.tolist(), "max", 3, None, LIMITS)
    np.testing.assert_array_equal(result["output"], x.reshape(2, 3, 2, 3).max(axis=(1, 3)))


def test_pool_cover_marks_the_rows_that_the_floor_drops() -> None:
    cover = cnn.pool_cover(5, 5, 2, 2)
    assert cover[4] == [-1] * 5 and [row[4] for row in cover] == [-1] * 5
    assert cover[0][:2] == [0, 0] and cover[3][3] == 3


# ---- filters on a picture ----------------------------------------------------------------------


@pytest.mark.parametrize("preset", list(cnn.PRESETS))
def test_every_preset_filters_each_channel_like_correlate2d_then_pools(preset: str) -> None:
    image = sample_image("shapes")
    pixels = np.asarray(image, dtype=np.float64).transpose(2, 0, 1)  # (3, H, W)
    kernel = np.asarray(cnn.PRESETS[preset][1], dtype=np.float64)
    name, weight = cnn.filter_bank(preset, LIMITS)
    assert name == preset and weight.shape == (3, 1, 3, 3)
    maps = cnn.image_features(cnn.picture_tensor(image), weight, 2, 1, "avg", 2)
    for c in range(3):
        want = correlate2d(np.pad(pixels[c], 1), kernel, mode="valid")[::2, ::2]
        np.testing.assert_allclose(maps["conv"][c].numpy(), want, rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(
            maps["pooled"][c].numpy(), block_reduce(want, 2, 2, "avg"), rtol=1e-4, atol=1e-2
        )


def test_typed_filters_may_differ_per_channel() -> None:
    typed = "[[[1]], [[0]], [[-1]]]"
    name, weight = cnn.filter_bank(typed, LIMITS)
    assert name == "typed"
    result = cnn.picture_features(sample_image("gradient"), typed, 1, 0, "min", 2, LIMITS)
    pixels = np.asarray(sample_image("gradient"), dtype=np.float64)
    assert result["channels"][0]["conv_range"] == [pixels[..., 0].min(), pixels[..., 0].max()]
    assert result["channels"][1]["conv_range"] == [0, 0]
    assert result["channels"][2]["conv_range"] == [-128, -128]


def decode(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def test_map_previews_are_min_max_scaled_per_map_and_shrunk_to_the_preview_side() -> None:
    maps = torch.stack([torch.arange(12.0).view(3, 4) - 5, torch.zeros(3, 4)])  # -5..6, flat
    first, flat = (decode(url) for url in cnn.map_pngs(maps, 384, [cnn.VIRIDIS] * 2))
    assert first.size == (4, 3) and first.mode == "P"
    index = np.asarray(first)
    assert index.min() == 0 and index.max() == 255  # the smallest value dark, the largest bright
    assert (np.asarray(flat) == 128).all()  # a flat map is one mid colour, not 0 / 0
    (big,) = cnn.map_pngs(torch.rand(1, 1000, 500), 100, [cnn.VIRIDIS])
    assert decode(big).size == (50, 100)  # blocks of 10×10 pixels averaged
    values = torch.tensor([[[0.0, 255.0], [51.0, 102.0]]])
    (fixed,) = cnn.map_pngs(values, 384, [cnn.CHANNEL_LUTS["R"]], (0.0, 255.0))
    assert np.asarray(decode(fixed)).tolist() == [[0, 255], [51, 102]]  # a fixed 0..255 scale


def test_small_maps_also_come_back_as_numbers() -> None:
    result = cnn.picture_features(sample_image("tiny"), "identity", 1, 0, "max", 3, LIMITS)
    pixels = np.asarray(sample_image("tiny"), dtype=np.float64)
    np.testing.assert_allclose(result["channels"][1]["conv_values"], pixels[1:4, 1:4, 1])
    assert result["channels"][1]["pooled_values"] == [[pixels[1:4, 1:4, 1].max()]]
    big = cnn.picture_features(sample_image("flower"), "identity", 1, 0, "max", 2, LIMITS)
    assert big["channels"][0]["conv_values"] is None


# ---- nn.Conv2d ---------------------------------------------------------------------------------


def test_conv_layer_output_is_the_sum_over_channels_of_correlate2d_plus_bias() -> None:
    picture = cnn.picture_tensor(sample_image("tiny"))
    layer = cnn.conv_layer(picture, 4, 3, 1, seed=7)
    weight = layer["weight"].numpy().astype(np.float64)
    bias = layer["bias"].numpy()
    x = np.pad(picture.numpy().astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    for o in range(4):
        want = sum(correlate2d(x[c], weight[o, c], mode="valid") for c in range(3)) + bias[o]
        np.testing.assert_allclose(layer["out"][o].numpy(), want, rtol=1e-4, atol=1e-3)
    assert layer["per_channel"].sum().item() + bias[0] == pytest.approx(
        layer["out"][0, 0, 0].item(), abs=1e-3
    )
    np.testing.assert_allclose(
        layer["pooled"].numpy(), block_reduce_channels(layer["out"].numpy(), 2), rtol=1e-6
    )


def block_reduce_channels(x: np.ndarray, size: int) -> np.ndarray:
    return np.stack([block_reduce(c, size, size, "max") for c in x])


def test_the_same_seed_gives_the_same_filters() -> None:
    picture = cnn.picture_tensor(sample_image("tiny"))
    a = cnn.conv_layer(picture, 2, 3, 0, seed=1)["weight"]
    b = cnn.conv_layer(picture, 2, 3, 0, seed=1)["weight"]
    assert torch.equal(a, b)


def test_the_snippet_reproduces_the_page() -> None:
    params = cnn.CnnParams(kernel=((1, -1), (2, 0)), stride=1, padding=1, out_channels=3)
    namespace: dict[str, object] = {}
    exec(compile(cnn.snippet(params), "snippet", "exec"), namespace)
    page = cnn.explore(params, LIMITS)
    out = namespace["out"]
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out[0, 0].numpy(), page["window"]["output"])
    conv = namespace["conv"]
    assert isinstance(conv, torch.nn.Conv2d)
    np.testing.assert_allclose(conv.weight.detach().numpy(), page["layer"]["weight"], rtol=1e-6)


# ---- bad input: each names the problem and the limit --------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cnn.convolution([[1] * 13], [[1]], 1, 0, 1, LIMITS), "max_matrix_side"),
        (lambda: cnn.convolution(NOTES_INPUT, [[1] * 8], 1, 0, 1, LIMITS), "max_kernel_size"),
        (lambda: cnn.convolution([[[1]]] * 5, [[1]], 1, 0, 1, LIMITS), "max_conv_channels"),
        (lambda: cnn.convolution(NOTES_INPUT, NOTES_KERNEL, 5, 0, 1, LIMITS), "max_stride"),
        (lambda: cnn.convolution(NOTES_INPUT, NOTES_KERNEL, 1, 4, 1, LIMITS), "max_padding"),
        (lambda: cnn.convolution(NOTES_INPUT, NOTES_KERNEL, 1, 0, 4, LIMITS), "max_dilation"),
        (lambda: cnn.pooling(NOTES_FMAP, "max", 17, None, LIMITS), "max_pool_size"),
        (lambda: cnn.check_layer(17, 3, 0, 0, LIMITS), "max_out_channels"),
    ],
)
def test_limits_are_named(call: object, message: str) -> None:
    with pytest.raises(LimitExceeded, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cnn.convolution([[1, 2], [3]], [[1]], 1, 0, 1, LIMITS), "ragged"),
        (lambda: cnn.convolution([[float("nan")]], [[1]], 1, 0, 1, LIMITS), "finite"),
        (lambda: cnn.convolution([[1]], [[1, 2]], 1, 0, 1, LIMITS), "spans 2 columns"),
        (lambda: cnn.convolution(NOTES_INPUT, NOTES_KERNEL, 0, 0, 1, LIMITS), "at least 1"),
        (lambda: cnn.convolution(NOTES_INPUT, NOTES_KERNEL, 1, -1, 1, LIMITS), "at least 0"),
        (lambda: cnn.convolution([1, 2], [[1]], 1, 0, 1, LIMITS), "H×W"),
        (lambda: cnn.pooling(NOTES_FMAP, "median", 2, None, LIMITS), "max, min, avg"),
        (lambda: cnn.filter_bank("wobble", LIMITS), "not a preset"),
        (lambda: cnn.filter_bank("[[1, 2]", LIMITS), "not valid JSON"),
        (lambda: cnn.filter_bank("[[[1]], [[1]]]", LIMITS), "needs 3"),
    ],
)
def test_bad_input_is_refused_with_a_reason(call: object, message: str) -> None:
    with pytest.raises(LessonInputError, match=message):
        call()  # type: ignore[operator]
