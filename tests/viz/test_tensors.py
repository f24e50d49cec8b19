"""The Tensors lesson's heatmap: valid Plotly and strict JSON at every step of every example, and
its cells are the tensor's own values, checked against the same program run in plain Python."""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from app.lessons import tensors
from app.sandbox import SandboxLimits, SandboxRefused, run_program
from app.sandbox.recording import StepsFormat
from app.viz import tensors as figures

LIMITS = SandboxLimits()


@cache
def trace(code: str, steps: StepsFormat = "full") -> dict[str, Any]:
    """The sandbox's trace of ``code``, run once per test module; a refusal comes back as data,
    as the page's runner gives it."""
    try:
        return run_program(code, LIMITS, steps)
    except SandboxRefused as refused:
        return {
            "steps": [],
            "error": None,
            "refused": {"line": refused.line, "message": str(refused)},
        }


def explore(example: str, step: int, var: str = "", code: str = "") -> dict[str, Any]:
    params = tensors.TensorParams(example=example, code=code, step=step, var=var)
    return tensors.explore(params, trace)


def valid(spec: dict[str, Any]) -> None:
    json.dumps(spec, allow_nan=False)
    go.Figure(spec)  # raises on any property plotly.js would not understand
    assert len(spec["data"]) == 1 and spec["data"][0]["type"] == "heatmap"


def as_grid(value: Any) -> list[list[float | None]]:
    """A real tensor or array as the heatmap's rows: its last dimension the columns, non-finite
    numbers as gaps, booleans as 0 and 1."""
    array = value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    array = array.astype(np.float64)
    rows = array.reshape(1, 1) if array.ndim == 0 else array.reshape(-1, array.shape[-1])
    return [[float(v) if math.isfinite(v) else None for v in row] for row in rows.tolist()]


def plain_steps(code: str) -> list[dict[str, Any]]:
    """The program run line by line in plain Python: the namespace after each statement."""
    namespace: dict[str, Any] = {"torch": torch, "np": np}
    states = []
    for text in code.splitlines():
        if not text.strip():
            continue
        exec(compile(text, "example", "exec"), namespace)
        states.append(  # copies: a later in-place write must not reach back into this step
            {
                k: v.detach().clone() if isinstance(v, torch.Tensor) else v.copy()
                for k, v in namespace.items()
                if isinstance(v, torch.Tensor | np.ndarray)
            }
        )
    return states


@pytest.mark.parametrize("example", list(tensors.EXAMPLES))
def test_every_steps_heatmap_holds_the_tensors_values_as_plain_torch_computes_them(
    example: str,
) -> None:
    code = tensors.EXAMPLES[example].code
    plain = plain_steps(code)
    assert len(plain) == tensors.positions(trace(code))
    for step, real in enumerate(plain, 1):
        result = explore(example, step)
        spec = figures.figures(result)["heatmap"]
        valid(spec)
        name = result["variable"]
        assert name is not None and name in real, (example, step)
        z = spec["data"][0]["z"]
        if (example, name) == ("create", "e"):  # torch.empty: the sandbox shows zeros
            assert z == as_grid(torch.zeros_like(real[name]))
        else:
            assert z == as_grid(real[name]), (example, step, name)
        value = real[name]
        kind = "tensor" if isinstance(value, torch.Tensor) else "ndarray"
        dtype = str(value.dtype).removeprefix("torch.")
        title = spec["layout"]["title"]["text"]
        assert title == f"{name}: {kind} {list(value.shape)}, {dtype}"


def test_the_tensor_asked_for_is_drawn_whatever_changed() -> None:
    a = torch.tensor([[10.0, 2.0], [3.0, 4.0]])  # the view example after a[0, 0] = 10.
    for var, expected in (("a", a), ("b", a.view(4, -1)), ("c", a.view(-1))):
        spec = figures.figures(explore("view", 4, var=var))["heatmap"]
        valid(spec)
        assert spec["data"][0]["z"] == as_grid(expected)


def test_non_finite_and_boolean_cells_are_gaps_and_ones_and_zeros() -> None:
    code = (
        "x = torch.tensor([[1., -2.], [0., 3.]]) / torch.tensor([[1., 0.], [0., 1.]])\n"
        "mask = x > 0\n"
        "s = torch.tensor(2.5)\n"
    )
    expected = torch.tensor([[1.0, -2.0], [0.0, 3.0]]) / torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    shown = {}
    for step, name in ((1, "x"), (2, "mask"), (3, "s")):
        spec = figures.figures(explore("create", step, var=name, code=code))["heatmap"]
        valid(spec)
        shown[name] = spec["data"][0]["z"]
    assert shown["x"] == [[1.0, None], [None, 3.0]]  # -2 / 0 = -inf, 0 / 0 = nan: gaps
    assert shown["x"] == as_grid(expected)
    assert shown["mask"] == as_grid(expected > 0) == [[1.0, 0.0], [0.0, 1.0]]
    assert shown["s"] == [[2.5]]  # a 0-d tensor is one cell


def test_small_heatmaps_print_their_numbers_and_large_ones_do_not() -> None:
    code = "small = torch.arange(64.).view(8, 8)\nlarge = torch.arange(65.).view(5, 13)\n"
    small = figures.figures(explore("create", 1, var="small", code=code))["heatmap"]
    large = figures.figures(explore("create", 2, var="large", code=code))["heatmap"]
    for spec in (small, large):
        valid(spec)
    assert small["data"][0]["z"] == np.arange(64.0).reshape(8, 8).tolist()
    assert large["data"][0]["z"] == np.arange(65.0).reshape(5, 13).tolist()
    assert "texttemplate" in small["data"][0] and "texttemplate" not in large["data"][0]
    assert small["layout"]["yaxis"]["autorange"] == "reversed"  # row 0 on top, as printed


def test_a_tensor_too_large_to_list_and_a_step_without_one_give_empty_valid_heatmaps() -> None:
    code = f"big = torch.zeros({LIMITS.max_display_elements + 1})\nn = 3\n"
    result = explore("create", 1, code=code)
    assert result["variable"] == "big"
    spec = figures.figures(result)["heatmap"]
    valid(spec)
    assert spec["data"][0]["z"] == [] and "too many elements" in spec["layout"]["title"]["text"]
    for spec in (
        figures.figures(explore("create", 1, code="n = 3\n"))["heatmap"],
        figures.figures(explore("create", 1, code="eval(1)\n"))["heatmap"],  # refused
    ):
        valid(spec)
        assert spec["data"][0]["z"] == [] and spec["layout"]["title"]["text"].startswith("No")


def test_heatmap_of_a_changes_trace_variable_equals_the_full_traces() -> None:
    """The page's trace has only each step's changes; its view rebuilds the variables and calls
    heatmap() with them, which draws what the full trace's figure draws."""
    code = tensors.EXAMPLES["view"].code
    for step in range(1, 5):
        full = explore("view", step)
        params = tensors.TensorParams(example="view", step=step)
        changes = tensors.explore(params, lambda c: trace(c, "changes"))
        name = changes["variable"]
        assert name == full["variable"]
        spec = figures.heatmap(name, changes["variables"][name])
        valid(spec)
        assert spec == figures.figures(full)["heatmap"]
        assert spec["data"][0]["z"] == as_grid(plain_steps(code)[step - 1][name])


@pytest.mark.parametrize("example", ["view", "inplace", "numpy"])
def test_figures_of_a_changes_trace_draw_the_steps_tensor_as_the_full_trace_does(
    example: str,
) -> None:
    """figures() reads the step's variables as the lesson rebuilt them: a "changes" trace's steps
    hold only what changed (their own "variables" are empty)."""
    code = tensors.EXAMPLES[example].code
    plain = plain_steps(code)
    for step in range(1, tensors.positions(trace(code)) + 1):
        params = tensors.TensorParams(example=example, step=step)
        changes = tensors.explore(params, lambda c: trace(c, "changes"))
        assert changes["steps"][changes["index"]]["variables"] == {}
        spec = figures.figures(changes)["heatmap"]
        valid(spec)
        assert spec == figures.figures(explore(example, step))["heatmap"], (example, step)
        name = changes["variable"]
        assert spec["data"][0]["z"] == as_grid(plain[step - 1][name]), (example, step, name)
