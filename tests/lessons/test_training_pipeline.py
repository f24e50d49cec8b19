"""The training-pipeline lesson's numbers, checked against NumPy and the closed-form optimum."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch

from app.jobs.tasks import initial_params, linear_data
from app.lessons import training_pipeline as lesson
from app.lessons.errors import LessonInputError
from app.viz import training_pipeline as figures


def data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = linear_data(seed)
    return x.numpy().reshape(-1).astype(np.float64), y.numpy().reshape(-1).astype(np.float64)


def numpy_descent(seed: int, epochs: int, lr: float) -> dict[str, np.ndarray]:
    """Plain gradient descent on the MSE in float64, written from the formulas."""
    x, y = data(seed)
    w, b = initial_params(seed)
    out: dict[str, list[float]] = {name: [] for name in lesson.METRICS}
    for _ in range(epochs):
        residual = w * x + b - y
        grad_w, grad_b = np.mean(2 * x * residual), np.mean(2 * residual)
        out["loss"].append(float(np.mean(residual**2)))
        out["grad_w"].append(float(grad_w))
        out["grad_b"].append(float(grad_b))
        w, b = w - lr * grad_w, b - lr * grad_b
        out["w"].append(float(w))
        out["b"].append(float(b))
    return {name: np.array(values) for name, values in out.items()}


@pytest.mark.parametrize(("lr", "seed"), [(0.5, 0), (0.1, 7), (0.7, 123)])
def test_the_three_stages_follow_the_same_path_to_1e_5(lr: float, seed: int) -> None:
    runs = {stage: lesson.record_stage(stage, 200, lr, seed) for stage in lesson.STAGES}
    for stage in ("manual", "autograd"):
        for name in lesson.METRICS:
            mine, reference = np.array(runs[stage][name]), np.array(runs["nn"][name])
            assert mine.shape == (200,)
            assert np.max(np.abs(mine - reference)) < 1e-5, (stage, name)


@pytest.mark.parametrize("stage", lesson.STAGES)
def test_every_stage_matches_gradient_descent_written_in_numpy(stage: str) -> None:
    run = lesson.record_stage(stage, 80, 0.5, 3)
    expected = numpy_descent(3, 80, 0.5)
    for name in lesson.METRICS:
        assert np.allclose(run[name], expected[name], atol=2e-5), name


def test_long_training_reaches_the_closed_form_least_squares_fit() -> None:
    x, y = data(0)
    w_star, b_star = np.polyfit(x, y, 1)  # independent of torch: NumPy's own least squares
    run = lesson.record_stage("nn", 500, 0.5, 0)
    assert run["w"][-1] == pytest.approx(w_star, abs=1e-3)
    assert run["b"][-1] == pytest.approx(b_star, abs=1e-3)
    assert run["loss"][-1] == pytest.approx(np.mean((w_star * x + b_star - y) ** 2), rel=1e-3)
    assert lesson.least_squares(*linear_data(0)) == pytest.approx((w_star, b_star), abs=1e-9)


def test_the_stable_learning_rate_is_two_over_the_largest_hessian_eigenvalue() -> None:
    x, _ = data(0)
    design = np.stack([x, np.ones_like(x)], axis=1)
    hessian = 2 * design.T @ design / len(x)
    bound = 2 / np.linalg.eigvalsh(hessian).max()
    assert lesson.stable_learning_rate(linear_data(0)[0]) == pytest.approx(bound, rel=1e-9)
    below = lesson.record_stage("nn", 300, 0.95 * bound, 0)
    above = lesson.record_stage("nn", 300, 1.05 * bound, 0)
    assert below["loss"][-1] < below["loss"][0]
    assert above["loss"][-1] > 100 * above["loss"][0]


def test_loss_surface_matches_numpy_at_grid_points() -> None:
    x, y = data(2)
    ws, bs = torch.linspace(0, 5, 11), torch.linspace(-1, 4, 7)
    surface = lesson.loss_surface(*linear_data(2), ws, bs)
    assert surface.shape == (7, 11)
    for i, j in [(0, 0), (3, 5), (6, 10), (2, 9)]:
        w, b = float(ws[j]), float(bs[i])
        assert float(surface[i, j]) == pytest.approx(np.mean((w * x + b - y) ** 2), rel=1e-5)


def test_the_page_surface_is_centred_on_the_optimum_and_holds_the_path() -> None:
    result = lesson.explore(lesson.TrainingParams())
    grid = result["surface"]
    w_star, b_star = result["optimum"]["w"], result["optimum"]["b"]
    assert grid["w"][0] < w_star < grid["w"][-1] and grid["b"][0] < b_star < grid["b"][-1]
    for w, b in zip(result["paths"]["nn"]["w"], result["paths"]["nn"]["b"], strict=True):
        assert grid["w"][0] <= w <= grid["w"][-1] and grid["b"][0] <= b <= grid["b"][-1]
    x, y = data(0)
    i, j = 17, 40
    expected = np.mean((grid["w"][j] * x + grid["b"][i] - y) ** 2)
    assert grid["loss"][i][j] == pytest.approx(expected, rel=1e-5)


def test_the_epoch_on_screen_is_one_forward_backward_step() -> None:
    params = lesson.TrainingParams(epochs=40, learning_rate=0.3, seed=5, epoch=12)
    result = lesson.explore(params)
    cur = result["current"]
    x, y = data(5)
    residual = cur["w_before"] * x + cur["b_before"] - y
    assert cur["loss"] == pytest.approx(np.mean(residual**2), rel=1e-5)
    assert cur["grad_w"] == pytest.approx(np.mean(2 * x * residual), abs=1e-5)
    assert cur["grad_b"] == pytest.approx(np.mean(2 * residual), abs=1e-5)
    assert cur["w"] == pytest.approx(cur["w_before"] - 0.3 * cur["grad_w"], abs=1e-6)
    assert cur["b"] == pytest.approx(cur["b_before"] - 0.3 * cur["grad_b"], abs=1e-6)
    start = lesson.explore(lesson.TrainingParams(epochs=40, learning_rate=0.3, seed=5, epoch=0))
    assert (start["current"]["w"], start["current"]["b"]) == pytest.approx(initial_params(5))
    assert "loss" not in start["current"]


def test_agreement_reports_float32_sized_gaps() -> None:
    result = lesson.explore(lesson.TrainingParams())
    for stage in ("manual", "autograd"):
        for name in ("w", "b", "loss"):
            gap = result["agreement"][stage][name]
            assert gap is not None and 0 <= gap < 1e-5
    manual, nn = result["paths"]["manual"]["w"], result["paths"]["nn"]["w"]
    assert max(abs(a - b) for a, b in zip(manual, nn, strict=True)) == pytest.approx(
        result["agreement"]["manual"]["w"]
    )


def test_a_diverging_learning_rate_is_shown_not_crashed_and_stays_valid_json() -> None:
    params = lesson.TrainingParams(epochs=500, learning_rate=1.0, seed=0, epoch=500)
    result = lesson.explore(params)
    assert result["learning_rate"] > result["stable_learning_rate"]
    assert result["diverged_at"] is not None and 1 < result["diverged_at"] <= 500
    assert result["stages"]["nn"]["loss"][-1] is None  # inf / nan become None
    assert result["current"]["w"] is None
    json.dumps(result, allow_nan=False)
    json.dumps(figures.figures(result), allow_nan=False)
    first = result["stages"]["nn"]["loss"]
    assert first[10] > first[0]  # the loss grows from the start: honest divergence


def test_figures_carry_the_lesson_numbers() -> None:
    result = lesson.explore(lesson.TrainingParams(epoch=7))
    figs = figures.figures(result)
    assert set(figs) == {"fit", "loss", "params", "gradients", "surface", "stages", "agreement"}
    fit_line = figs["fit"]["data"][3]
    w, b = result["current"]["w"], result["current"]["b"]
    assert fit_line["y"] == pytest.approx([b, w + b])
    assert figs["loss"]["data"][0]["y"] == result["stages"]["nn"]["loss"]
    assert figs["loss"]["data"][-1]["x"] == [7]
    surface = figs["surface"]["data"]
    assert surface[0]["type"] == "contour"
    assert surface[0]["z"][3][4] == pytest.approx(
        math.log10(result["surface"]["loss"][3][4]), abs=1e-3
    )
    assert surface[2]["x"] == result["paths"]["nn"]["w"][:8]
    assert surface[-1]["x"] == [w] and surface[-1]["y"] == [b]
    assert [t["name"] for t in figs["stages"]["data"]] == ["manual", "autograd", "nn"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"epochs": 0}, "epochs must be at least 1 and at most 500"),
        ({"epochs": 501, "epoch": 0}, "epochs must be at least 1 and at most 500"),
        ({"learning_rate": 0.0}, "learning_rate must be above 0 and at most 1"),
        ({"learning_rate": 1.5}, "learning_rate must be above 0 and at most 1"),
        ({"seed": -1}, "seed must be at least 0 and at most 2147483647"),
        ({"epoch": 101}, "epoch must be between 0 and epochs (100)"),
        ({"stage": "sgd"}, "stage must be one of manual, autograd, nn"),
    ],
)
def test_bad_params_name_the_bound(change: dict, needle: str) -> None:
    params = lesson.TrainingParams(**change)
    with pytest.raises(LessonInputError) as err:
        lesson.explore(params)
    assert needle in str(err.value)


def test_the_snippet_runs_and_prints_the_pages_final_weights() -> None:
    params = lesson.TrainingParams(epochs=30, learning_rate=0.4, seed=9, epoch=30)
    result = lesson.explore(params)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(lesson.snippet(params), "snippet", "exec"), {})
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith("epoch 30:")
    numbers = dict(part.strip().split(" ") for part in last.split(":", 1)[1].split(","))
    assert float(numbers["w"]) == pytest.approx(result["current"]["w"], abs=1e-6)
    assert float(numbers["b"]) == pytest.approx(result["current"]["b"], abs=1e-6)
    assert float(numbers["loss"]) == pytest.approx(result["current"]["loss"], abs=1e-6)
