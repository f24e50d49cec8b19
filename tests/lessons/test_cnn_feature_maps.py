"""CNN feature maps: every number the page shows, recomputed another way (SciPy's correlate2d,
NumPy pooling and statistics, plain torch.nn.functional with the model's own weights)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import correlate2d
from torch import nn

from app.jobs.classifier import DigitsCNN, digits_split
from app.jobs.tasks import TrainResult, save_checkpoint
from app.jobs.transfer import DigitsNet, pretrained
from app.lessons import cnn_feature_maps as fm
from app.lessons.errors import LessonInputError

SOURCE = fm.ModelSource()


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    """The source model's weights as NumPy arrays, straight from the transfer task."""
    return {k: v.numpy().astype(np.float64) for k, v in pretrained()[0].items()}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels = digits_split(0)[1].tensors
    return images.numpy()[:, 0].astype(np.float64), labels.numpy()  # (359, 8, 8), (359,)


def conv_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A padding-1 conv layer and ReLU with SciPy: x (C_in, H, W), w (C_out, C_in, 3, 3)."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    out = np.stack(
        [
            sum(correlate2d(padded[i], w[o, i], mode="valid") for i in range(x.shape[0])) + b[o]
            for o in range(w.shape[0])
        ]
    )
    return np.maximum(out, 0.0)


def max_pool(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling of (C, H, W) by reshaping."""
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def source_maps(x: np.ndarray, weights: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Layer 1 and layer 2 maps of one 8x8 digit, by SciPy and NumPy only."""
    first = conv_relu(x[None], weights["features.0.weight"], weights["features.0.bias"])
    second = conv_relu(max_pool(first), weights["features.3.weight"], weights["features.3.bias"])
    return first, second


def test_layer_one_maps_are_relu_of_the_filters_correlated_with_the_digit(weights, digits):
    images, labels = digits
    for image in (0, 7, 123, 358):
        result = fm.explore(fm.FeatureMapParams(image=image, layer=1), SOURCE)
        first, _ = source_maps(images[image], weights)
        assert np.allclose(result["maps"], first, atol=1e-5)
        assert np.allclose(result["pooled"], max_pool(first), atol=1e-5)
        assert np.allclose(result["filters"], weights["features.0.weight"][:, 0])
        assert np.allclose(result["bias"], weights["features.0.bias"])
        assert result["input"]["label"] == labels[image]
        assert np.allclose(result["input"]["pixels"], images[image])


def test_layer_two_reads_layer_ones_pooled_maps_and_sums_its_kernels(weights, digits):
    images, _ = digits
    result = fm.explore(fm.FeatureMapParams(image=42, layer=2, channel=5), SOURCE)
    first, second = source_maps(images[42], weights)
    assert np.allclose(result["maps"], second, atol=1e-5)
    assert np.allclose(result["pooled"], max_pool(second), atol=1e-5)
    w = weights["features.3.weight"]  # (16, 8, 3, 3)
    assert np.allclose(result["filters"], w.sum(axis=1), atol=1e-6)
    assert np.allclose(result["kernels"], w[5])
    assert "summed over its 8 input channels" in result["filters_are"]
    assert [layer["output_shape"] for layer in result["layers"]] == [[8, 8, 8], [16, 4, 4]]
    assert [layer["pooled_shape"] for layer in result["layers"]] == [[8, 4, 4], [16, 2, 2]]
    assert [layer["input_shape"] for layer in result["layers"]] == [[1, 8, 8], [8, 4, 4]]
    assert result["layers"][1]["activation"] == "features.4 (ReLU)"
    assert result["layers"][1]["pool"] == "features.5 (MaxPool2d)"


def test_top_images_are_the_strongest_peaks_over_the_held_out_set(weights, digits):
    images, labels = digits
    maps = [source_maps(x, weights) for x in images]
    for layer in (1, 2):
        peaks = np.stack([m[layer - 1].max(axis=(1, 2)) for m in maps])  # (359, C)
        result = fm.explore(fm.FeatureMapParams(layer=layer), SOURCE)
        for response in result["responses"]:
            k = response["channel"]
            column = peaks[:, k]
            firing = int((column > 0).sum())
            top = response["top"]
            assert len(top) == min(fm.TOP_IMAGES, firing)
            expected = np.sort(column)[::-1][: len(top)]
            assert np.allclose([t["peak"] for t in top], expected, atol=1e-5)
            for t in top:
                assert column[t["image"]] == pytest.approx(t["peak"], abs=1e-5)
                assert t["label"] == labels[t["image"]]
                assert t["src"].startswith("data:image/png;base64,")
            if top:
                assert column[top[0]["image"]] == pytest.approx(column.max(), abs=1e-5)
            assert response["held_out_peak"] == pytest.approx(column.max(), abs=1e-5)
            assert response["dead"] == (firing == 0)


def test_class_means_are_each_digits_mean_map_value(weights, digits):
    images, labels = digits
    second = np.stack([source_maps(x, weights)[1] for x in images])  # (359, 16, 4, 4)
    means = second.mean(axis=(2, 3))
    result = fm.explore(fm.FeatureMapParams(layer=2), SOURCE)
    expected = np.stack([means[labels == d].mean(axis=0) for d in range(10)]).T  # (16, 10)
    assert np.allclose(result["class_means"], expected, atol=1e-5)
    for response in result["responses"]:
        assert response["best_digit"] == int(np.argmax(expected[response["channel"]]))


def test_the_source_model_has_a_dead_channel_and_the_page_says_so(weights, digits):
    images, _ = digits
    second = np.stack([source_maps(x, weights)[1] for x in images])
    dead = np.flatnonzero(second.max(axis=(0, 2, 3)) <= 0)
    result = fm.explore(fm.FeatureMapParams(layer=2), SOURCE)
    assert [r["channel"] for r in result["responses"] if r["dead"]] == dead.tolist()
    assert len(dead) >= 1  # channel 14 of the deterministic source model never fires
    assert all(not result["responses"][k]["top"] for k in dead)


def test_prediction_is_the_softmax_of_the_models_logits(weights, digits):
    images, labels = digits
    for image in (7, 3):  # a 4, which the model knows, and a 7, which it does not
        result = fm.explore(fm.FeatureMapParams(image=image), SOURCE)
        _, second = source_maps(images[image], weights)
        features = max_pool(second).reshape(-1)  # flatten (16, 2, 2) -> 64, as nn.Flatten
        logits = weights["classifier.weight"] @ features + weights["classifier.bias"]
        expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert np.allclose(result["prediction"]["probabilities"], expected, atol=1e-5)
        assert result["prediction"]["predicted"] == int(np.argmax(expected))
        assert result["prediction"]["known"] == (labels[image] < 5)
    assert result["classes"] == ["0", "1", "2", "3", "4"]


def test_accuracy_counts_only_the_digits_the_model_has_a_class_for(digits):
    images, labels = digits
    model = DigitsNet(5)
    model.load_state_dict(pretrained()[0])
    model.eval()
    with torch.no_grad():
        predicted = model(torch.tensor(images, dtype=torch.float32)[:, None]).argmax(1).numpy()
    known = labels < 5
    result = fm.explore(fm.FeatureMapParams(), SOURCE)
    assert result["known"] == int(known.sum())
    assert result["accuracy"] == pytest.approx(float((predicted == labels)[known].mean()))


def test_conv_layers_walks_any_model_by_its_calls():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.AvgPool2d(2),
        nn.Conv2d(3, 2, 3),  # nothing after it: its raw output is its map
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    x = torch.randn(5, 1, 8, 8)
    layers, logits = fm.conv_layers(model, x)
    assert [layer.conv.name for layer in layers] == ["0", "3"]
    assert layers[0].activation is not None and layers[0].activation.label == "1 (LeakyReLU)"
    assert layers[0].pool is not None and layers[0].pool.label == "2 (AvgPool2d)"
    assert layers[1].activation is None and layers[1].pool is None
    first = F.leaky_relu(F.conv2d(x, model[0].weight, model[0].bias, padding=1), 0.1)
    second = F.conv2d(F.avg_pool2d(first, 2), model[3].weight, model[3].bias)
    assert torch.allclose(layers[0].maps, first, atol=1e-6)
    assert torch.allclose(layers[1].maps, second, atol=1e-6)
    assert torch.allclose(logits, model(x), atol=1e-6)
    assert layers[1].conv.input_shape == (3, 4, 4)
    # The hooks are gone afterwards: a second pass records nothing extra.
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (fm.FeatureMapParams(image=359), "0 to 358; got 359"),
        (fm.FeatureMapParams(image=-1), "got -1"),
        (fm.FeatureMapParams(layer=3), "1 to 2; got 3"),
        (fm.FeatureMapParams(layer=0), "got 0"),
        (fm.FeatureMapParams(layer=1, channel=8), "layer 1's 8 channels, 0 to 7; got 8"),
        (fm.FeatureMapParams(layer=2, channel=16), "0 to 15; got 16"),
    ],
)
def test_out_of_range_input_names_the_field_and_the_range(params, words):
    with pytest.raises(LessonInputError, match=words.replace("(", r"\(")):
        fm.explore(params, SOURCE)


def _digits_cnn_checkpoint(tmp_path: Path, channels: int, seed: int = 0) -> fm.ModelSource:
    torch.manual_seed(7)
    model = DigitsCNN(channels)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    config = {"channels": channels, "seed": seed}
    path = save_checkpoint(
        tmp_path, "digits-cnn", config, TrainResult(model.state_dict(), optimizer.state_dict(), 1)
    )
    return fm.ModelSource(
        run_id="r1",
        task="digits-cnn",
        config=json.dumps(config),
        checkpoint=str(path),
        stamp=path.stat().st_mtime_ns,
    )


def test_a_digits_cnn_checkpoint_is_loaded_and_walked(tmp_path, digits):
    images, _ = digits
    source = _digits_cnn_checkpoint(tmp_path, channels=5)
    state = torch.load(Path(source.checkpoint), weights_only=True)["model"]
    w, b = state["conv.weight"].numpy(), state["conv.bias"].numpy()
    result = fm.explore(fm.FeatureMapParams(image=11, layer=1, channel=4), source)
    assert len(result["layers"]) == 1 and result["layers"][0]["output_shape"] == [5, 8, 8]
    assert np.allclose(result["maps"], conv_relu(images[11][None], w, b), atol=1e-5)
    assert result["classes"] == [str(d) for d in range(10)]
    with pytest.raises(LessonInputError, match="1 to 1; got 2"):
        fm.explore(fm.FeatureMapParams(layer=2), source)


def test_a_transfer_checkpoint_predicts_digits_five_to_nine(tmp_path):
    model = DigitsNet(5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_checkpoint(
        tmp_path, "transfer", {}, TrainResult(model.state_dict(), optimizer.state_dict(), 1)
    )
    source = fm.ModelSource("t1", "transfer", "{}", str(path), path.stat().st_mtime_ns)
    result = fm.explore(fm.FeatureMapParams(image=0), source)  # a 6
    assert result["classes"] == ["5", "6", "7", "8", "9"]
    assert result["prediction"]["known"] is True


def test_the_snippet_rebuilds_the_page_model_and_finds_the_same_numbers():
    params = fm.FeatureMapParams(image=7, layer=2, channel=3)
    namespace: dict[str, object] = {}
    threads = torch.get_num_threads()
    exec(compile(fm.snippet(params), "snippet", "exec"), namespace)
    assert torch.get_num_threads() == threads  # the snippet puts the thread count back
    model = namespace["model"]
    assert isinstance(model, nn.Module)
    for key, value in pretrained()[0].items():
        assert torch.equal(model.state_dict()[key], value), key  # the very same weights
    result = fm.explore(params, SOURCE)
    layer = namespace["layer"]
    assert isinstance(layer, torch.Tensor)
    assert np.allclose(layer[7].numpy(), result["maps"], atol=1e-5)
    strongest = namespace["strongest"]
    assert isinstance(strongest, torch.Tensor)
    assert strongest.tolist() == [t["image"] for t in result["responses"][3]["top"]]
    probabilities = namespace["probabilities"]
    assert isinstance(probabilities, torch.Tensor)
    assert np.allclose(probabilities[7].numpy(), result["prediction"]["probabilities"], atol=1e-6)


def test_the_run_snippet_loads_a_downloaded_checkpoint(tmp_path, monkeypatch):
    source = _digits_cnn_checkpoint(tmp_path / "artifacts", channels=6)
    (tmp_path / "checkpoint.pth").write_bytes(Path(source.checkpoint).read_bytes())
    monkeypatch.chdir(tmp_path)
    params = fm.FeatureMapParams(run="r1", image=20, channel=2)
    namespace: dict[str, object] = {}
    exec(compile(fm.snippet(params), "snippet", "exec"), namespace)
    result = fm.explore(params, source)
    layer = namespace["layer"]
    assert isinstance(layer, torch.Tensor)
    assert np.allclose(layer[20].numpy(), result["maps"], atol=1e-5)
    strongest = namespace["strongest"]
    assert isinstance(strongest, torch.Tensor)
    assert strongest.tolist() == [t["image"] for t in result["responses"][2]["top"]]


def test_first_of_each_digit_and_the_seed_note(digits):
    _, labels = digits
    first = fm.first_of_each_digit()
    assert first == {d: int(np.flatnonzero(labels == d)[0]) for d in range(10)}
    assert fm.seed_note("digits-cnn", {"seed": 3}) is not None
    assert fm.seed_note("digits-cnn", {"seed": 0}) is None
    assert fm.seed_note("transfer", {"seed": 3}) is None  # transfer always splits with seed 0


def test_a_checkpoint_that_does_not_load_is_a_message_not_a_crash(tmp_path):
    path = tmp_path / "checkpoint.pth"
    path.write_bytes(b"not a checkpoint")
    source = fm.ModelSource("bad", "digits-cnn", "{}", str(path), 1)
    with pytest.raises(LessonInputError, match="does not load into a digits-cnn model"):
        fm.explore(fm.FeatureMapParams(), source)
    wrong = _digits_cnn_checkpoint(tmp_path / "other", channels=3)
    mismatched = fm.ModelSource("bad2", "digits-cnn", '{"channels": 9}', wrong.checkpoint, 2)
    with pytest.raises(LessonInputError, match="does not load"):
        fm.explore(fm.FeatureMapParams(), mismatched)


def test_views_computed_at_once_from_many_threads_match_one_at_a_time():
    images = list(range(0, 359, 23))
    alone = {i: fm.explore(fm.FeatureMapParams(image=i, layer=2), SOURCE)["maps"] for i in images}
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = dict(
            zip(
                images,
                pool.map(
                    lambda i: fm.explore(fm.FeatureMapParams(image=i, layer=2), SOURCE)["maps"],
                    images,
                ),
                strict=True,
            )
        )
    for i in images:
        assert np.array_equal(np.asarray(together[i]), np.asarray(alone[i])), i
