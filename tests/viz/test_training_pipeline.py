"""The training-pipeline figures: valid Plotly and strict JSON, and every line, marker and contour
is the number plain PyTorch (nn.Linear + SGD, float32) or NumPy (float64 gradient descent, least
squares, the MSE over a grid) computes on its own."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

from app.lessons import training_pipeline as lesson
from app.viz import training_pipeline as figures

EPOCHS, EPOCH, LR, SEED = 12, 5, 0.5, 3  # a short run, still on its way at the epoch shown
STAGES = ("manual", "autograd", "nn")


def data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """20 points on y = 3x + 2 plus seeded noise, as the lesson's snippet writes them."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.linspace(0.0, 1.0, 20).reshape(-1, 1)
    return x, 3.0 * x + 2.0 + 0.1 * torch.randn(x.shape, generator=gen)


def start(seed: int) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(seed + 1)
    w0, b0 = (torch.rand(2, generator=gen) * 2 - 1).tolist()
    return w0, b0


def plain_torch(seed: int, epochs: int, lr: float) -> dict[str, list[float]]:
    """nn.Linear, nn.MSELoss and SGD, written out: loss and gradients at each epoch's forward
    pass, (w, b) after each step, with epoch 0 the starting point."""
    x, y = data(seed)
    w0, b0 = start(seed)
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(w0)
        model.bias.fill_(b0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    out: dict[str, list[float]] = {"loss": [], "grad_w": [], "grad_b": [], "w": [w0], "b": [b0]}
    for _ in range(epochs):
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        assert model.weight.grad is not None and model.bias.grad is not None
        out["loss"].append(loss.item())
        out["grad_w"].append(model.weight.grad.item())
        out["grad_b"].append(model.bias.grad.item())
        optimizer.step()
        out["w"].append(model.weight.item())
        out["b"].append(model.bias.item())
    return out


def numpy_descent(seed: int, epochs: int, lr: float) -> dict[str, np.ndarray]:
    """Gradient descent on the MSE in float64 from the formulas: what every stage computes."""
    x, y = (t.numpy().reshape(-1).astype(np.float64) for t in data(seed))
    w, b = start(seed)
    ws, bs = [w], [b]
    for _ in range(epochs):
        residual = w * x + b - y
        w, b = float(w - lr * np.mean(2 * x * residual)), float(b - lr * np.mean(2 * residual))
        ws.append(w)
        bs.append(b)
    return {"w": np.array(ws), "b": np.array(bs)}


def least_squares(seed: int) -> tuple[float, float, float]:
    x, y = (t.numpy().reshape(-1).astype(np.float64) for t in data(seed))
    w, b = np.polyfit(x, y, 1)
    return float(w), float(b), float(np.mean((w * x + b - y) ** 2))


def valid(every: dict[str, dict[str, Any]]) -> None:
    for name, spec in every.items():
        json.dumps(spec, allow_nan=False)
        go.Figure(spec)  # raises on any property plotly.js would not understand
        assert spec["data"], name


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    params = lesson.TrainingParams(epochs=EPOCHS, learning_rate=LR, seed=SEED, epoch=EPOCH)
    return lesson.explore(params)


@pytest.fixture(scope="module")
def every(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return figures.figures(result)


@pytest.fixture(scope="module")
def reference() -> dict[str, list[float]]:
    return plain_torch(SEED, EPOCHS, LR)


def test_every_figure_is_strict_json_and_valid_for_plotly(
    every: dict[str, dict[str, Any]],
) -> None:
    assert set(every) == {"fit", "loss", "params", "gradients", "surface", "stages", "agreement"}
    valid(every)


def test_the_fit_draws_the_data_the_start_the_least_squares_and_the_current_line(
    every: dict[str, dict[str, Any]], reference: dict[str, list[float]]
) -> None:
    x, y = data(SEED)
    points, first, best, now = every["fit"]["data"]
    assert points["x"] == pytest.approx(x.reshape(-1).tolist(), abs=0)
    assert points["y"] == pytest.approx(y.reshape(-1).tolist(), abs=0)
    w0, b0 = start(SEED)
    w_star, b_star, _ = least_squares(SEED)
    w, b = reference["w"][EPOCH], reference["b"][EPOCH]
    for trace, (slope, intercept) in ((first, (w0, b0)), (best, (w_star, b_star)), (now, (w, b))):
        assert trace["x"] == [0.0, 1.0]
        assert trace["y"] == pytest.approx([intercept, slope + intercept], abs=1e-6)
    assert now["name"] == f"epoch {EPOCH}"
    # The y range: the data and the starting line, padded by 15 % of their span.
    shown = [*y.reshape(-1).tolist(), b0, w0 + b0]
    span = max(shown) - min(shown)
    low, high = every["fit"]["layout"]["yaxis"]["range"]
    assert (low, high) == pytest.approx((min(shown) - 0.15 * span, max(shown) + 0.15 * span))


def test_the_loss_curve_is_each_epochs_mse_and_marks_the_epoch_shown(
    every: dict[str, dict[str, Any]], reference: dict[str, list[float]]
) -> None:
    curve, optimum, mark = every["loss"]["data"]
    assert curve["x"] == list(range(1, EPOCHS + 1))
    assert curve["y"] == pytest.approx(reference["loss"], rel=1e-6)
    _, _, best = least_squares(SEED)
    assert optimum["x"] == [1, EPOCHS] and optimum["y"] == pytest.approx([best, best], rel=1e-6)
    assert mark["x"] == [EPOCH] and mark["y"] == pytest.approx([reference["loss"][EPOCH - 1]])
    assert every["loss"]["layout"]["yaxis"]["type"] == "log"
    assert min(curve["y"]) >= best * (1 - 1e-6)  # no epoch beats the least-squares fit


def test_w_b_and_their_gradients_follow_plain_torch_and_numpy(
    every: dict[str, dict[str, Any]], reference: dict[str, list[float]]
) -> None:
    w_trace, b_trace, w_star, b_star = every["params"]["data"]
    assert w_trace["x"] == list(range(EPOCHS + 1))
    assert w_trace["y"] == pytest.approx(reference["w"], abs=1e-6)
    assert b_trace["y"] == pytest.approx(reference["b"], abs=1e-6)
    exact = numpy_descent(SEED, EPOCHS, LR)
    np.testing.assert_allclose(w_trace["y"], exact["w"], atol=2e-5)
    np.testing.assert_allclose(b_trace["y"], exact["b"], atol=2e-5)
    w_best, b_best, _ = least_squares(SEED)
    assert w_star["y"] == pytest.approx([w_best] * 2) and b_star["y"] == pytest.approx([b_best] * 2)
    assert every["params"]["layout"]["shapes"][0]["x0"] == EPOCH
    grad_w, grad_b = every["gradients"]["data"]
    assert grad_w["x"] == list(range(1, EPOCHS + 1))
    assert grad_w["y"] == pytest.approx(reference["grad_w"], abs=1e-6)
    assert grad_b["y"] == pytest.approx(reference["grad_b"], abs=1e-6)
    # SGD's rule, from the drawn numbers alone: w_k = w_(k-1) - lr * dL/dw at epoch k.
    steps = np.diff(w_trace["y"])
    np.testing.assert_allclose(steps, -LR * np.array(grad_w["y"]), atol=1e-6)


def test_the_surface_is_log10_of_the_mse_at_each_grid_point_rows_following_b(
    every: dict[str, dict[str, Any]], reference: dict[str, list[float]]
) -> None:
    contour, whole, walked, star, mark = every["surface"]["data"]
    w_axis, b_axis = np.array(contour["x"]), np.array(contour["y"])
    assert len(w_axis) == len(b_axis) == lesson.SURFACE_POINTS
    assert np.all(np.diff(w_axis) > 0) and np.all(np.diff(b_axis) > 0)
    x, y = (t.numpy().reshape(-1).astype(np.float64) for t in data(SEED))
    # mse[i, j]: b = b_axis[i] (a row), w = w_axis[j] (a column), as plotly reads z
    mse = np.mean((w_axis[None, :, None] * x + b_axis[:, None, None] - y) ** 2, axis=-1)
    z = np.array(contour["z"], dtype=np.float64)
    assert z.shape == (len(b_axis), len(w_axis))
    np.testing.assert_allclose(z, np.log10(mse), atol=1.5e-3)  # rounded to 3 decimals
    np.testing.assert_allclose(contour["customdata"], mse, rtol=1e-3)  # 4 significant digits
    # The grid holds the path and the optimum, and its lowest point is next to the optimum.
    w_best, b_best, _ = least_squares(SEED)
    assert w_axis[0] < w_best < w_axis[-1] and b_axis[0] < b_best < b_axis[-1]
    i, j = np.unravel_index(np.argmin(mse), mse.shape)
    assert (
        abs(w_axis[j] - w_best) <= np.diff(w_axis)[0]
        and abs(b_axis[i] - b_best) <= np.diff(b_axis)[0]
    )
    assert whole["x"] == pytest.approx(reference["w"], abs=1e-6)
    assert whole["y"] == pytest.approx(reference["b"], abs=1e-6)
    assert walked["x"] == whole["x"][: EPOCH + 1] and walked["y"] == whole["y"][: EPOCH + 1]
    assert star["x"] == pytest.approx([w_best]) and star["y"] == pytest.approx([b_best])
    assert (mark["x"], mark["y"]) == ([whole["x"][EPOCH]], [whole["y"][EPOCH]])
    layout = every["surface"]["layout"]
    assert layout["xaxis"]["range"] == [contour["x"][0], contour["x"][-1]]
    assert layout["yaxis"]["range"] == [contour["y"][0], contour["y"][-1]]


def test_the_three_stages_draw_one_path_and_their_gaps_are_float32_rounding(
    result: dict[str, Any], every: dict[str, dict[str, Any]], reference: dict[str, list[float]]
) -> None:
    stages = every["stages"]["data"]
    assert [t["name"] for t in stages] == list(STAGES)
    for trace in stages:
        assert trace["x"] == list(range(EPOCHS + 1))
        assert trace["y"] == pytest.approx(reference["w"], abs=1e-5)
    gaps = every["agreement"]["data"]
    names = [t["name"] for t in gaps]
    assert names == ["w_manual − w_nn", "b_manual − b_nn", "w_autograd − w_nn", "b_autograd − b_nn"]
    by_stage = {t["name"].split(" − ")[0]: t["y"] for t in gaps}
    for stage in ("manual", "autograd"):
        for name in ("w", "b"):
            mine = np.array(result["paths"][stage][name])
            theirs = np.array(result["paths"]["nn"][name])
            np.testing.assert_array_equal(by_stage[f"{name}_{stage}"], mine - theirs)
            assert np.max(np.abs(by_stage[f"{name}_{stage}"])) < 1e-5


def test_a_diverging_run_draws_gaps_not_nan_and_its_finite_part_matches_plain_torch() -> None:
    epochs = 400
    params = lesson.TrainingParams(epochs=epochs, learning_rate=1.0, seed=0, epoch=epochs)
    result = lesson.explore(params)
    every = figures.figures(result)
    valid(every)
    reference = plain_torch(0, epochs, 1.0)
    finite = [math.isfinite(v) for v in reference["loss"]]
    assert not all(finite), "lr 1.0 should overflow float32 within 400 epochs"
    drawn = every["loss"]["data"][0]["y"]
    assert [v is not None for v in drawn] == finite
    kept = [(a, b) for a, b, ok in zip(drawn, reference["loss"], finite, strict=True) if ok]
    assert [a for a, _ in kept] == pytest.approx([b for _, b in kept], rel=1e-5)
    assert drawn[0] < drawn[10] < drawn[20]  # the loss grows: honest divergence
    assert every["fit"]["data"][3]["y"] == [None, None]  # no current line to draw
    assert every["surface"]["data"][-1]["x"] == [None]
