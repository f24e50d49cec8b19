"""Tracking: TensorBoard's smoothing, precision/recall per class, sample pictures, the view."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import precision_recall_curve

from app.lessons import tracking


def test_smoothing_is_tensorboards_debiased_moving_average() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=50).tolist()
    for weight in (0.0, 0.3, 0.6, 0.95):
        got = tracking.smooth(values, weight)
        # Closed form: a weighted mean of everything so far, weights w^(t-i), normalised.
        for t in range(1, len(values) + 1):
            powers = weight ** np.arange(t - 1, -1, -1)
            expected = float(np.dot(powers, values[:t]) / powers.sum())
            assert got[t - 1] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert tracking.smooth(values, 0.0) == pytest.approx(values)


def test_smoothing_passes_non_finite_values_through_and_refuses_a_bad_weight() -> None:
    got = tracking.smooth([1.0, float("nan"), 3.0], 0.5)
    assert got[0] == 1.0 and np.isnan(got[1])
    assert got[2] == pytest.approx((0.5 * 1 + 3) / 1.5)  # the NaN did not poison the average
    with pytest.raises(ValueError, match="smoothing"):
        tracking.smooth([1.0], 1.0)


def test_pr_curve_matches_scikit_learn_at_every_threshold() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=300)
    logits = rng.normal(size=(300, 4)) + 2.0 * np.eye(4)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = probs.round(2)  # ties, as real rounded probabilities have
    for k in range(4):
        curve = tracking.pr_curve(labels.tolist(), probs.tolist(), k)
        precision, recall, thresholds = precision_recall_curve(labels == k, probs[:, k])
        expected = {
            float(t): (float(p), float(r))
            for p, r, t in zip(precision[:-1], recall[:-1], thresholds, strict=True)
        }
        points = zip(curve.precision, curve.recall, strict=True)
        got = dict(zip(curve.thresholds, points, strict=True))
        assert set(got) == set(expected)
        for threshold, (p, r) in expected.items():
            assert got[threshold] == pytest.approx((p, r))
        assert curve.positives == int((labels == k).sum())


def test_operating_point_is_precision_and_recall_at_the_threshold() -> None:
    labels = [1, 0, 1, 1, 0]
    probs = [[0.1, 0.9], [0.3, 0.7], [0.4, 0.6], [0.8, 0.2], [0.95, 0.05]]
    curve = tracking.pr_curve(labels, probs, 1)
    at = tracking.operating_point(curve, 0.5)  # predicts samples 0, 1, 2 as class 1
    assert at["precision"] == pytest.approx(2 / 3) and at["recall"] == pytest.approx(2 / 3)
    assert tracking.operating_point(curve, 0.99) == {
        "threshold": 0.99,
        "precision": 1.0,
        "recall": 0.0,
    }


def test_sample_pictures_are_the_digits_scaled_up_with_ink_dark() -> None:
    image = np.zeros((8, 8))
    image[2, 3] = 1.0
    image[5, 5] = 0.5
    out = tracking.sample_pictures(
        [{"image": image.tolist(), "label": 4, "predicted": 9, "confidence": 0.8}]
    )[0]
    assert out["correct"] is False and (out["label"], out["predicted"]) == (4, 9)
    png = base64.b64decode(out["src"].split(",", 1)[1])
    pixels = np.asarray(Image.open(io.BytesIO(png)))
    assert pixels.shape == (64, 64)
    blocks = pixels.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3)  # (row, col, 8, 8) blocks
    assert (blocks == blocks[:, :, :1, :1]).all()  # nearest-neighbour: every block is flat
    expected = np.round(255 - image * 255).astype(np.uint8)
    assert (blocks[:, :, 0, 0] == expected).all()


def test_the_example_runs_compare_three_learning_rates_with_every_panel() -> None:
    runs = tracking.example_runs()
    assert [r.config["learning_rate"] for r in runs] == list(tracking.EXAMPLE_RATES)
    result = tracking.explore(tracking.TrackingParams(), runs)
    assert result["metrics"] == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(result["series"]["loss"]) == 3
    for run in runs:
        # Steps run on: 45 batches of 32 from 1,438 training digits, per epoch.
        steps = [s for s, _ in run.metrics["loss"]]
        assert steps == list(range(1, tracking.EXAMPLE_EPOCHS * 45 + 1))
        assert run.metrics["val_accuracy"][-1][1] > 0.5
    assert result["parameters"] == 80 + 1290  # conv 1*8*3*3+8, linear 128*10+10
    assert len(result["samples"]) == 16 and len(result["curves"]) == 3
    assert result["curves"][0]["curve"].positives > 0


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (tracking.TrackingParams(smoothing=1.0), "smoothing"),
        (tracking.TrackingParams(threshold=-0.1), "threshold"),
        (tracking.TrackingParams(focus=3), "focus"),
        (tracking.TrackingParams(cls=10), "cls"),
        (tracking.TrackingParams(metric="w"), "not logged"),
    ],
)
def test_bad_params_name_what_is_wrong(params: tracking.TrackingParams, words: str) -> None:
    with pytest.raises(tracking.LessonInputError, match=words):
        tracking.explore(params, tracking.example_runs())
