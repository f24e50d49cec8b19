"""The softmax lesson's numbers, checked against NumPy and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.lessons import softmax_cross_entropy as lesson
from app.lessons.errors import LessonInputError, LimitExceeded

LIMITS = lesson.SoftmaxLimits()


def np_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def np_loss(z: np.ndarray, target: int, temperature: float = 1.0) -> float:
    return float(-np.log(np_softmax(z / temperature)[target]))


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_probabilities_loss_and_gradient_match_numpy(temperature: float) -> None:
    z = np.array([2.0, 1.0, 0.1, -1.5])
    out = lesson.softmax_cross_entropy(
        torch.tensor(z, dtype=torch.float32), torch.tensor(2), temperature
    )
    p = np_softmax(z / temperature)
    assert np.allclose(out["probabilities"].detach().numpy(), p, atol=1e-6)
    assert np.allclose(out["log_probabilities"].detach().numpy(), np.log(p), atol=1e-5)
    assert out["loss"].item() == pytest.approx(np_loss(z, 2, temperature), rel=1e-5)
    one_hot = np.eye(4)[2]
    assert np.allclose(out["gradient"].numpy(), (p - one_hot) / temperature, atol=1e-5)


def test_gradient_matches_central_finite_differences() -> None:
    z = np.array([0.7, -0.2, 1.3])
    out = lesson.softmax_cross_entropy(torch.tensor(z, dtype=torch.float32), torch.tensor(1), 1.0)
    h = 1e-5
    numeric = [
        (np_loss(z + h * np.eye(3)[i], 1) - np_loss(z - h * np.eye(3)[i], 1)) / (2 * h)
        for i in range(3)
    ]
    assert np.allclose(out["gradient"].numpy(), numeric, atol=1e-4)


def test_the_notes_loss_is_minus_log_p_of_the_true_class() -> None:
    out = lesson.softmax_cross_entropy(torch.tensor([2.0, 1.0, 0.1]), torch.tensor(0), 1.0)
    p0 = np.exp(2.0) / np.exp([2.0, 1.0, 0.1]).sum()
    assert out["loss"].item() == pytest.approx(-np.log(p0), rel=1e-6)


def test_a_certain_right_answer_costs_nothing_and_a_wrong_one_costs_a_lot() -> None:
    right = lesson.softmax_cross_entropy(torch.tensor([30.0, 0.0]), torch.tensor(0), 1.0)
    wrong = lesson.softmax_cross_entropy(torch.tensor([30.0, 0.0]), torch.tensor(1), 1.0)
    assert right["loss"].item() < 1e-6
    assert wrong["loss"].item() == pytest.approx(30.0, rel=1e-4)


def test_without_a_target_there_is_no_loss() -> None:
    out = lesson.softmax_cross_entropy(torch.tensor([1.0, 2.0]), None, 1.0)
    assert out["loss"] is None and out["gradient"] is None


def test_batch_loss_is_the_mean_of_per_sample_losses() -> None:
    z = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3], [1.0, 1.0, 1.0]])
    y = [0, 1, 2]
    out = lesson.batch_cross_entropy(torch.tensor(z, dtype=torch.float32), torch.tensor(y))
    expected = [np_loss(z[i], y[i]) for i in range(3)]
    assert np.allclose(out["per_sample"].numpy(), expected, atol=1e-5)
    assert out["mean"].item() == pytest.approx(np.mean(expected), rel=1e-5)
    assert np.allclose(out["probabilities"].numpy(), np_softmax(z), atol=1e-6)


def test_batch_gradient_is_divided_by_the_batch_size() -> None:
    z = np.array([[2.0, 1.0], [0.0, 3.0]])
    out = lesson.softmax_cross_entropy(torch.tensor(z, dtype=torch.float32), torch.tensor([0, 0]))
    expected = (np_softmax(z) - np.eye(2)[[0, 0]]) / 2
    assert np.allclose(out["gradient"].numpy(), expected, atol=1e-6)


def test_double_softmax_cannot_reach_zero_and_shrinks_the_gradient() -> None:
    logits = torch.tensor([20.0, 0.0, 0.0])
    out = lesson.double_softmax_mistake(logits, torch.tensor(0))
    # softmax of an almost one-hot p = (1, 0, 0) is e / (e + 2): that is the floor of the loss
    floor = -np.log(np.e / (np.e + 2))
    assert out["right_loss"] < 1e-6
    assert out["wrong_loss"] == pytest.approx(floor, rel=1e-4)
    mild = lesson.double_softmax_mistake(torch.tensor([1.0, 0.5, 0.0]), torch.tensor(2))
    assert mild["wrong_grad_norm"] < mild["right_grad_norm"]


def test_the_formula_overflows_where_log_softmax_stays_exact() -> None:
    z = np.array([1000.0, 999.0, 998.0])
    out = lesson.overflow_demo(torch.tensor(z, dtype=torch.float32))
    assert all(np.isinf(out["naive_exp"]))
    assert all(np.isnan(out["naive_softmax"]))
    assert np.allclose(out["softmax"], np_softmax(z), atol=1e-6)
    assert np.allclose(out["log_softmax"], np.log(np_softmax(z)), atol=1e-5)


def test_temperature_sweep_rows_are_softmax_at_each_temperature() -> None:
    z = np.array([1.0, 0.0, -1.0])
    ts = np.array([0.1, 1.0, 10.0])
    rows = lesson.temperature_sweep(torch.tensor(z), torch.tensor(ts)).numpy()
    for row, t in zip(rows, ts, strict=True):
        assert np.allclose(row, np_softmax(z / t), atol=1e-6)


def test_explore_agrees_with_numpy_for_the_default_page() -> None:
    result = lesson.explore(lesson.SoftmaxParams(), LIMITS)
    z = np.array(lesson.SoftmaxParams().logits)
    assert np.allclose(result["probabilities"], np_softmax(z), atol=1e-6)
    assert result["loss"] == pytest.approx(np_loss(z, 0), rel=1e-5)
    assert all(np.isnan(result["overflow"]["naive_softmax"]))  # the default shift is 1000


def test_the_snippet_on_the_page_reproduces_the_page_numbers() -> None:
    params = lesson.SoftmaxParams(logits=(0.5, -1.0, 2.0, 0.0), target=3, temperature=0.7)
    namespace: dict[str, object] = {}
    exec(
        compile(lesson.snippet(params), "snippet", "exec"), namespace
    )  # our own code, not a learner's
    result = lesson.explore(params, LIMITS)
    assert np.allclose(namespace["probabilities"].detach().numpy(), result["probabilities"])
    assert namespace["loss"].item() == pytest.approx(result["loss"], rel=1e-6)
    assert np.allclose(namespace["gradient"].numpy(), result["gradient"], atol=1e-6)


@pytest.mark.parametrize(
    ("logits", "target", "temperature", "message"),
    [
        ([], 0, 1.0, "empty"),
        ([1.0], 0, 1.0, "at least 2"),
        ([1.0, float("nan")], 0, 1.0, "finite"),
        ([1.0, float("inf")], 0, 1.0, "finite"),
        ([1.0, 2.0], 5, 1.0, "0 to 1"),
        ([1.0, 2.0], -1, 1.0, "not a class"),
        ([1.0, 2.0], 0, 0.0, "temperature"),
        ([1.0, 2.0], 0, 1e9, "max_temperature"),
        ([[1.0, 2.0], [1.0, 2.0, 3.0]], [0, 0], 1.0, "same number"),
        ([[1.0, 2.0]], 0, 1.0, "one index per row"),
    ],
)
def test_bad_input_is_refused_with_a_message(
    logits: list, target: object, temperature: float, message: str
) -> None:
    with pytest.raises(LessonInputError, match=message):
        lesson.to_tensors(logits, target, temperature, LIMITS)  # type: ignore[arg-type]


def test_too_many_logits_names_the_limit() -> None:
    with pytest.raises(
        LimitExceeded, match=r"1000000, over the limit of 1000 \(setting max_logits\)"
    ):
        lesson.to_tensors([0.0] * 1_000_000, 0, 1.0, LIMITS)
