"""Figures for the gradient-calculation lesson: the autograd graph with its backward replay,
gradient accumulation, and the notes' gradient-descent loop.

The graph is laid out here, in Python: each node's column is its longest path from the leaves, so
every edge points left to right in forward order and backward runs right to left.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from app.viz.common import HIGHLIGHT, MUTED, PALETTE, Figure, axis, bar, figure, hline, layout, line

TENSOR = PALETTE[0]  # a tensor the program computed
LEAF = PALETTE[2]  # a leaf tensor: backward ends in its .grad
FUNCTION = PALETTE[1]  # a grad_fn node, not yet run by backward
DONE = "#c9d1dd"  # a grad_fn node backward has already run
CURRENT = HIGHLIGHT  # the node backward is running now
LOOSE = MUTED  # a tensor outside the graph (made under torch.no_grad())
EDGE = "#8a94a6"
# Past this many edges, arrows (one annotation each) become one line trace: quicker to draw.
MAX_ARROWS = 300

# Trace order of a graph figure; static/js/autograd.js restyles them by these indices.
EDGES_TRACE, TENSORS_TRACE, FUNCTIONS_TRACE, CURRENT_TRACE = 0, 1, 2, 3

Position = tuple[float, float]


def layered_layout(nodes: list[dict[str, Any]], edges: list[dict[str, str]]) -> dict[str, Position]:
    """(x, y) per node id: x is the longest path from a source, y spreads each column.

    Nodes with no edges at all go in the last column, beside the outputs. Within a column, nodes
    are ordered by the mean height of what feeds them, so edges cross less.
    """
    ids = [node["id"] for node in nodes]
    known = set(ids)
    preds: dict[str, list[str]] = {i: [] for i in ids}
    succs: dict[str, list[str]] = {i: [] for i in ids}
    for edge in edges:
        s, t = edge["source"], edge["target"]
        if s in known and t in known and s != t and t not in succs[s]:
            succs[s].append(t)
            preds[t].append(s)
    indegree = {i: len(preds[i]) for i in ids}
    depth = dict.fromkeys(ids, 0)
    queue = deque(i for i in ids if indegree[i] == 0)
    seen: set[str] = set()
    while queue:  # Kahn's topological order; each node's depth is final when it is dequeued
        node = queue.popleft()
        seen.add(node)
        for target in succs[node]:
            depth[target] = max(depth[target], depth[node] + 1)
            indegree[target] -= 1
            if indegree[target] == 0:
                queue.append(target)
    deepest = max(depth.values(), default=0)
    for i in ids:
        if i not in seen:  # a cycle, which autograd never makes: put it past the rest
            depth[i] = deepest + 1
    connected = [depth[i] for i in ids if preds[i] or succs[i]]
    last = max(connected, default=0)
    for i in ids:
        if not preds[i] and not succs[i]:
            depth[i] = last
    columns: dict[int, list[str]] = {}
    for i in ids:
        columns.setdefault(depth[i], []).append(i)
    position: dict[str, Position] = {}
    for d in sorted(columns):
        column = columns[d]

        def height(i: str) -> float:
            above = [position[p][1] for p in preds[i] if p in position]
            return sum(above) / len(above) if above else 0.0

        column.sort(key=height, reverse=True)  # stable: ties keep the graph's own order
        for rank, i in enumerate(column):
            position[i] = (float(d), (len(column) - 1) / 2 - rank)
    return position


def _run_steps(story: list[dict[str, Any]]) -> dict[str, int]:
    """Node id -> the replay step (1-based) at which backward ran it."""
    steps: dict[str, int] = {}
    for entry in story:
        steps.setdefault(entry["node"], entry["index"])
    return steps


def _grad_steps(
    nodes: list[dict[str, Any]], edges: list[dict[str, str]], run: dict[str, int]
) -> dict[str, int]:
    """Tensor id -> the step at which its gradient is known (-1: never).

    A computed tensor's gradient is what flows into the function that produced it; a leaf's
    arrives when its AccumulateGrad runs.
    """
    kinds = {node["id"]: node for node in nodes}
    known: dict[str, int] = {}
    for edge in edges:
        s, t = edge["source"], edge["target"]
        if s not in kinds or t not in kinds:
            continue
        if kinds[s]["kind"] == "function" and kinds[t]["kind"] == "tensor" and s in run:
            known[t] = run[s]
        if kinds[t]["label"] == "AccumulateGrad" and kinds[s]["kind"] == "tensor" and t in run:
            known.setdefault(s, run[t])
    return known


def function_colour(run_step: int, step: int) -> str:
    """A grad_fn node's colour at replay ``step``: running now, already run, or waiting."""
    if run_step == step:
        return CURRENT
    return DONE if 0 < run_step < step else FUNCTION


def _tensor_text(node: dict[str, Any], with_grad: bool) -> str:
    scalar = node.get("shape") == [] and node["value"] is not None
    text = f"{node['label']} = {node['value_text']}" if scalar else node["label"]
    return f"{text}<br>grad {node['grad_text']}" if with_grad else text


def _tensor_hover(node: dict[str, Any]) -> str:
    if node.get("loose"):
        role = "not in the graph: no grad_fn, requires_grad=False"
    elif node.get("leaf"):
        role = "a leaf: backward stores its gradient in .grad"
    else:
        role = "computed by the grad_fn on its left"
    return (
        f"<b>{node['label']}</b> ({role})<br>value: {node['value_text']}"
        f"<br>shape: {node['shape']}<br>grad: {node['grad_text']}"
    )


def _function_hover(node: dict[str, Any], entry: dict[str, Any] | None) -> str:
    text = f"<b>{node['label']}</b>"
    if entry is None:
        return text + "<br>backward has not run it"
    if entry["leaf"]:
        text += f"<br>adds the gradient into {entry['leaf']}.grad"
    elif entry["outputs"]:
        text += f"<br>grad_fn of {', '.join(entry['outputs'])}"
    else:
        text += "<br>grad_fn of an unnamed intermediate result"
    incoming = ", ".join(entry["grad_outputs_text"])
    outgoing = ", ".join(entry["grad_inputs_text"]) or "nothing (the leaf keeps it)"
    return text + f"<br>gradient in: {incoming}<br>gradients out: {outgoing}"


def _legend(loose: bool, replay: bool) -> list[dict[str, Any]]:
    """Legend-only traces: one entry per kind of node and per replay colour."""
    entries = [("leaf tensor", "circle", LEAF), ("computed tensor", "circle", TENSOR)]
    if loose:
        entries.append(("tensor outside the graph", "circle", LOOSE))
    entries.append(("grad_fn" + (" waiting" if replay else ""), "square", FUNCTION))
    if replay:
        entries += [("grad_fn done", "square", DONE), ("running now", "square", CURRENT)]
    return [
        {"type": "scatter", "mode": "markers", "x": [None], "y": [None], "name": name,
         "hoverinfo": "skip", "marker": {"symbol": symbol, "size": 11, "color": colour}}
        for name, symbol, colour in entries
    ]  # fmt: skip


def _arrows(edges: list[dict[str, str]], position: dict[str, Position]) -> list[dict[str, Any]]:
    return [
        {
            "x": position[e["target"]][0], "y": position[e["target"]][1],
            "ax": position[e["source"]][0], "ay": position[e["source"]][1],
            "xref": "x", "yref": "y", "axref": "x", "ayref": "y", "text": "",
            "showarrow": True, "arrowhead": 2, "arrowsize": 1.1, "arrowwidth": 1.6,
            "arrowcolor": EDGE, "standoff": 14, "startstandoff": 14,
        }
        for e in edges
        if e["source"] in position and e["target"] in position
    ]  # fmt: skip


def graph_figure(
    nodes: list[dict[str, Any]],
    edges: list[dict[str, str]],
    story: list[dict[str, Any]],
    step: int,
    title: str,
    empty_note: str = "No graph: no tensor here has a grad_fn (set requires_grad=True).",
) -> Figure:
    """The autograd graph at replay ``step`` (0: the forward graph, k: the k-th node run).

    ``layout.meta.replay`` carries what the page's script needs to replay backward without a
    round trip: the node to ring at each step, when each node runs, and the tensor labels.
    """
    position = layered_layout(nodes, edges)
    run = _run_steps(story)
    grads = _grad_steps(nodes, edges, run)
    entries = {entry["node"]: entry for entry in story}
    tensors = [node for node in nodes if node["kind"] == "tensor"]
    functions = [node for node in nodes if node["kind"] == "function"]
    tensor_steps = [grads.get(node["id"], -1) for node in tensors]
    function_steps = [run.get(node["id"], -1) for node in functions]
    plain = [_tensor_text(node, False) for node in tensors]
    with_grad = [_tensor_text(node, True) for node in tensors]
    current = [None] + [list(position[entry["node"]]) for entry in story]
    arrows = len(edges) <= MAX_ARROWS
    edge_x: list[float] = []
    edge_y: list[float] = []
    if not arrows:  # NaN breaks the line between edges (figure() writes it as null)
        for e in edges:
            (sx, sy), (tx, ty) = position[e["source"]], position[e["target"]]
            edge_x += [sx, tx, math.nan]
            edge_y += [sy, ty, math.nan]

    def xs(group: list[dict[str, Any]]) -> list[float]:
        return [position[node["id"]][0] for node in group]

    def ys(group: list[dict[str, Any]]) -> list[float]:
        return [position[node["id"]][1] for node in group]

    def tensor_colour(node: dict[str, Any]) -> str:
        return LOOSE if node.get("loose") else LEAF if node.get("leaf") else TENSOR

    spot = current[step] if 0 <= step < len(current) else None
    data = [
        line(edge_x, edge_y, line={"color": EDGE, "width": 1.2}, hoverinfo="skip",
             showlegend=False, name="edges"),
        {
            "type": "scatter", "mode": "markers+text", "name": "tensors", "showlegend": False,
            "x": xs(tensors), "y": ys(tensors),
            "text": [with_grad[i] if 0 < s <= step else plain[i]
                     for i, s in enumerate(tensor_steps)],
            "textposition": "top center", "cliponaxis": False,
            "hovertext": [_tensor_hover(node) for node in tensors],
            "hovertemplate": "%{hovertext}<extra></extra>",
            "marker": {"symbol": "circle", "size": 24,
                       "color": [tensor_colour(node) for node in tensors],
                       "line": {"color": "#fff", "width": 2}},
        },
        {
            "type": "scatter", "mode": "markers+text", "name": "grad_fn nodes", "showlegend": False,
            "x": xs(functions), "y": ys(functions),
            "text": [node["label"] for node in functions],
            # alternate above and below by column, so neighbouring long names never overlap
            "textposition": ["top center" if position[node["id"]][0] % 2 else "bottom center"
                             for node in functions],
            "cliponaxis": False,
            "hovertext": [_function_hover(node, entries.get(node["id"])) for node in functions],
            "hovertemplate": "%{hovertext}<extra></extra>",
            "marker": {"symbol": "square", "size": 20,
                       "color": [function_colour(s, step) for s in function_steps],
                       "line": {"color": "#fff", "width": 2}},
        },
        {
            "type": "scatter", "mode": "markers", "name": "backward is here", "showlegend": False,
            "x": [spot[0]] if spot else [], "y": [spot[1]] if spot else [],
            "hoverinfo": "skip",
            "marker": {"symbol": "circle-open", "size": 40, "color": CURRENT,
                       "line": {"color": CURRENT, "width": 3}},
        },
        *_legend(loose=any(node.get("loose") for node in tensors), replay=bool(story)),
    ]  # fmt: skip
    columns = max((x for x, _ in position.values()), default=0.0)
    tallest = max(
        (sum(1 for p in position.values() if p[0] == x) for x, _ in position.values()),
        default=1,
    )
    hidden = {"visible": False, "fixedrange": True}
    notes = [] if nodes else [
        {"text": empty_note, "showarrow": False, "xref": "paper", "yref": "paper",
         "x": 0.5, "y": 0.5, "font": {"color": "#5b6575"}}
    ]  # fmt: skip
    return figure(
        data,
        layout(
            title,
            xaxis={**hidden, "range": [-0.6, columns + 0.6]},
            yaxis={**hidden, "range": [-tallest / 2 - 0.2, tallest / 2 + 0.25]},
            height=max(260, min(1000, 160 + 110 * tallest)),
            margin={"l": 24, "r": 24, "t": 56, "b": 16},
            annotations=(_arrows(edges, position) if arrows else []) + notes,
            dragmode=False,
            legend={"orientation": "h", "y": -0.02, "yanchor": "top"},
            meta={
                "replay": {
                    "steps": len(story),
                    "current": current,
                    "tensor_step": tensor_steps,
                    "function_step": function_steps,
                    "tensor_text": [plain, with_grad],
                    "colours": {"current": CURRENT, "done": DONE, "waiting": FUNCTION},
                    "traces": {
                        "tensors": TENSORS_TRACE,
                        "functions": FUNCTIONS_TRACE,
                        "current": CURRENT_TRACE,
                    },
                }
            },
        ),
    )


def accumulation(result: dict[str, Any]) -> Figure:
    """x.grad after each statement: backward twice adds up, zero_() resets."""
    rows = result["accumulation"]["rows"]
    labels = [f"{i + 1}: line {row['line']}" for i, row in enumerate(rows)]
    values = [float(g) if isinstance(g := row["grad"], int | float) else math.nan for row in rows]
    colours = [HIGHLIGHT if "backward" in row["source"] else MUTED for row in rows]
    trace = bar(
        labels,
        values,
        marker={"color": colours},
        text=[row["text"] for row in rows],
        textposition="outside",
        cliponaxis=False,
        customdata=[row["source"] for row in rows],
        hovertemplate="after %{customdata}: x.grad = %{text}<extra></extra>",
    )
    top = max([v for v in values if math.isfinite(v)], default=1.0)
    return figure(
        [trace],
        layout(
            "x.grad after each statement",
            xaxis=axis("statement", tickangle=-30),
            yaxis=axis("x.grad", range=[0, top * 1.25 + 0.5]),
        ),
    )


def descent_weight(result: dict[str, Any]) -> Figure:
    """w after each epoch of the notes' loop, heading for the true weight 2."""
    d = result["descent"]
    epochs = list(range(len(d["weights"])))
    trace = line(
        epochs,
        d["weights"],
        name="w",
        mode="lines+markers",
        line={"color": PALETTE[0], "width": 2.5},
        marker={"size": 5},
        hovertemplate="after epoch %{x}: w = %{y:.5f}<extra></extra>",
    )
    note = {
        "xref": "paper", "x": 1, "xanchor": "right", "y": d["true_weight"], "yanchor": "bottom",
        "text": f"true w = {d['true_weight']:g}", "showarrow": False, "font": {"color": HIGHLIGHT},
    }  # fmt: skip
    return figure(
        [trace],
        layout(
            f"Weight per epoch (learning rate {d['learning_rate']:g})",
            "epoch",
            "w",
            shapes=[hline(d["true_weight"])],
            annotations=[note],
        ),
    )


def descent_loss(result: dict[str, Any]) -> Figure:
    """The loss in each epoch, on a log axis while it stays positive and finite."""
    d = result["descent"]
    losses = d["losses"]
    epochs = list(range(1, len(losses) + 1))
    log = all(math.isfinite(v) and v > 0 for v in losses)
    trace = line(
        epochs,
        losses,
        name="loss",
        mode="lines+markers",
        line={"color": PALETTE[1], "width": 2.5},
        marker={"size": 5},
        hovertemplate="epoch %{x}: loss = %{y:.6g}<extra></extra>",
    )
    return figure(
        [trace],
        layout(
            "Loss per epoch: mean((w·X − Y)²)",
            "epoch",
            axis("loss", type="log" if log else "linear"),
        ),
    )


def figures(result: dict[str, Any]) -> dict[str, Figure]:
    """Every figure of the lesson page, by id."""
    program = result["program"]
    title = (
        f"{program['backward']}.backward() runs right to left"
        if program["backward"]
        else "The forward graph (pick a variable to call backward on)"
    )
    no_grad = result["no_grad"]
    return {
        "graph": graph_figure(
            result["graph"]["nodes"], result["graph"]["edges"], result["story"],
            result["step"], title,
        ),
        "no-grad": graph_figure(
            no_grad["graph"]["nodes"] + no_grad["loose"], no_grad["graph"]["edges"], [], 0,
            "Only y is in the graph",
        ),
        "accumulation": accumulation(result),
        "descent-weight": descent_weight(result),
        "descent-loss": descent_loss(result),
    }  # fmt: skip
