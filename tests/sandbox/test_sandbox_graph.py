"""autograd_graph: the real graph, the engine's order, and leaf grads against finite differences."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from app.sandbox import SandboxRefused, autograd_graph


def functions(graph: dict[str, Any]) -> dict[str, str]:
    return {n["id"]: n["label"] for n in graph["nodes"] if n["kind"] == "function"}


def tensors(graph: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {n["variable"]: n for n in graph["nodes"] if n["kind"] == "tensor"}


def test_contract_example_y_x_plus_2_z_y_times_y() -> None:
    code = "x = torch.tensor(1.0, requires_grad=True)\ny = x + 2\nz = y * y\n"
    graph = autograd_graph(code, "z")
    json.dumps(graph, allow_nan=False)
    assert graph["error"] is None
    assert {"AddBackward0", "MulBackward0", "AccumulateGrad"} <= set(functions(graph).values())
    assert graph["variables"]["x"]["grad"] == 6.0
    assert graph["variables"]["y"]["grad"] == 6.0  # intermediates keep their grads too


def test_edges_run_forward_from_leaf_through_named_intermediates() -> None:
    code = "x = torch.tensor(1.0, requires_grad=True)\ny = x + 2\nz = y * y\n"
    graph = autograd_graph(code, "z")
    ids = {n["label"]: n["id"] for n in graph["nodes"]}
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert edges == {
        (ids["x"], ids["AccumulateGrad"]),
        (ids["AccumulateGrad"], ids["AddBackward0"]),
        (ids["AddBackward0"], ids["y"]),
        (ids["y"], ids["MulBackward0"]),
        (ids["MulBackward0"], ids["z"]),
    }


def test_backward_steps_follow_the_engine_from_output_to_leaf() -> None:
    code = "x = torch.tensor(1.0, requires_grad=True)\ny = x + 2\nz = y * y\n"
    graph = autograd_graph(code, "z")
    labels = functions(graph)
    steps = graph["backward_steps"]
    assert [labels[s["node"]] for s in steps] == ["MulBackward0", "AddBackward0", "AccumulateGrad"]
    assert steps[0]["grad_outputs"] == [1.0] and steps[0]["grad_inputs"] == [3.0, 3.0]
    assert steps[1]["grad_outputs"] == [6.0] and steps[1]["grad_inputs"] == [6.0, None]
    assert steps[2]["grad_outputs"] == [6.0]


def test_without_backward_the_graph_of_every_variable_is_drawn_and_nothing_runs() -> None:
    code = "a = torch.ones(2, requires_grad=True)\nb = a.exp()\nc = (a * 3).sum()\n"
    graph = autograd_graph(code, None)
    assert {"ExpBackward0", "SumBackward0", "MulBackward0"} <= set(functions(graph).values())
    assert graph["backward_steps"] == []
    assert graph["variables"]["a"]["grad"] is None
    assert set(tensors(graph)) == {"a", "b", "c"}


def test_model_parameters_are_named_in_the_graph() -> None:
    code = "model = nn.Linear(2, 1)\nx = torch.ones(3, 2)\nloss = model(x).pow(2).mean()\n"
    graph = autograd_graph(code, "loss")
    names = set(tensors(graph))
    assert {"model.weight", "model.bias", "loss"} <= names
    assert tensors(graph)["model.weight"]["grad"] is not None


def test_non_scalar_output_explains_that_backward_needs_a_scalar() -> None:
    graph = autograd_graph("x = torch.ones(3, requires_grad=True)\ny = x * 2\n", "y")
    assert "scalar" in graph["error"]["message"] and "y.sum()" in graph["error"]["message"]
    assert graph["nodes"]  # the graph is still drawn


def test_unknown_backward_variable_is_an_error() -> None:
    graph = autograd_graph("x = torch.ones(3, requires_grad=True)\n", "nope")
    assert graph["error"] == {
        "line": None,
        "message": "backward: 'nope' is not defined in the program",
    }


def test_backward_through_a_freed_graph_is_pytorchs_error() -> None:
    code = "x = torch.ones(2, requires_grad=True)\ny = (x * x).sum()\ny.backward()\n"
    graph = autograd_graph(code, "y")
    assert "backward through the graph a second time" in graph["error"]["message"]


def test_runtime_error_in_the_program_is_reported_with_its_line() -> None:
    code = "x = torch.ones(2, requires_grad=True)\ny = x + torch.ones(3)\n"
    graph = autograd_graph(code, "y")
    assert graph["error"]["line"] == 2
    assert "must match" in graph["error"]["message"]


def test_no_grad_makes_no_graph() -> None:
    code = "x = torch.ones(2, requires_grad=True)\nwith torch.no_grad():\n    y = (x * 2).sum()\n"
    graph = autograd_graph(code, None)
    assert functions(graph) == {}


def test_refusals_are_raised_like_run_program() -> None:
    with pytest.raises(SandboxRefused):
        autograd_graph("eval('os')\n", None)


# -- generated programs against finite differences ------------------------------------------------

UNARY: dict[str, tuple[Callable[[str], str], Callable[[Any], Any]]] = {
    "sin": (lambda a: f"torch.sin({a})", np.sin),
    "exp": (lambda a: f"({a}).exp()", np.exp),
    "tanh": (lambda a: f"torch.tanh({a})", np.tanh),
    "square": (lambda a: f"({a}) ** 2", lambda v: v**2),
    "cube": (lambda a: f"({a}).pow(3)", lambda v: v**3),
    "neg": (lambda a: f"-({a})", lambda v: -v),
}
BINARY: dict[str, tuple[Callable[[str, str], str], Callable[[Any, Any], Any]]] = {
    "+": (lambda a, b: f"({a} + {b})", lambda x, y: x + y),
    "-": (lambda a, b: f"({a} - {b})", lambda x, y: x - y),
    "*": (lambda a, b: f"({a} * {b})", lambda x, y: x * y),
    # a denominator that never crosses zero keeps the finite differences well behaved
    "/": (lambda a, b: f"({a} / (1.5 + torch.tanh({b})))", lambda x, y: x / (1.5 + np.tanh(y))),
}
REDUCE: dict[str, tuple[Callable[[str], str], Callable[[Any], Any]]] = {
    "mean": (lambda a: f"({a}).mean()", np.mean),
    "sum": (lambda a: f"torch.sum({a})", np.sum),
}


@dataclass
class Expr:
    torch_src: str
    numpy_fn: Callable[[dict[str, np.ndarray]], Any]


def random_expr(rng: random.Random, names: list[str], depth: int, const: bool = False) -> Expr:
    """A random expression over the variables, as PyTorch source and as a NumPy function.

    Constants only appear as the right operand of a binary op, so every function is applied to
    a tensor.
    """
    if depth == 0 or rng.random() < 0.15:
        if const and rng.random() < 0.3:
            c = round(rng.uniform(0.5, 2.0), 3)
            return Expr(repr(c), lambda env, c=c: c)
        name = rng.choice(names)
        return Expr(name, lambda env, name=name: env[name])
    choice = rng.random()
    if choice < 0.35:
        op = rng.choice(list(UNARY))
        inner = random_expr(rng, names, depth - 1)
        render, fn = UNARY[op]
        return Expr(render(inner.torch_src), lambda env: fn(inner.numpy_fn(env)))
    if choice < 0.9:
        op = rng.choice(list(BINARY))
        left = random_expr(rng, names, depth - 1)
        right = random_expr(rng, names, depth - 1, const=op != "/")
        render2, fn2 = BINARY[op]
        return Expr(
            render2(left.torch_src, right.torch_src),
            lambda env: fn2(left.numpy_fn(env), right.numpy_fn(env)),
        )
    op = rng.choice(list(REDUCE))
    inner = random_expr(rng, names, depth - 1)
    render, fn = REDUCE[op]
    return Expr(render(inner.torch_src), lambda env: fn(inner.numpy_fn(env)))


def generated_program(seed: int) -> tuple[str, dict[str, np.ndarray], Callable[..., Any]]:
    rng = random.Random(seed)
    names = ["a", "b", "c"][: rng.randint(1, 3)]
    values = {n: np.array([round(rng.uniform(-1, 1), 4) for _ in range(3)]) for n in names}
    lines = [
        f"{n} = torch.tensor({values[n].tolist()}, dtype=torch.float64, requires_grad=True)"
        for n in names
    ]
    hidden = random_expr(rng, names, 3)
    lines.append(f"h = {hidden.torch_src}")
    outer = random_expr(rng, [*names, "h", "h"], 4)
    final = rng.choice(list(REDUCE))
    lines.append(f"out = {REDUCE[final][0](outer.torch_src)}")

    def f(env: dict[str, np.ndarray]) -> float:
        scope = {**env, "h": hidden.numpy_fn(env)}
        return float(REDUCE[final][1](outer.numpy_fn(scope)))

    return "\n".join(lines) + "\n", values, f


def finite_difference(f: Callable[..., float], values: dict[str, np.ndarray], name: str) -> Any:
    eps = 1e-6
    grad = np.zeros_like(values[name])
    for i in range(values[name].size):
        plus = {k: v.copy() for k, v in values.items()}
        minus = {k: v.copy() for k, v in values.items()}
        plus[name][i] += eps
        minus[name][i] -= eps
        grad[i] = (f(plus) - f(minus)) / (2 * eps)
    return grad


@pytest.mark.parametrize("seed", range(30))
def test_generated_program_grads_match_central_finite_differences(seed: int) -> None:
    code, values, f = generated_program(seed)
    graph = autograd_graph(code, "out")
    assert graph["error"] is None, (code, graph["error"])
    variables = graph["variables"]
    assert variables["out"]["values"] == pytest.approx(f(values), rel=1e-9, abs=1e-12), code
    for name in values:
        grad = variables[name]["grad"]
        expected = finite_difference(f, values, name)
        if grad is None:  # the variable does not reach the output
            assert np.allclose(expected, 0.0, atol=1e-6), code
            continue
        assert np.allclose(grad, expected, rtol=1e-5, atol=1e-6), (code, name, grad, expected)
    labels = set(functions(graph).values())
    assert all(
        label.endswith(("Backward0", "Backward1")) or label == "AccumulateGrad" for label in labels
    ), labels
    ran = [s["node"] for s in graph["backward_steps"]]
    assert len(ran) == len(set(ran)) and set(ran) <= set(functions(graph))


# -- the answer's byte budget (issue 11) ----------------------------------------------------------

# 50 x torch.stack([x] * 1000) of a 400-element x: 81 MB of backward steps before the budget.
STACKS = "x = torch.ones(400, requires_grad=True)\ns = x.sum()\n" + (
    "s = s + torch.stack([x] * 1000).sum()\n" * 50
)


def test_backward_steps_stop_at_the_byte_budget_and_backward_still_runs_to_the_end() -> None:
    from app.sandbox import SandboxLimits
    from app.sandbox.graph import graph_answer

    limits = SandboxLimits(max_answer_bytes=1024 * 1024)
    answer = graph_answer(STACKS, "s", limits)
    body = answer.as_json()
    graph = answer.as_dict()
    assert len(body) <= 1024 * 1024 and json.loads(body) == graph
    notice = next(n for n in graph["notices"] if "max_answer_bytes" in n)
    assert str(1024 * 1024) in notice and "grads are right" in notice
    ran = int(notice.split(" of ")[1].split()[0])
    assert 0 < len(graph["backward_steps"]) < ran
    # Every stack sends 1 to each of its 1000 inputs, plus x.sum(): ds/dx = 50 * 1000 + 1.
    np.testing.assert_array_equal(graph["variables"]["x"]["grad"], np.full(400, 50_001.0))


def test_a_small_graph_has_no_notices_and_its_json_is_its_data() -> None:
    from app.sandbox import SandboxLimits
    from app.sandbox.graph import graph_answer

    code = "x = torch.tensor(1.0, requires_grad=True)\ny = x + 2\nz = y * y\nprint(z)\n"
    answer = graph_answer(code, "z", SandboxLimits())
    assert json.loads(answer.as_json()) == answer.as_dict()
    graph = answer.as_dict()
    assert graph["notices"] == [] and graph["stdout"] == "tensor(9., grad_fn=<MulBackward0>)\n"


def test_with_a_tiny_budget_the_values_go_before_the_graph_does() -> None:
    from app.sandbox import SandboxLimits
    from app.sandbox.graph import graph_answer

    code = (
        "x = torch.ones(400, requires_grad=True)\n"
        + "".join(f"y{i} = x * {i}\n" for i in range(40))
        + "s = y39.sum()\n"
    )
    limits = SandboxLimits(max_answer_bytes=32 * 1024)
    graph = graph_answer(code, "s", limits).as_dict()
    assert len(json.dumps(graph, separators=(",", ":"))) <= 32 * 1024
    assert {"MulBackward0", "SumBackward0", "AccumulateGrad"} <= set(functions(graph).values())
    assert any("max_answer_bytes" in n for n in graph["notices"])
