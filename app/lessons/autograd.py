"""Gradient calculation: the dynamic computation graph, backward and the chain rule, accumulation,
torch.no_grad(), and the notes' manual gradient-descent loop.

The programs on the page are learner-editable PyTorch run by the sandbox; this module receives
their results through a ``Runner`` (the web layer passes one that uses the sandbox's worker
processes; tests may pass the in-process sandbox). The gradient-descent loop is plain PyTorch.
Every function here is shown on the lesson page as it stands: the page renders this source.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from app.lessons.errors import LessonInputError, check_limit

# (code, "run" | "graph", variable to call .backward() on or None) -> the sandbox's result
Runner = Callable[[str, Literal["run", "graph"], str | None], dict[str, Any]]

CUSTOM = "custom"  # the example name of a program the learner typed


@dataclass(frozen=True)
class Example:
    """A program from the notes (or close to them) to draw and replay."""

    title: str
    code: str
    backward: str  # the scalar the page calls .backward() on
    note: str  # what to look at, one sentence


EXAMPLES: dict[str, Example] = {
    "notes": Example(
        "The notes: y = x + 2, z = y * y",
        "x = torch.tensor(1.0, requires_grad=True)\ny = x + 2\nz = y * y\n",
        "z",
        "y's grad_fn is AddBackward0 and z's is MulBackward0; backward runs them right to left.",
    ),
    "vector": Example(
        "A vector x, reduced with mean()",
        "x = torch.tensor([1., 2., 3.], requires_grad=True)\ny = x + 2\nz = y * y\n"
        "out = z.mean()\n",
        "out",
        "backward() needs a scalar: z.mean() gives one, and each x_i gets 2(x_i + 2) / 3.",
    ),
    "shared": Example(
        "A leaf used twice: its gradients add up",
        "a = torch.tensor(2.0, requires_grad=True)\nb = torch.tensor(3.0, requires_grad=True)\n"
        "c = a * b\nd = c + a\ne = torch.sin(d)\n",
        "e",
        "a reaches e along two paths, so a.grad is the sum of both: cos(d) * (b + 1).",
    ),
    "regression": Example(
        "The loss of the notes' linear model",
        "w = torch.tensor(0.0, requires_grad=True)\nX = torch.tensor([1., 2., 3., 4.])\n"
        "Y = 2 * X\ny_pred = w * X\nloss = ((y_pred - Y) ** 2).mean()\n",
        "loss",
        "Unnamed results (y_pred - Y, its square) are drawn as their grad_fn only.",
    ),
}

# The notes' example for gradient accumulation: backward twice adds, zero_() resets.
ACCUMULATION_PROGRAM = (
    "x = torch.tensor(1.0, requires_grad=True)\n"
    "z = (x + 2) * (x + 2)\n"
    "z.backward()\n"
    "z = (x + 2) * (x + 2)\n"
    "z.backward()\n"
    "x.grad.zero_()\n"
    "z = (x + 2) * (x + 2)\n"
    "z.backward()\n"
)

# The same operation outside and inside torch.no_grad().
NO_GRAD_PROGRAM = (
    "x = torch.tensor(1.0, requires_grad=True)\n"
    "y = x * 2\n"
    "with torch.no_grad():\n"
    "    y_ng = x * 2\n"
)

# The notes' linear-regression data: f(x) = 2x, so gradient descent should find w = 2.
X_DATA = (1.0, 2.0, 3.0, 4.0)
TRUE_WEIGHT = 2.0


@dataclass(frozen=True)
class AutogradLimits:
    """How much a learner may ask for."""

    max_epochs: int = 500
    max_learning_rate: float = 1.0
    max_abs_x: float = 100.0


@dataclass(frozen=True)
class AutogradParams:
    """What the lesson page lets a learner change; the defaults are the notes' examples."""

    example: str = "notes"  # y = x + 2, z = y * y: the notes' own graph
    code: str = ""  # the learner's program; empty means the example's
    backward: str | None = None  # None: the example's output; "": draw the graph only
    step: int = 0  # backward replay: 0 is the forward graph, k the k-th node the engine ran
    chain_x: float = 1.0  # the notes' x = 1, where dz/dx = 2(x + 2) = 6
    learning_rate: float = 0.01  # the notes' value: converges, since it is below 1 / mean(X²)
    epochs: int = 20  # the notes' 20 iterations: w gets to about 1.93 of 2


# ---- the program and its graph ----------------------------------------------------------------


def _normalise(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.replace("\r\n", "\n").strip().split("\n"))


def choose_program(params: AutogradParams) -> tuple[str, str]:
    """The program to draw and its example name: the learner's code, or the chosen example."""
    if params.code.strip():
        for name, example in EXAMPLES.items():
            if _normalise(params.code) == _normalise(example.code):
                return example.code, name
        return params.code, CUSTOM
    if params.example not in EXAMPLES:
        names = ", ".join(EXAMPLES)
        raise LessonInputError(f"example must be one of {names}; got {params.example[:40]!r}.")
    return EXAMPLES[params.example].code, params.example


_CHAIN = re.compile(  # chain_program(x) for any x
    r"x = torch\.tensor\([-+.e0-9]+, requires_grad=True\)\ny = x \+ 2\nz = y \* y\n"
)


def is_lesson_program(code: str) -> bool:
    """True for the page's own fixed programs, whose results can be reused."""
    fixed = {ACCUMULATION_PROGRAM, NO_GRAD_PROGRAM, *(e.code for e in EXAMPLES.values())}
    return code in fixed or _CHAIN.fullmatch(code) is not None


def backward_candidates(variables: dict[str, Any]) -> list[str]:
    """Variables .backward() can start from: tensors that require grad."""
    return [n for n, v in variables.items() if v.get("kind") == "tensor" and v["requires_grad"]]


def default_backward(variables: dict[str, Any]) -> str | None:
    """The last scalar the program computed with a grad_fn: usually its loss or output."""
    scalars = [
        name
        for name, v in variables.items()
        if v.get("kind") == "tensor" and v["grad_fn"] and math.prod(v["shape"]) == 1
    ]
    return scalars[-1] if scalars else None


def program_graph(code: str, example: str, backward: str | None, run: Runner) -> dict[str, Any]:
    """The real autograd graph of ``code``, after ``backward``.backward() unless that is empty."""
    if backward is None and example in EXAMPLES:
        backward = EXAMPLES[example].backward
    if backward is None:  # a learner's program: find its output first
        graph = run(code, "graph", None)
        backward = default_backward(graph.get("variables", {})) or ""
        if not backward:
            return {**graph, "backward": ""}
    graph = run(code, "graph", backward or None)
    return {**graph, "backward": backward}


def show(value: Any, limit: int = 8) -> str:
    """A tensor's values (a number or nested lists) as short text: 6, [3, 4], None."""
    if value is None:
        return "None"
    if isinstance(value, str):  # "nan", "inf" and "-inf" arrive as strings
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.4g}"
    if isinstance(value, list):
        items = [show(v, limit) for v in value[:limit]]
        return "[" + ", ".join(items) + (", …" if len(value) > limit else "") + "]"
    return str(value)


def backward_story(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per node the engine ran, in its order: the gradient in, the gradients out."""
    nodes = {node["id"]: node for node in graph["nodes"]}
    leaf_of = {  # AccumulateGrad node -> the leaf tensor whose .grad it fills
        e["target"]: nodes[e["source"]]["label"]
        for e in graph["edges"]
        if nodes[e["target"]]["label"] == "AccumulateGrad"
    }
    made: dict[str, list[str]] = {}  # function -> the named tensors it produced
    fed: dict[str, list[str]] = {}  # function -> what feeds it in the forward pass
    for edge in graph["edges"]:
        source, target = nodes[edge["source"]], nodes[edge["target"]]
        if source["kind"] == "function" and target["kind"] == "tensor":
            made.setdefault(source["id"], []).append(target["label"])
        if target["kind"] == "function":
            name = source["label"]
            if source["id"] in leaf_of:
                name = f"AccumulateGrad of {leaf_of[source['id']]}"
            fed.setdefault(target["id"], []).append(name)
    story = []
    for index, step in enumerate(graph["backward_steps"], start=1):
        node = nodes[step["node"]]
        accumulate = node["label"] == "AccumulateGrad"
        leaf = leaf_of.get(node["id"]) if accumulate else None
        story.append(
            {
                "index": index,
                "node": node["id"],
                "label": node["label"],
                "outputs": made.get(node["id"], []),  # grad_outputs are d(root)/d(these)
                "inputs": fed.get(node["id"], []),  # grad_inputs flow back to these
                "grad_outputs": step["grad_outputs"],
                "grad_inputs": step["grad_inputs"],
                "grad_outputs_text": [show(g) for g in step["grad_outputs"]],
                "grad_inputs_text": [show(g) for g in step["grad_inputs"]],
                "leaf": leaf,  # AccumulateGrad adds its gradient into this leaf's .grad
            }
        )
    return story


def leaf_gradients(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """The .grad of every leaf tensor that requires grad: what backward() was for."""
    return [
        {"name": name, "grad": v["grad"], "text": show(v["grad"])}
        for name, v in graph.get("variables", {}).items()
        if v.get("kind") == "tensor" and v["is_leaf"] and v["requires_grad"]
    ]


def graph_nodes(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """The graph's nodes with their values and grads as short text, and which tensors are leaves."""
    variables = graph.get("variables", {})
    accumulators = {n["id"] for n in graph["nodes"] if n["label"] == "AccumulateGrad"}
    feeds_accumulator = {e["source"] for e in graph["edges"] if e["target"] in accumulators}
    nodes = []
    for node in graph["nodes"]:
        value = variables.get(node["variable"] or "", {})
        nodes.append(
            {
                **node,
                "leaf": node["kind"] == "tensor"
                and (value.get("is_leaf", False) or node["id"] in feeds_accumulator),
                "value_text": show(node["value"]) if node["kind"] == "tensor" else "",
                "grad_text": show(node["grad"]) if node["kind"] == "tensor" else "",
            }
        )
    return nodes


# ---- the chain rule -----------------------------------------------------------------------------


def chain_program(x: float) -> str:
    """The notes' example with x set: y = x + 2, z = y * y."""
    return f"x = torch.tensor({float(x)!r}, requires_grad=True)\ny = x + 2\nz = y * y\n"


def chain_rule(z_backward: dict[str, Any], y_backward: dict[str, Any]) -> dict[str, Any]:
    """dz/dy, dy/dx and dz/dx for y = x + 2, z = y * y, each read off a real backward pass.

    ``z_backward`` ran z.backward(): y.grad (kept for the page) is dz/dy and x.grad is dz/dx.
    ``y_backward`` ran y.backward() on the same program: x.grad is dy/dx.
    """
    z_vars, y_vars = z_backward["variables"], y_backward["variables"]
    mul = next(
        step for step, node in _steps_with_nodes(z_backward) if node["label"] == "MulBackward0"
    )
    dz_dy = z_vars["y"]["grad"]  # = sum of MulBackward0's grad_inputs: y feeds both inputs
    dy_dx = y_vars["x"]["grad"]
    dz_dx = z_vars["x"]["grad"]
    return {
        "x": z_vars["x"]["values"],
        "y": z_vars["y"]["values"],
        "z": z_vars["z"]["values"],
        "dz_dy": dz_dy,
        "dy_dx": dy_dx,
        "dz_dx": dz_dx,
        "mul_grad_inputs": mul["grad_inputs"],  # y * y sends y·1 to each of its two inputs
        "product": dz_dy * dy_dx,  # the chain rule: equals dz_dx
    }


def _steps_with_nodes(graph: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    nodes = {node["id"]: node for node in graph["nodes"]}
    return [(step, nodes[step["node"]]) for step in graph["backward_steps"]]


def notes_z(x: torch.Tensor) -> torch.Tensor:
    """The notes' example as one function: y = x + 2, z = y * y."""
    y = x + 2
    return y * y


def finite_difference(x: float, h: float = 1e-4) -> float:
    """dz/dx by a central difference in float64: (z(x + h) - z(x - h)) / 2h, no autograd."""
    x64 = torch.tensor(x, dtype=torch.float64)
    return float((notes_z(x64 + h) - notes_z(x64 - h)) / (2 * h))


# ---- accumulation and no_grad -------------------------------------------------------------------


def grad_after_each_statement(run_result: dict[str, Any], name: str = "x") -> list[dict[str, Any]]:
    """``name``.grad after every statement the program ran: watch it add up and reset."""
    rows = []
    for step in run_result["steps"]:
        value = step["variables"].get(name, {})
        grad = value.get("grad")
        rows.append(
            {"line": step["line"], "source": step["source"], "grad": grad, "text": show(grad)}
        )
    return rows


def no_grad_comparison(run_result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """y = x * 2 outside torch.no_grad() and y_ng = x * 2 inside: only y has a history."""
    last = run_result["steps"][-1]["variables"] if run_result["steps"] else {}

    def facts(name: str) -> dict[str, Any]:
        value = last.get(name, {})
        return {
            "name": name,
            "value": show(value.get("values")),
            "requires_grad": value.get("requires_grad"),
            "grad_fn": value.get("grad_fn"),
            "is_leaf": value.get("is_leaf"),
        }

    return {"outside": facts("y"), "inside": facts("y_ng")}


def loose_tensors(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """Tensor variables the autograd graph does not reach, as graph nodes standing alone."""
    drawn = {node["variable"] for node in graph["nodes"]}
    return [
        {
            "id": f"loose-{name}",
            "kind": "tensor",
            "label": name,
            "variable": name,
            "shape": value["shape"],
            "value": value["values"],
            "grad": value["grad"],
            "leaf": value["is_leaf"],
            "loose": True,
            "value_text": show(value["values"]),
            "grad_text": show(value["grad"]),
        }
        for name, value in graph.get("variables", {}).items()
        if value.get("kind") == "tensor" and name not in drawn
    ]


# ---- the notes' gradient-descent loop ----------------------------------------------------------


def gradient_descent(
    X: torch.Tensor, Y: torch.Tensor, learning_rate: float, epochs: int
) -> dict[str, list[float]]:
    """The notes' manual loop: forward, loss, backward, update under no_grad, zero the grad."""
    w = torch.tensor(0.0, requires_grad=True)  # the notes start from w = 0
    weights, losses = [w.item()], []
    for _epoch in range(epochs):
        y_pred = w * X  # forward pass
        loss = ((y_pred - Y) ** 2).mean()  # mean squared error
        loss.backward()  # d loss / d w, added into w.grad
        assert w.grad is not None  # backward() just filled it
        with torch.no_grad():  # the update itself must not join the graph
            w -= learning_rate * w.grad
        w.grad.zero_()  # else the next epoch's backward adds to this gradient
        weights.append(w.item())
        losses.append(loss.item())
    return {"weights": weights, "losses": losses}  # weights[k]: w after k epochs


# ---- the lesson page -----------------------------------------------------------------------------


def check_params(params: AutogradParams, limits: AutogradLimits) -> None:
    """Learning rate, epochs and x within range, each message naming the limit."""
    lr = params.learning_rate
    if not (math.isfinite(lr) and 0 < lr <= limits.max_learning_rate):
        raise LessonInputError(
            f"learning_rate must be above 0 and at most {limits.max_learning_rate:g} "
            f"(setting autograd_max_learning_rate); got {lr:g}."
        )
    if params.epochs < 1:
        raise LessonInputError(f"epochs must be at least 1; got {params.epochs}.")
    check_limit("epochs", "autograd_max_epochs", limits.max_epochs, params.epochs)
    if not math.isfinite(params.chain_x):
        raise LessonInputError(f"chain_x must be a finite number; got {params.chain_x}.")
    check_limit("|chain_x|", "autograd_max_abs_x", limits.max_abs_x, abs(params.chain_x))


def explore(params: AutogradParams, limits: AutogradLimits, run: Runner) -> dict[str, Any]:
    """Everything the lesson page shows for one set of parameters, as plain numbers and text."""
    check_params(params, limits)
    code, example = choose_program(params)
    graph = program_graph(code, example, params.backward, run)
    story = backward_story(graph)
    chain_code = chain_program(params.chain_x)
    chain = chain_rule(run(chain_code, "graph", "z"), run(chain_code, "graph", "y"))
    accumulation = run(ACCUMULATION_PROGRAM, "run", None)
    no_grad_run = run(NO_GRAD_PROGRAM, "run", None)
    no_grad_graph = run(NO_GRAD_PROGRAM, "graph", None)
    X = torch.tensor(X_DATA)
    descent = gradient_descent(X, TRUE_WEIGHT * X, params.learning_rate, params.epochs)
    mean_square = sum(v * v for v in X_DATA) / len(X_DATA)
    return {
        "program": {
            "code": code,
            "example": example,
            "custom": example == CUSTOM,
            "title": EXAMPLES[example].title if example in EXAMPLES else "Your program",
            "note": EXAMPLES[example].note if example in EXAMPLES else "",
            "backward": graph["backward"],
            "candidates": backward_candidates(graph.get("variables", {})),
        },
        "graph": {
            "nodes": graph_nodes(graph),
            "edges": graph["edges"],
            "error": graph["error"],
            "refused": graph.get("refused", False),
            "truncated": graph.get("truncated", False),
            "stdout": graph.get("stdout", ""),
            "notices": list(graph.get("notices") or []),  # what the sandbox left out, and why
        },
        "story": story,
        "steps": len(story),
        "step": min(max(params.step, 0), len(story)),
        "leaf_grads": leaf_gradients(graph) if graph["backward"] and not graph["error"] else [],
        "chain": {
            **chain,
            "code": chain_code,
            "finite_difference": finite_difference(params.chain_x),
        },
        "accumulation": {
            "code": ACCUMULATION_PROGRAM,
            "rows": grad_after_each_statement(accumulation),
            "error": accumulation["error"],
        },
        "no_grad": {
            "code": NO_GRAD_PROGRAM,
            **no_grad_comparison(no_grad_run),
            "graph": {"nodes": graph_nodes(no_grad_graph), "edges": no_grad_graph["edges"]},
            "loose": loose_tensors(no_grad_graph),
        },
        "descent": {
            "learning_rate": params.learning_rate,
            "epochs": params.epochs,
            "x": list(X_DATA),
            "true_weight": TRUE_WEIGHT,
            "weights": descent["weights"],
            "losses": descent["losses"],
            "final_weight": descent["weights"][-1],
            "final_loss": descent["losses"][-1],
            "diverges_above": 1 / mean_square,  # |1 - lr * 2 mean(X²)| > 1 past this rate
        },
    }


def snippet(params: AutogradParams) -> str:
    """Plain PyTorch that reproduces the page's main numbers; paste it into Python."""
    code, example = choose_program(params)
    backward = params.backward
    if backward is None and example in EXAMPLES:
        backward = EXAMPLES[example].backward
    lines = ["import torch", "", code.rstrip()]
    if backward:
        lines.append(f"{backward}.backward()")
        leaves = re.findall(r"^(\w+) = torch\.\w+\(.*requires_grad=True", code, re.MULTILINE)
        lines += [f"print('{leaf}.grad =', {leaf}.grad)" for leaf in leaves]
    return "\n".join(lines) + (
        "\n\n# The notes' gradient descent\n"
        "X = torch.tensor([1., 2., 3., 4.])\n"
        "Y = 2 * X\n"
        "w = torch.tensor(0.0, requires_grad=True)\n"
        f"learning_rate = {params.learning_rate!r}\n"
        f"for epoch in range({params.epochs}):\n"
        "    y_pred = w * X\n"
        "    loss = ((y_pred - Y) ** 2).mean()\n"
        "    loss.backward()\n"
        "    with torch.no_grad():\n"
        "        w -= learning_rate * w.grad\n"
        "    w.grad.zero_()\n"
        "print(f'w = {w.item():.4f}, loss = {loss.item():.6f}')\n"
    )
