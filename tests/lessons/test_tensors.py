"""The Tensor basics examples: each runs in the sandbox and shows exactly the notes' claim.

Values are checked against NumPy (or plain PyTorch run outside the sandbox), and the storage
tokens against what the claim says must share memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from app.lessons import tensors
from app.lessons.errors import LessonInputError
from app.sandbox import SandboxLimits, SandboxRefused, run_program
from app.viz import tensors as tensor_figures

LIMITS = SandboxLimits()


def sandbox(code: str) -> dict[str, Any]:
    """The lesson's runner, in process: refusals come back as data, as the page's runner does."""
    try:
        return run_program(code, LIMITS)
    except SandboxRefused as refused:
        return {
            "steps": [],
            "error": None,
            "refused": {"line": refused.line, "message": str(refused)},
        }


def trace(name: str) -> dict[str, Any]:
    return sandbox(tensors.EXAMPLES[name].code)


def last(name: str) -> dict[str, dict[str, Any]]:
    """Every variable after the example's last statement."""
    return trace(name)["steps"][-1]["variables"]


def array(value: dict[str, Any]) -> np.ndarray:
    return np.asarray(value["values"], dtype=np.float64)


def after_line(result: dict[str, Any], line: int) -> dict[str, dict[str, Any]]:
    return next(s for s in result["steps"] if s["line"] == line)["variables"]


@pytest.mark.parametrize("name", list(tensors.EXAMPLES))
def test_every_example_runs_without_error_one_step_per_line(name: str) -> None:
    example = tensors.EXAMPLES[name]
    result = trace(name)
    assert result["error"] is None and "refused" not in result
    lines = [n for n, text in enumerate(example.code.splitlines(), 1) if text.strip()]
    assert [s["line"] for s in result["steps"]] == lines
    assert example.title and len(example.explanation) > 80


@pytest.mark.parametrize("name", list(tensors.EXAMPLES))
def test_every_snippet_runs_in_plain_python_to_the_same_values(name: str) -> None:
    """The snippet on the page is the program itself: plain PyTorch gives the sandbox's values."""
    namespace: dict[str, Any] = {}
    exec(tensors.snippet(tensors.TensorParams(example=name)), namespace)
    for var, value in last(name).items():
        real = namespace[var]
        if value["kind"] == "tensor":
            assert (
                list(real.shape) == value["shape"] and str(real.dtype) == f"torch.{value['dtype']}"
            )
            if var != "e":  # torch.empty: whatever the memory held (the sandbox shows zeros)
                np.testing.assert_allclose(real.detach().numpy(), array(value), rtol=1e-6)
        elif value["kind"] == "ndarray":
            np.testing.assert_allclose(real, array(value))
        elif value["kind"] == "number":
            assert real == pytest.approx(value["value"])


def test_create_gives_the_shapes_asked_for_and_the_values_each_function_promises() -> None:
    v = last("create")
    for name in "ezort":
        assert v[name]["shape"] == [2, 3] and v[name]["dtype"] == "float32"
    assert np.all(array(v["z"]) == 0) and np.all(array(v["o"]) == 1)
    r = array(v["r"])
    assert np.all((r >= 0) & (r < 1))
    torch.manual_seed(0)
    np.testing.assert_allclose(r, torch.rand(2, 3).numpy(), rtol=1e-6)  # the seed replays it
    np.testing.assert_array_equal(array(v["t"]), [[1, 2, 3], [4, 5, 6]])
    assert len({v[name]["storage"] for name in "ezort"}) == 5  # five separate blocks of memory


def test_dtype_is_inferred_set_and_cast_into_new_memory() -> None:
    v = last("dtype")
    dtypes = {name: v[name]["dtype"] for name in "abcdef"}
    assert dtypes == {"a": "int64", "b": "float32", "c": "float64", "d": "float32",
                      "e": "int32", "f": "float32"}  # fmt: skip
    assert v["d"]["storage"] != v["a"]["storage"]  # a cast copies
    np.testing.assert_array_equal(array(v["f"]), np.array([1, 2, 3]) / 2)


def test_trailing_underscore_changes_the_tensor_in_place_and_add_makes_a_new_one() -> None:
    result = trace("inplace")
    steps = result["steps"]
    x_storages = {s["variables"]["x"]["storage"] for s in steps}
    assert len(x_storages) == 1  # add_ and mul_ never move x
    after_add = after_line(result, 3)
    np.testing.assert_array_equal(array(after_add["x"]), np.ones((2, 2)))  # add left x alone
    np.testing.assert_array_equal(array(after_add["z"]), np.ones((2, 2)) + 1)
    assert after_add["z"]["storage"] != after_add["x"]["storage"]
    v = last("inplace")
    np.testing.assert_array_equal(array(v["x"]), (np.ones((2, 2)) + 1) * 3)
    np.testing.assert_array_equal(array(v["y"]), np.ones((2, 2)) + 1)  # += is in place too
    assert v["x"]["version"] == 2 and v["y"]["version"] == 1


def test_slicing_matches_numpy_and_a_slice_is_a_view() -> None:
    x = np.arange(12).reshape(3, 4)
    v = last("slicing")
    expected = x.copy()
    expected[0, 1] = 100  # block[0, 0] is x[0, 1]
    np.testing.assert_array_equal(array(v["x"]), expected)
    np.testing.assert_array_equal(array(v["row"]), expected[1])
    np.testing.assert_array_equal(array(v["col"]), expected[:, 2])
    np.testing.assert_array_equal(array(v["block"]), expected[0:2, 1:3])
    assert v["corner"] == {"kind": "number", "value": int(x[-1, -1]), "type": "int"}
    assert v["col"]["stride"] == [4]  # a column steps over a whole row
    assert {v[name]["storage"] for name in ("x", "row", "col", "block")} == {v["x"]["storage"]}


def test_item_turns_a_one_element_tensor_into_a_python_number() -> None:
    x = np.array([3.5, 1.25, 2.0])
    v = last("item")
    assert v["total"]["kind"] == "tensor" and v["total"]["shape"] == []
    assert v["value"] == {"kind": "number", "value": x.sum(), "type": "float"}
    assert v["first"]["value"] == x[0]
    printed = f"{torch.tensor(x.sum(), dtype=torch.float32)!s} {x.sum()}\n"  # as print() shows
    assert trace("item")["steps"][-1]["stdout"] == printed


def test_view_4_minus_1_on_a_2x2_gives_a_4x1_over_the_same_memory() -> None:
    result = trace("view")
    b_made = after_line(result, 2)
    assert b_made["b"]["shape"] == [4, 1]  # -1 inferred as 1
    assert b_made["b"]["storage"] == b_made["a"]["storage"]
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(array(b_made["b"]), a.reshape(4, -1))
    v = last("view")
    a[0, 0] = 10.0
    assert v["b"]["shape"] == [4, 1] and v["c"]["shape"] == [4]
    assert v["a"]["storage"] == v["b"]["storage"] == v["c"]["storage"]
    np.testing.assert_array_equal(array(v["b"]), a.reshape(4, 1))  # b saw the write into a
    np.testing.assert_array_equal(array(v["c"]), a.reshape(-1))


def test_numpy_and_from_numpy_share_memory_both_ways() -> None:
    result = trace("numpy")
    before = after_line(result, 2)
    after = after_line(result, 3)
    assert before["n"]["kind"] == "ndarray" and before["n"]["storage"] == before["a"]["storage"]
    np.testing.assert_array_equal(array(before["n"]), np.ones(3))
    np.testing.assert_array_equal(array(after["n"]), np.ones(3) + 1)  # a.add_(1) moved n
    assert result["steps"][3]["stdout"] == f"{np.ones(3, dtype=np.float32) + 1}\n"
    v = last("numpy")
    assert v["t"]["storage"] == v["m"]["storage"] != v["a"]["storage"]
    assert v["t"]["dtype"] == "float64"  # from_numpy keeps the array's dtype
    np.testing.assert_array_equal(array(v["t"]), np.zeros(3) + 5)  # m += 5 moved t


def test_requires_grad_records_the_operations_and_backward_fills_grad() -> None:
    v = last("requires_grad")
    assert v["x"]["requires_grad"] and v["x"]["is_leaf"]
    assert v["y"]["grad_fn"] == "MulBackward0" and not v["y"]["is_leaf"]
    assert not v["w"]["requires_grad"]
    np.testing.assert_array_equal(np.asarray(v["x"]["grad"]), np.full(3, 2.0))  # d(sum 2x)/dx


def test_star_is_elementwise_and_at_is_the_matrix_product() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[10.0, 20.0], [30.0, 40.0]])
    v = last("multiply")
    np.testing.assert_array_equal(array(v["elementwise"]), a * b)
    np.testing.assert_array_equal(array(v["product"]), a @ b)
    np.testing.assert_array_equal(array(v["same"]), a @ b)
    assert not np.array_equal(a * b, a @ b)


# ---- one step of the page ------------------------------------------------------------------


def test_a_step_shows_its_line_what_changed_and_what_shares_memory() -> None:
    view = tensors.step_view(trace("view"), 2)
    assert (view["step"], view["count"], view["index"], view["line"]) == (2, 4, 1, 2)
    assert view["changed"] == ["b"] and not view["is_error"]
    assert view["shared"] == [{"storage": "s1", "names": ["a", "b"]}]
    assert view["variable"] == "b"
    last_view = tensors.step_view(trace("view"), 4)
    assert last_view["changed"] == ["a", "b", "c"]  # one write, three names see it
    assert last_view["variable"] == "a"


def test_steps_outside_the_trace_are_clamped() -> None:
    result = trace("view")
    assert tensors.step_view(result, 99)["step"] == 4
    assert tensors.step_view(result, -3)["step"] == 1


def test_a_runtime_error_is_one_more_step_on_the_failing_line_with_the_last_variables() -> None:
    result = sandbox("a = torch.ones(3)\nprint(a.sum())\nb = a.item()\n")
    assert result["error"]["line"] == 3
    view = tensors.step_view(result, 99)
    assert (view["step"], view["count"], view["line"], view["is_error"]) == (3, 3, 3, True)
    assert view["index"] == 1 and view["changed"] == []
    assert view["stdout_before"] == "tensor(3.)\n"
    assert tensors.step_view(result, 2)["stdout_before"] == ""  # its own print is the step's


def test_a_program_that_fails_at_once_or_is_refused_has_nothing_to_step() -> None:
    syntax = sandbox("a = (")
    view = tensors.step_view(syntax, 1)
    assert view["count"] == 1 and view["is_error"] and view["index"] is None
    refused = sandbox("eval('1')")
    assert refused["refused"]["line"] == 1
    assert tensors.step_view(refused, 1)["count"] == 0


def test_changed_variables_are_new_or_different() -> None:
    one = {"kind": "number", "value": 1}
    two = {"kind": "number", "value": 2}
    assert tensors.changed_variables({"a": one}, {"a": one, "b": two}) == ["b"]
    assert tensors.changed_variables({"a": one}, {"a": two}) == ["a"]


def test_the_heatmap_draws_the_tensor_asked_for_else_the_one_that_changed() -> None:
    variables = last("view")
    assert tensors.heatmap_variable(variables, [], "c") == "c"
    assert tensors.heatmap_variable(variables, ["b"], "nope") == "b"
    assert tensors.heatmap_variable(variables, [], "") == "c"
    assert tensors.heatmap_variable({"x": {"kind": "number", "value": 1}}, ["x"]) is None


def test_explore_runs_the_learners_code_in_place_of_the_example() -> None:
    params = tensors.TensorParams(example="view", code="x = torch.ones(2)\ny = x * 3\n", step=2)
    result = tensors.explore(params, sandbox)
    assert result["edited"] and result["lines"] == ["x = torch.ones(2)", "y = x * 3"]
    y = result["steps"][result["index"]]["variables"]["y"]
    np.testing.assert_array_equal(array(y), np.ones(2) * 3)
    plain = tensors.explore(tensors.TensorParams(example="view"), sandbox)
    assert not plain["edited"] and plain["code"] == tensors.EXAMPLES["view"].code


def test_an_unknown_example_is_an_error_that_lists_the_examples() -> None:
    with pytest.raises(LessonInputError, match="view"):
        tensors.explore(tensors.TensorParams(example="nope"), sandbox)


def test_the_heatmap_figure_holds_the_tensors_values_row_by_row() -> None:
    result = tensors.explore(tensors.TensorParams(example="view", step=2), sandbox)
    trace_ = tensor_figures.figures(result)["heatmap"]["data"][0]
    assert trace_["type"] == "heatmap"
    assert trace_["z"] == np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(4, 1).tolist()
    assert tensor_figures.as_rows(5, []) == [[5.0]]
    assert tensor_figures.as_rows([[[1, 2]], [[3, "nan"]]], [2, 1, 2]) == [[1.0, 2.0], [3.0, None]]
    assert tensor_figures.heatmap(None, None)["data"][0]["z"] == []  # one empty trace
