"""The activations lesson's numbers, checked against NumPy formulas, finite differences and a
hand-written NumPy backward pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import erf, expit

from app.lessons import activations as lesson
from app.lessons.errors import LessonInputError, LimitExceeded

LIMITS = lesson.ActivationLimits()

FORMULAS = {
    "sigmoid": expit,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.1 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
}


@pytest.mark.parametrize("name", lesson.NAMES)
def test_curve_matches_the_formula_and_its_derivative_matches_finite_differences(name: str) -> None:
    out = lesson.activation_curve(name, -4.0, 4.0, 80, negative_slope=0.1)  # 80 points: x != 0
    x = np.array(out["x"], dtype=np.float64)
    f = FORMULAS[name]
    assert np.allclose(out["y"], f(x), atol=1e-5)
    h = 1e-6
    numeric = (f(x + h) - f(x - h)) / (2 * h)
    assert np.allclose(out["derivative"], numeric, atol=1e-4)


def test_sigmoid_derivative_peaks_at_a_quarter() -> None:
    out = lesson.activation_curve("sigmoid", -5, 5, 101)
    assert max(out["derivative"]) == pytest.approx(0.25, abs=1e-6)


def test_relu_on_the_contract_grid() -> None:
    out = lesson.activation_curve("relu", -2, 2, 5)
    assert out["x"] == [-2, -1, 0, 1, 2]
    assert out["y"] == [0, 0, 0, 1, 2]
    assert out["derivative"] == [0, 0, 0, 1, 1]  # PyTorch's ReLU has gradient 0 at x = 0


def test_softmax_output_layer_rows_sum_to_one() -> None:
    x = torch.linspace(-3, 3, 7)
    p = lesson.softmax_output_layer(x).numpy()
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-6)
    logits = np.stack([x.numpy(), np.ones(7), -np.ones(7)], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    assert np.allclose(p, e / e.sum(axis=1, keepdims=True), atol=1e-6)


def numpy_backward_norms(net: torch.nn.Sequential, x: np.ndarray, name: str) -> list[float]:
    """Backpropagation written out in NumPy for Linear+activation blocks: the oracle."""
    derivative = {
        "sigmoid": lambda z: expit(z) * (1 - expit(z)),
        "tanh": lambda z: 1 - np.tanh(z) ** 2,
        "relu": lambda z: (z > 0).astype(np.float64),
        "leaky_relu": lambda z: np.where(z > 0, 1.0, 0.01),
    }[name]
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    weights = [m.weight.detach().double().numpy() for m in linears]
    biases = [m.bias.detach().double().numpy() for m in linears]
    inputs, pre = [], []
    a = x
    for w, b in zip(weights, biases, strict=True):
        inputs.append(a)
        z = a @ w.T + b
        pre.append(z)
        a = FORMULAS[name](z) if name != "leaky_relu" else np.where(z > 0, z, 0.01 * z)
    grad = 2 * a / a.size  # d mean(a^2) / da
    norms = []
    for i in reversed(range(len(weights))):
        dz = grad * derivative(pre[i])
        norms.append(float(np.linalg.norm(dz.T @ inputs[i])))
        grad = dz @ weights[i]
    return norms[::-1]


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_vanishing_norms_match_a_numpy_backward_pass(name: str) -> None:
    norms = lesson.vanishing_gradients(name, depth=6, width=8, seed=3, init="kaiming")
    torch.manual_seed(3)
    net = lesson.build_stack(name, 6, 8, "kaiming")
    x = torch.randn(64, 8).double().numpy()
    expected = numpy_backward_norms(net, x, name)
    assert np.allclose(norms, expected, rtol=1e-3, atol=1e-12)


def test_sigmoid_gradients_vanish_toward_the_input_and_relu_ones_do_not() -> None:
    sigmoid = lesson.vanishing_gradients("sigmoid", depth=20, width=32, seed=0)
    relu = lesson.vanishing_gradients("relu", depth=20, width=32, seed=0)
    assert sigmoid[0] / sigmoid[-1] < 1e-6
    assert relu[0] / relu[-1] > 0.1


def test_dead_relu_units_never_move_and_leaky_ones_do() -> None:
    relu = lesson.dead_relu_training(0.0, dead_units=6, steps=50, seed=0)
    leaky = lesson.dead_relu_training(0.1, dead_units=6, steps=50, seed=0)
    assert relu["moved"][:6] == [0.0] * 6
    assert all(m > 0 for m in leaky["moved"][:6])
    assert relu["zero_grad"][-1] >= 6
    assert leaky["zero_grad"][-1] == 0


def test_a_fully_dead_relu_layer_cannot_learn_but_leaky_relu_can() -> None:
    relu = lesson.dead_relu_training(0.0, dead_units=16, steps=200, seed=0)
    leaky = lesson.dead_relu_training(0.1, dead_units=16, steps=200, seed=0)
    # only the output bias learns: the best it can do is the variance of y = sin(1.5 x)
    x = np.linspace(-2, 2, 64)
    assert relu["loss"][-1] == pytest.approx(np.var(np.sin(1.5 * x)), rel=1e-3)
    assert leaky["loss"][-1] < 0.9 * relu["loss"][-1]


def test_the_snippet_on_the_page_reproduces_the_curve() -> None:
    params = lesson.ActivationParams(name="leaky_relu", negative_slope=0.2, x_min=-3, x_max=2)
    namespace: dict[str, object] = {}
    exec(compile(lesson.snippet(params), "snippet", "exec"), namespace)  # our own code
    result = lesson.explore(params, LIMITS)
    assert np.allclose(namespace["y"].detach().numpy(), result["curve"]["y"])
    assert np.allclose(namespace["derivative"].numpy(), result["curve"]["derivative"])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: lesson.check_name("swish"), "Unknown activation"),
        (lambda: lesson.check_curve(1, 0, 10, 0.1, LIMITS), "below x_max"),
        (lambda: lesson.check_curve(-1, 1, 1, 0.1, LIMITS), "at least 2"),
        (lambda: lesson.check_curve(-1, 1, 10**9, 0.1, LIMITS), "max_points"),
        (lambda: lesson.check_curve(-1e9, 1, 10, 0.1, LIMITS), "max_abs_x"),
        (lambda: lesson.check_curve(float("nan"), 1, 10, 0.1, LIMITS), "finite"),
        (lambda: lesson.check_curve(-1, 1, 10, 2.0, LIMITS), "negative_slope"),
        (lambda: lesson.check_stack(10**6, 8, "kaiming", LIMITS), "max_depth"),
        (lambda: lesson.check_stack(4, 10**6, "kaiming", LIMITS), "max_width"),
        (lambda: lesson.check_stack(0, 8, "kaiming", LIMITS), "at least 1"),
        (lambda: lesson.check_stack(4, 8, "orthogonal", LIMITS), "Unknown init"),
        (lambda: lesson.check_dead(17, 10, 16, LIMITS), "0 to 16"),
        (lambda: lesson.check_dead(4, 10**6, 16, LIMITS), "max_train_steps"),
    ],
)
def test_bad_input_is_refused_with_a_message(call: object, message: str) -> None:
    with pytest.raises(LessonInputError, match=message):
        call()  # type: ignore[operator]


def test_limit_errors_name_the_limit_and_the_value() -> None:
    with pytest.raises(LimitExceeded) as info:
        lesson.check_stack(10**6, 8, "kaiming", LIMITS)
    assert info.value.limit == LIMITS.max_depth and info.value.got == 10**6
    assert "1000000" in str(info.value) and "max_depth" in str(info.value)
