"""The real autograd graph of a learner program, and a node-by-node record of its backward pass."""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
from torch import nn

from app.sandbox.interpreter import execute, session
from app.sandbox.limits import SandboxLimits
from app.sandbox.recording import fit_text, reserved_bytes
from app.sandbox.values import RecordingBudgetExceeded, Serializer, json_text, tensor_values

Node = torch.autograd.graph.Node

# Edges drawn per node of max_graph_nodes at most (one torch.stack of many results has many).
EDGES_PER_NODE = 8


def _named_tensors(env: dict[str, Any]) -> list[tuple[str, torch.Tensor]]:
    """Every tensor the program can name: variables, then model.weight, then params[0]."""
    named: list[tuple[str, torch.Tensor]] = []
    for name, value in env.items():
        if isinstance(value, torch.Tensor):
            named.append((name, value))
    for name, value in env.items():
        if isinstance(value, nn.Module):
            named.extend((f"{name}.{p}", t) for p, t in value.named_parameters())
        elif isinstance(value, list | tuple):
            named.extend(
                (f"{name}[{i}]", t) for i, t in enumerate(value[:64]) if isinstance(t, torch.Tensor)
            )
    return named


class _GraphBuilder:
    """Walks ``grad_fn.next_functions`` from the roots and lays out nodes and edges.

    Edges point in the forward direction, the reverse of gradient flow: a leaf tensor points to
    its ``AccumulateGrad``, which points to the function that consumed the leaf; a function points
    to the learner's variable it produced (when one is named), which points to the next function.
    Unnamed intermediate results are not drawn: the two functions are joined directly.
    """

    def __init__(self, env: dict[str, Any], limits: SandboxLimits) -> None:
        self.limits = limits
        self.functions: dict[int, tuple[str, Node]] = {}
        self.order: list[Node] = []
        self.truncated = False
        self.names: dict[int, list[str]] = {}
        self.tensors: dict[int, torch.Tensor] = {}
        for name, tensor in _named_tensors(env):
            self.names.setdefault(id(tensor), []).append(name)
            self.tensors[id(tensor)] = tensor

    def walk(self, roots: list[Node]) -> None:
        queue: deque[Node] = deque()
        for root in roots:
            self._visit(root, queue)
        while queue:
            node = queue.popleft()
            for child, _ in node.next_functions:
                if child is not None:
                    self._visit(child, queue)

    def _visit(self, node: Node, queue: deque[Node]) -> None:
        if id(node) in self.functions:
            return
        if len(self.functions) >= self.limits.max_graph_nodes:
            self.truncated = True
            return
        self.functions[id(node)] = (f"f{len(self.functions) + 1}", node)
        self.order.append(node)
        queue.append(node)

    def function_id(self, node: Node) -> str:
        return self.functions[id(node)][0]

    def layout(self) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        nodes: list[dict[str, Any]] = []
        edges: list[dict[str, str]] = []
        seen_edges: set[tuple[str, str]] = set()

        def edge(source: str, target: str) -> None:
            if (source, target) not in seen_edges:
                if len(edges) >= EDGES_PER_NODE * self.limits.max_graph_nodes:
                    self.truncated = True  # bounds the answer: edges grow as nodes squared
                    return
                seen_edges.add((source, target))
                edges.append({"source": source, "target": target})

        outputs: dict[tuple[int, int], str] = {}  # (function, output_nr) -> tensor node id
        count = 0

        def tensor_node(tensor: torch.Tensor, names: list[str]) -> str:
            nonlocal count
            count += 1
            node_id = f"t{count}"
            limit = self.limits.max_display_elements
            grad = tensor.grad if tensor.is_leaf or tensor.retains_grad else None
            nodes.append(
                {
                    "id": node_id,
                    "kind": "tensor",
                    "label": ", ".join(names) if names else "tensor",
                    "variable": names[0] if names else None,
                    "shape": list(tensor.shape),
                    "value": tensor_values(tensor, limit),
                    "grad": tensor_values(grad, limit) if grad is not None else None,
                }
            )
            return node_id

        for node in self.order:
            nodes.append(
                {
                    "id": self.function_id(node),
                    "kind": "function",
                    "label": type(node).__name__,
                    "variable": None,
                    "shape": None,
                    "value": None,
                    "grad": None,
                }
            )
        for key, tensor in self.tensors.items():
            fn = tensor.grad_fn
            if fn is not None and id(fn) in self.functions:
                tid = tensor_node(tensor, self.names[key])
                outputs.setdefault((id(fn), tensor.output_nr), tid)
                edge(self.function_id(fn), tid)
        for node in self.order:
            variable = getattr(node, "variable", None)
            if isinstance(variable, torch.Tensor):
                tid = tensor_node(variable, self.names.get(id(variable), []))
                edge(tid, self.function_id(node))
            for child, output_nr in node.next_functions:
                if child is None or id(child) not in self.functions:
                    continue
                source = outputs.get((id(child), output_nr), self.function_id(child))
                edge(source, self.function_id(node))
        return nodes, edges


class _Budget:
    """Bytes of JSON left in one answer (``max_answer_bytes``, less what is kept for the end)."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limit = limits.max_answer_bytes
        self.left = max(self.limit - reserved_bytes(self.limit), 0)

    def take(self, size: int) -> bool:
        """Spend ``size`` bytes if they are left."""
        if size > self.left:
            return False
        self.left -= size
        return True


class BackwardSteps:
    """The engine's steps as they run, each with its JSON, while the answer's budget lasts."""

    def __init__(self, budget: _Budget, limit: int) -> None:
        self.budget = budget
        self.display_limit = limit
        self.steps: list[tuple[dict[str, Any], str]] = []
        self.ran = 0  # steps the engine ran, recorded or not
        self.full = False

    def add(self, node_id: str, outputs: tuple[Any, ...], inputs: tuple[Any, ...]) -> None:
        self.ran += 1
        if self.full:
            return  # the budget ran out: backward goes on, unrecorded
        step = {
            "node": node_id,
            "grad_outputs": _grads(outputs, self.display_limit),
            "grad_inputs": _grads(inputs, self.display_limit),
        }
        text = json_text(step)
        if self.budget.take(len(text) + 1):
            self.steps.append((step, text))
        else:
            self.full = True

    def give_back(self) -> None:
        """Return the steps' bytes to the budget, so the variables and nodes come first."""
        self.budget.left += sum(len(text) + 1 for _, text in self.steps)

    def refit(self) -> None:
        """Keep the first steps that fit in what the budget has left."""
        for i, (_, text) in enumerate(self.steps):
            if not self.budget.take(len(text) + 1):
                del self.steps[i:]
                return


def _variables(
    serializer: Serializer, env: dict[str, Any], budget: _Budget
) -> tuple[dict[str, tuple[dict[str, Any], str]], bool]:
    """Every variable's Value and its JSON, while numbers and bytes last; True when cut."""
    serializer.budget = serializer.numbers + serializer.limits.max_recorded_numbers
    variables: dict[str, tuple[dict[str, Any], str]] = {}
    cut = False
    for name, obj in env.items():
        value: dict[str, Any] | None = None
        if not cut:
            try:
                value = serializer.variable(obj)
            except RecordingBudgetExceeded:
                cut = True
        if value is not None:
            item = f"{json_text(name)}:{json_text(value)}"
            if budget.take(len(item) + 1):
                variables[name] = (value, item)
                continue
        cut = True
        placeholder = {"kind": "other", "repr": "(too many values to show)"}
        item = f"{json_text(name)}:{json_text(placeholder)}"
        budget.left -= len(item) + 1  # small; kept even when the budget is spent
        variables[name] = (placeholder, item)
    return variables, cut


def _grads(values: tuple[Any, ...], limit: int) -> list[Any]:
    return [None if g is None else tensor_values(g, limit) for g in values]


def _fit_nodes(nodes: list[dict[str, Any]], budget: _Budget) -> tuple[list[str], bool]:
    """Each node's JSON; tensor values and grads are left out (null) once bytes run out."""
    texts: list[str] = []
    cut = False
    for node in nodes:
        if node["kind"] == "tensor" and not cut:
            text = json_text(node)
            if budget.take(len(text) + 1):
                texts.append(text)
                continue
            cut = True
        if node["kind"] == "tensor":
            node.update(value=None, grad=None)
        text = json_text(node)
        budget.left -= len(text) + 1  # the graph's shape: kept (it is bounded by max_graph_nodes)
        texts.append(text)
    return texts, cut


def autograd_graph(
    code: str, backward: str | None, limits: SandboxLimits | None = None
) -> dict[str, Any]:
    """Run ``code`` and return its real autograd graph, optionally after ``backward``.backward().

    Returns ``{"nodes", "edges", "backward_steps", "variables", "error", "truncated", "stdout",
    "notices"}``. ``nodes`` are functions (label = PyTorch's class name, e.g. ``MulBackward0``)
    and tensors (the learner's variables; leaves hang off their ``AccumulateGrad``). ``edges``
    point in the forward direction (input -> consuming function -> output tensor), the reverse of
    gradient flow. ``backward_steps`` lists ``{"node", "grad_outputs", "grad_inputs"}`` in the
    order the engine ran the functions (recorded with ``Node.register_hook``). ``error`` is
    ``None | {"line": int | None, "message": str}``: line is None for a problem with the
    ``backward`` choice itself. The answer fits in ``max_answer_bytes`` bytes of JSON: past it,
    backward steps (then node values, then variables) are left out, each with a notice. Raises
    SandboxRefused like ``run_program``.
    """
    return graph_answer(code, backward, limits or SandboxLimits()).as_dict()


class GraphAnswer:
    """An autograd graph answer with the JSON of each part, fitted to its byte budget."""

    def __init__(self, parts: dict[str, Any], texts: dict[str, str]) -> None:
        self.parts = parts
        self.texts = texts

    def as_dict(self) -> dict[str, Any]:
        return self.parts

    def as_json(self) -> bytes:
        body = ",".join(f'"{key}":{text}' for key, text in self.texts.items())
        return f"{{{body}}}".encode("ascii")


def graph_answer(
    code: str,
    backward: str | None,
    limits: SandboxLimits,
    root: str | None = None,
    stop_after: int | None = None,
) -> GraphAnswer:
    """``autograd_graph``'s answer, as data and as the bytes of its JSON.

    ``stop_after`` stops the program after that many steps (a stepping page's step N: inside a
    call the variables are named ``name@depth``, as that step shows them); ``root`` draws only
    that variable's graph, without running backward.
    """
    budget = _Budget(limits)
    with session() as caught:
        result = execute(code, limits, record=False, caught=caught, stop_after=stop_after)
        serializer = result.serializer or Serializer(limits)
        env = result.env
        error = result.error
        roots: list[Node] = []
        target: torch.Tensor | None = None
        chosen = backward if backward is not None else root
        if error is None and chosen is not None:
            value = env.get(chosen)
            if not isinstance(value, torch.Tensor):
                what = "is not defined" if value is None else "is not a tensor"
                field = "backward" if backward is not None else "root"
                where = f"at step {stop_after}" if stop_after is not None else "in the program"
                error = {"line": None, "message": f"{field}: '{chosen}' {what} {where}"}
            else:
                target = value
        if target is not None:
            if target.grad_fn is not None:
                roots.append(target.grad_fn)
            if backward is None:
                target = None  # root: its graph only, no backward
        elif root is None:
            roots.extend(
                v.grad_fn
                for v in env.values()
                if isinstance(v, torch.Tensor) and v.grad_fn is not None
            )
        builder = _GraphBuilder(env, limits)
        builder.walk(roots)
        steps = BackwardSteps(budget, limits.max_display_elements)
        if target is not None:
            error = _run_backward(backward or "", target, env, builder, steps, limits)
        nodes, edges = builder.layout()
        notices = list(result.notices)
        limit = limits.max_answer_bytes
        steps.give_back()
        stdout = fit_text(result.stdout, budget.left // 2)
        if stdout != result.stdout:
            notices.append(
                f"print output past half of the answer's budget of {limit} bytes was dropped "
                "(max_answer_bytes)"
            )
        texts = {"stdout": json_text(stdout), "error": json_text(error)}
        edges_text = json_text(edges)
        budget.left -= sum(len(t) for t in texts.values()) + len(edges_text)
        # What is left goes to the variables first (their grads are what backward was for), then
        # the values drawn on the graph's nodes, then the backward steps as far as they fit.
        variables, variables_cut = _variables(serializer, env, budget)
        node_texts, nodes_cut = _fit_nodes(nodes, budget)
        steps.refit()
        if len(steps.steps) < steps.ran:
            notices.append(
                f"backward steps stopped being recorded after {len(steps.steps)} of "
                f"{steps.ran} steps because the answer reached its budget of {limit} bytes "
                "(max_answer_bytes); backward itself ran to the end, so the grads are right"
            )
        if nodes_cut:
            notices.append(
                f"some graph nodes are drawn without their values: the answer reached its "
                f"budget of {limit} bytes (max_answer_bytes)"
            )
        if variables_cut:
            notices.append(
                "some variables are shown without their values: the answer reached its budget "
                f"of {limit} bytes (max_answer_bytes) or {limits.max_recorded_numbers} values "
                "(max_recorded_numbers)"
            )
        parts = {
            "nodes": nodes,
            "edges": edges,
            "backward_steps": [step for step, _ in steps.steps],
            "variables": {name: value for name, (value, _) in variables.items()},
            "error": error,
            "truncated": builder.truncated,
            "stdout": stdout,
            "notices": notices,
        }
        texts = {
            "nodes": "[" + ",".join(node_texts) + "]",
            "edges": edges_text,
            "backward_steps": "[" + ",".join(text for _, text in steps.steps) + "]",
            "variables": "{" + ",".join(item for _, item in variables.values()) + "}",
            "error": texts["error"],
            "truncated": json_text(builder.truncated),
            "stdout": texts["stdout"],
            "notices": json_text(notices),
        }
        return GraphAnswer(parts, texts)


def _run_backward(
    name: str,
    target: torch.Tensor,
    env: dict[str, Any],
    builder: _GraphBuilder,
    steps: BackwardSteps,
    limits: SandboxLimits,
) -> dict[str, Any] | None:
    """``target.backward()`` with a hook on every function node to record the engine's order."""
    if target.numel() != 1:
        return {
            "line": None,
            "message": (
                f"backward() needs a scalar output, but '{name}' has shape {list(target.shape)} "
                "(grad can be implicitly created only for scalar outputs). Reduce it first, "
                f"e.g. loss = {name}.sum() or {name}.mean(), and pick loss."
            ),
        }
    for value in env.values():
        if isinstance(value, torch.Tensor) and value.requires_grad and not value.is_leaf:
            value.retain_grad()
    handles = []

    def hook_for(node_id: str) -> Any:
        def hook(grad_inputs: tuple[Any, ...], grad_outputs: tuple[Any, ...]) -> None:
            steps.add(node_id, grad_outputs, grad_inputs)  # within the answer's byte budget

        return hook

    for node in builder.order:
        handles.append(node.register_hook(hook_for(builder.function_id(node))))
    try:
        target.backward()
    except Exception as exc:  # PyTorch's own message, e.g. backward through a freed graph
        return {"line": None, "message": f"{type(exc).__name__}: {exc}"}
    finally:
        for handle in handles:
            handle.remove()
    return None
