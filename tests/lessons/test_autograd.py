"""The gradient-calculation lesson, checked against the chain-rule formulas, finite differences
and an independent NumPy gradient-descent loop. Programs run in the in-process sandbox."""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import numpy as np
import pytest

from app.lessons import autograd
from app.lessons.errors import LessonInputError, LimitExceeded
from app.sandbox import SandboxRefused, autograd_graph, run_program

LIMITS = autograd.AutogradLimits()


def run(code: str, kind: str, backward: str | None) -> dict[str, Any]:
    """The sandbox in this process: the same interpreter the page's worker processes run."""
    return autograd_graph(code, backward) if kind == "graph" else run_program(code)


def explore(**changes: Any) -> dict[str, Any]:
    return autograd.explore(autograd.AutogradParams(**changes), LIMITS, run)


def central_difference(f, values: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d f / d values, one coordinate at a time, in float64."""
    grad = np.zeros_like(values, dtype=np.float64)
    for i in np.ndindex(values.shape):
        up, down = values.astype(np.float64), values.astype(np.float64)
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad


def labels(result: dict[str, Any], kind: str) -> list[str]:
    return [node["label"] for node in result["graph"]["nodes"] if node["kind"] == kind]


def producer_of(result: dict[str, Any], tensor: str) -> str:
    nodes = {node["id"]: node for node in result["graph"]["nodes"]}
    (label,) = [
        nodes[e["source"]]["label"]
        for e in result["graph"]["edges"]
        if nodes[e["target"]]["label"] == tensor and nodes[e["source"]]["kind"] == "function"
    ]
    return label


def test_y_is_made_by_addbackward0_and_z_by_mulbackward0() -> None:
    result = explore()
    assert sorted(labels(result, "function")) == ["AccumulateGrad", "AddBackward0", "MulBackward0"]
    assert sorted(labels(result, "tensor")) == ["x", "y", "z"]
    assert producer_of(result, "y") == "AddBackward0"
    assert producer_of(result, "z") == "MulBackward0"
    assert result["program"]["backward"] == "z"


def test_backward_runs_mul_then_add_then_accumulategrad() -> None:
    result = explore()
    assert [s["label"] for s in result["story"]] == [
        "MulBackward0",
        "AddBackward0",
        "AccumulateGrad",
    ]
    mul, add, accumulate = result["story"]
    assert mul["outputs"] == ["z"] and mul["grad_outputs"] == [1.0]
    assert mul["grad_inputs"] == [3.0, 3.0]  # y·1 to each y of y * y
    assert add["grad_outputs"] == [6.0] and add["grad_inputs"] == [6.0, None]  # None: the 2
    assert accumulate["leaf"] == "x" and accumulate["grad_outputs"] == [6.0]
    assert result["leaf_grads"] == [{"name": "x", "grad": 6.0, "text": "6"}]


# Each example as a NumPy function of its leaves, for finite differences.
ORACLES = {
    "notes": {"x": lambda x: (x + 2) ** 2},
    "vector": {"x": lambda x: np.mean((x + 2) ** 2)},
    "shared": {
        "a": lambda a: np.sin(a * 3.0 + a),
        "b": lambda b: np.sin(2.0 * b + 2.0),
    },
    "regression": {
        "w": lambda w: np.mean((w * np.arange(1.0, 5.0) - 2 * np.arange(1.0, 5.0)) ** 2)
    },
}
LEAVES = {"notes": {"x": 1.0}, "vector": {"x": [1.0, 2.0, 3.0]}, "shared": {"a": 2.0, "b": 3.0},
          "regression": {"w": 0.0}}  # fmt: skip


@pytest.mark.parametrize("example", list(autograd.EXAMPLES))
def test_every_examples_leaf_grads_match_finite_differences(example: str) -> None:
    result = explore(example=example)
    assert result["graph"]["error"] is None
    grads = {g["name"]: np.asarray(g["grad"], dtype=np.float64) for g in result["leaf_grads"]}
    assert set(grads) == set(ORACLES[example])
    for name, f in ORACLES[example].items():
        at = np.asarray(LEAVES[example][name], dtype=np.float64)
        expected = central_difference(f, at)
        np.testing.assert_allclose(grads[name], expected, rtol=1e-4, atol=1e-4)


def test_a_leaf_used_twice_gets_the_sum_of_both_paths() -> None:
    result = explore(example="shared")
    a_grad = next(g["grad"] for g in result["leaf_grads"] if g["name"] == "a")
    assert a_grad == pytest.approx(math.cos(2 * 3 + 2) * (3 + 1), rel=1e-5)


@pytest.mark.parametrize("x", [1.0, -0.5, 2.5, -2.0])
def test_chain_rule_is_dz_dy_times_dy_dx_by_formula_and_finite_differences(x: float) -> None:
    chain = explore(chain_x=x)["chain"]
    y = x + 2
    assert chain["x"] == x and chain["y"] == pytest.approx(y) and chain["z"] == pytest.approx(y * y)
    assert chain["dz_dy"] == pytest.approx(2 * y)  # dz/dy = 2y
    assert chain["dy_dx"] == 1.0  # dy/dx = 1
    assert chain["dz_dx"] == pytest.approx(chain["dz_dy"] * chain["dy_dx"])
    assert chain["product"] == pytest.approx(chain["dz_dx"])
    assert sum(chain["mul_grad_inputs"]) == pytest.approx(chain["dz_dy"])
    fd = central_difference(lambda v: (v + 2) ** 2, np.array(x))
    assert chain["dz_dx"] == pytest.approx(float(fd), abs=1e-4)
    assert chain["finite_difference"] == pytest.approx(float(fd), abs=1e-6)


def test_the_notes_chain_rule_gives_six() -> None:
    chain = explore()["chain"]
    assert (chain["dz_dy"], chain["dy_dx"], chain["dz_dx"]) == (6.0, 1.0, 6.0)


def test_backward_twice_without_zero_doubles_and_zero_resets() -> None:
    rows = explore()["accumulation"]["rows"]
    assert [r["source"] for r in rows][2::3] == ["z.backward()", "x.grad.zero_()"]
    assert [r["grad"] for r in rows] == [None, None, 6.0, 6.0, 12.0, 0.0, 0.0, 6.0]


def test_no_grad_builds_no_graph() -> None:
    result = explore()["no_grad"]
    assert result["outside"] == {"name": "y", "value": "2", "requires_grad": True,
                                 "grad_fn": "MulBackward0", "is_leaf": False}  # fmt: skip
    assert result["inside"]["requires_grad"] is False and result["inside"]["grad_fn"] is None
    drawn = {node["variable"] for node in result["graph"]["nodes"]}
    assert "y" in drawn and "y_ng" not in drawn
    assert [node["label"] for node in result["loose"]] == ["y_ng"]


def numpy_descent(lr: float, epochs: int) -> tuple[list[float], list[float]]:
    """The same loop with the gradient written out: d/dw mean((wX - Y)²) = mean(2(wX - Y)X)."""
    X = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    Y = 2 * X
    w = np.float32(0.0)
    weights, losses = [float(w)], []
    for _ in range(epochs):
        error = w * X - Y
        losses.append(float(np.mean(error**2)))
        w = np.float32(w - np.float32(lr) * np.mean(2 * error * X))
        weights.append(float(w))
    return weights, losses


@pytest.mark.parametrize(("lr", "epochs"), [(0.01, 20), (0.05, 60), (0.001, 5)])
def test_gradient_descent_equals_numpy(lr: float, epochs: int) -> None:
    descent = explore(learning_rate=lr, epochs=epochs)["descent"]
    weights, losses = numpy_descent(lr, epochs)
    assert len(descent["weights"]) == epochs + 1 and len(descent["losses"]) == epochs
    np.testing.assert_allclose(descent["weights"], weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(descent["losses"], losses, rtol=1e-5, atol=1e-6)


def test_gradient_descent_converges_to_the_true_weight() -> None:
    descent = explore(learning_rate=0.01, epochs=200)["descent"]
    assert descent["final_weight"] == pytest.approx(2.0, abs=1e-4)
    assert descent["final_loss"] < 1e-6
    # 20 epochs at 0.01: w = 2(1 - 0.85^20), as the notes' run shows
    assert explore()["descent"]["final_weight"] == pytest.approx(2 * (1 - 0.85**20), abs=1e-4)


def test_gradient_descent_diverges_past_the_critical_learning_rate() -> None:
    descent = explore(learning_rate=0.15, epochs=30)["descent"]
    assert descent["diverges_above"] == pytest.approx(1 / 7.5)
    errors = [abs(w - 2) for w in descent["weights"]]
    assert errors[-1] > errors[0]


def test_a_learners_program_calls_backward_on_its_last_scalar() -> None:
    code = "a = torch.tensor([1., 2.], requires_grad=True)\nb = a * 3\nc = b.sum()\n"
    result = explore(code=code)
    assert result["program"]["custom"] and result["program"]["backward"] == "c"
    assert result["program"]["candidates"] == ["a", "b", "c"]
    assert result["leaf_grads"] == [{"name": "a", "grad": [3.0, 3.0], "text": "[3, 3]"}]


def test_a_program_equal_to_an_example_is_that_example() -> None:
    code = autograd.EXAMPLES["shared"].code.replace("\n", "\r\n") + "\n\n"
    assert explore(code=code)["program"]["example"] == "shared"


def test_backward_on_a_vector_explains_that_it_needs_a_scalar() -> None:
    result = explore(example="vector", backward="z")
    assert result["story"] == [] and result["leaf_grads"] == []
    assert "needs a scalar output" in result["graph"]["error"]["message"]
    assert "z.mean()" in result["graph"]["error"]["message"]


def test_an_empty_backward_draws_the_forward_graph_only() -> None:
    result = explore(backward="")
    assert result["steps"] == 0 and result["graph"]["nodes"]
    assert result["program"]["backward"] == ""


def test_the_step_is_clamped_to_the_replay() -> None:
    assert explore(step=99)["step"] == 3
    assert explore(step=-4)["step"] == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"example": "nope"}, "example must be one of"),
        ({"learning_rate": 0.0}, "learning_rate must be above 0"),
        ({"learning_rate": 5.0}, "at most 1"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"chain_x": math.nan}, "chain_x must be a finite number"),
    ],
)
def test_bad_parameters_name_the_problem(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(LessonInputError, match=message):
        explore(**changes)


def test_too_many_epochs_names_the_limit() -> None:
    with pytest.raises(LimitExceeded, match="max_epochs"):
        explore(epochs=LIMITS.max_epochs + 1)


def test_a_refused_program_raises_in_the_sandbox_itself() -> None:
    # The page's runner turns this into a message beside the editor (tests/web).
    with pytest.raises(SandboxRefused):
        explore(code="eval('1')\n")


def test_the_snippet_runs_and_prints_the_pages_numbers() -> None:
    params = autograd.AutogradParams(learning_rate=0.02, epochs=30)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(autograd.snippet(params), "snippet", "exec"), {})  # noqa: S102
    text = printed.getvalue()
    assert "x.grad = tensor(6.)" in text
    descent = explore(learning_rate=0.02, epochs=30)["descent"]
    assert f"w = {descent['final_weight']:.4f}" in text


def test_every_page_program_is_recognised_as_fixed() -> None:
    fixed = [autograd.ACCUMULATION_PROGRAM, autograd.NO_GRAD_PROGRAM, autograd.chain_program(-2.5)]
    fixed += [example.code for example in autograd.EXAMPLES.values()]
    assert all(autograd.is_lesson_program(code) for code in fixed)
    assert not autograd.is_lesson_program("x = torch.ones(3)\n")
