"""The real autograd graph of a learner program, and a node-by-node record of its backward pass."""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
from torch import nn

from app.sandbox.interpreter import execute, session
from app.sandbox.limits import SandboxLimits
from app.sandbox.values import RecordingBudgetExceeded, Serializer, tensor_values

Node = torch.autograd.graph.Node


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


def _variables(serializer: Serializer, env: dict[str, Any]) -> dict[str, Any]:
    serializer.budget = serializer.numbers + serializer.limits.max_recorded_numbers
    try:
        return serializer.variables(env)
    except RecordingBudgetExceeded:
        return {name: {"kind": "other", "repr": "(too many values to show)"} for name in env}


def _grads(values: tuple[Any, ...], limit: int) -> list[Any]:
    return [None if g is None else tensor_values(g, limit) for g in values]


def autograd_graph(
    code: str, backward: str | None, limits: SandboxLimits | None = None
) -> dict[str, Any]:
    """Run ``code`` and return its real autograd graph, optionally after ``backward``.backward().

    Returns ``{"nodes", "edges", "backward_steps", "variables", "error", "truncated", "stdout"}``.
    ``nodes`` are functions (label = PyTorch's class name, e.g. ``MulBackward0``) and tensors
    (the learner's variables; leaves hang off their ``AccumulateGrad``). ``edges`` point in the
    forward direction (input -> consuming function -> output tensor), the reverse of gradient
    flow. ``backward_steps`` lists ``{"node", "grad_outputs", "grad_inputs"}`` in the order the
    engine ran the functions (recorded with ``Node.register_hook``). ``error`` is
    ``None | {"line": int | None, "message": str}``: line is None for a problem with the
    ``backward`` choice itself. Raises SandboxRefused like ``run_program``.
    """
    limits = limits or SandboxLimits()
    with session() as caught:
        result = execute(code, limits, record=False, caught=caught)
        serializer = result.serializer or Serializer(limits)
        env = result.env
        error = result.error
        roots: list[Node] = []
        target: torch.Tensor | None = None
        if error is None and backward is not None:
            value = env.get(backward)
            if not isinstance(value, torch.Tensor):
                what = "is not defined" if value is None else "is not a tensor"
                error = {"line": None, "message": f"backward: '{backward}' {what} in the program"}
            else:
                target = value
        if target is not None:
            if target.grad_fn is not None:
                roots.append(target.grad_fn)
        else:
            roots.extend(
                v.grad_fn
                for v in env.values()
                if isinstance(v, torch.Tensor) and v.grad_fn is not None
            )
        builder = _GraphBuilder(env, limits)
        builder.walk(roots)
        steps: list[dict[str, Any]] = []
        if target is not None:
            error = _run_backward(backward or "", target, env, builder, steps, limits)
        nodes, edges = builder.layout()
        return {
            "nodes": nodes,
            "edges": edges,
            "backward_steps": steps,
            "variables": _variables(serializer, env),
            "error": error,
            "truncated": builder.truncated,
            "stdout": result.stdout,
        }


def _run_backward(
    name: str,
    target: torch.Tensor,
    env: dict[str, Any],
    builder: _GraphBuilder,
    steps: list[dict[str, Any]],
    limits: SandboxLimits,
) -> dict[str, Any] | None:
    """``target.backward()`` with a hook on every function node to record the engine's order."""
    limit = limits.max_display_elements
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
            steps.append(
                {
                    "node": node_id,
                    "grad_outputs": _grads(grad_outputs, limit),
                    "grad_inputs": _grads(grad_inputs, limit),
                }
            )

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
