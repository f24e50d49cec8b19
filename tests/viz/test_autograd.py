"""The autograd graph's layout and figures: edges point left to right, every figure is valid for
Plotly, and the replay highlights the node backward runs at each step."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from app.lessons import autograd
from app.sandbox import autograd_graph, run_program
from app.viz import autograd as figures
from app.viz.common import HIGHLIGHT

PROGRAMS = {
    **{name: example.code for name, example in autograd.EXAMPLES.items()},
    "loop": "w = torch.tensor(1.0, requires_grad=True)\nh = w\nfor i in range(4):\n"
    "    h = torch.tanh(h * w + 1)\nout = h\n",
    "branches": "a = torch.tensor([1., 2.], requires_grad=True)\nb = a.exp()\nc = a.sin()\n"
    "d = b * c + a\ne = (d ** 2).sum() + b.mean()\n",
}


def run(code: str, kind: str, backward: str | None) -> dict[str, Any]:
    return autograd_graph(code, backward) if kind == "graph" else run_program(code)


def explore(**changes: Any) -> dict[str, Any]:
    return autograd.explore(autograd.AutogradParams(**changes), autograd.AutogradLimits(), run)


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    return {name: explore(code=code) for name, code in PROGRAMS.items()}


def assert_left_to_right(nodes: list[dict[str, Any]], edges: list[dict[str, str]]) -> None:
    position = figures.layered_layout(nodes, edges)
    assert set(position) == {node["id"] for node in nodes}
    for edge in edges:
        assert position[edge["source"]][0] < position[edge["target"]][0], edge
    assert len(set(position.values())) == len(position), "two nodes share a place"


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_every_edge_of_a_real_graph_goes_left_to_right(
    results: dict[str, dict[str, Any]], name: str
) -> None:
    graph = results[name]["graph"]
    assert graph["edges"] and graph["error"] is None
    assert_left_to_right(graph["nodes"], graph["edges"])
    # Leaves start the graph: the first column holds tensors only.
    position = figures.layered_layout(graph["nodes"], graph["edges"])
    first = [node for node in graph["nodes"] if position[node["id"]][0] == 0]
    assert all(node["kind"] == "tensor" and node["leaf"] for node in first)


@pytest.mark.parametrize("seed", range(20))
def test_every_edge_of_a_random_dag_goes_left_to_right(seed: int) -> None:
    rng = random.Random(seed)
    count = rng.randint(1, 30)
    nodes = [{"id": f"n{i}"} for i in rng.sample(range(count), count)]  # any order
    edges = [
        {"source": f"n{i}", "target": f"n{j}"}
        for j in range(count)
        for i in range(j)
        if rng.random() < 0.15
    ]
    assert_left_to_right(nodes, edges)


def test_a_node_with_no_edges_stands_in_the_last_column() -> None:
    nodes = [{"id": i} for i in ("x", "f", "y", "alone")]
    edges = [{"source": "x", "target": "f"}, {"source": "f", "target": "y"}]
    position = figures.layered_layout(nodes, edges)
    assert position["alone"][0] == position["y"][0] == 2
    assert position["alone"][1] != position["y"][1]


def all_figures(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    every = dict(figures.figures(result))
    for step in range(result["steps"] + 1):
        every[f"graph@{step}"] = figures.figures({**result, "step": step})["graph"]
    return every


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_every_figure_is_strict_json_and_valid_for_plotly(
    results: dict[str, dict[str, Any]], name: str
) -> None:
    for fig_id, spec in all_figures(results[name]).items():
        json.dumps(spec, allow_nan=False)
        go.Figure(spec)  # raises on any property plotly.js would not understand
        assert spec["data"], fig_id


def test_a_refused_or_empty_program_still_gives_valid_figures() -> None:
    for code in ("x = torch.ones(3)\n", "x = (\n"):
        result = explore(code=code)
        spec = figures.figures(result)["graph"]
        json.dumps(spec, allow_nan=False)
        go.Figure(spec)
        assert spec["layout"]["annotations"][-1]["text"].startswith("No graph")
    result = explore(learning_rate=1.0, epochs=500)  # diverges to inf and nan
    for spec in figures.figures(result).values():
        json.dumps(spec, allow_nan=False)
        go.Figure(spec)


def traces(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    data = spec["data"]
    return (
        data[figures.TENSORS_TRACE],
        data[figures.FUNCTIONS_TRACE],
        data[figures.CURRENT_TRACE],
    )


def test_the_graph_is_labelled_with_variable_and_class_names() -> None:
    spec = figures.figures(explore())["graph"]
    tensors, functions, _ = traces(spec)
    assert sorted(functions["text"]) == ["AccumulateGrad", "AddBackward0", "MulBackward0"]
    assert tensors["text"] == ["y = 3", "z = 9", "x = 1"]
    assert {t["symbol"] for t in (tensors["marker"], functions["marker"])} == {"circle", "square"}
    hover = dict(zip(tensors["text"], tensors["hovertext"], strict=True))
    assert "value: 3" in hover["y = 3"] and "shape: []" in hover["y = 3"]
    assert "grad: 6" in hover["y = 3"]
    # Arrows: one annotation per edge, from the source's place to the target's.
    arrows = [a for a in spec["layout"]["annotations"] if a.get("showarrow")]
    assert len(arrows) == 5 and all(a["ax"] < a["x"] for a in arrows)


def test_each_replay_step_rings_the_node_backward_runs() -> None:
    result = explore()
    order = [s["label"] for s in result["story"]]
    for step in range(result["steps"] + 1):
        spec = figures.figures({**result, "step": step})["graph"]
        tensors, functions, current = traces(spec)
        where = dict(zip(functions["text"], zip(functions["x"], functions["y"], strict=True),
                         strict=True))  # fmt: skip
        colours = dict(zip(functions["text"], functions["marker"]["color"], strict=True))
        if step == 0:
            assert current["x"] == [] and HIGHLIGHT not in colours.values()
            assert all("grad" not in text for text in tensors["text"])
            continue
        label = order[step - 1]
        assert (current["x"][0], current["y"][0]) == where[label]
        assert colours[label] == HIGHLIGHT
        assert [c for c in colours.values() if c == HIGHLIGHT] == [HIGHLIGHT]
        assert all(colours[done] == figures.DONE for done in order[: step - 1])
    # By the end every tensor shows its gradient: x.grad = 6.
    assert "x = 1<br>grad 6" in tensors["text"]


def test_the_replay_data_matches_the_server_drawn_steps() -> None:
    result = explore(example="shared")
    replay = figures.figures(result)["graph"]["layout"]["meta"]["replay"]
    assert replay["steps"] == result["steps"] == 5
    assert replay["current"][0] is None and len(replay["current"]) == 6
    for step in range(6):
        tensors, functions, current = traces(figures.figures({**result, "step": step})["graph"])
        fill = [figures.function_colour(s, step) for s in replay["function_step"]]
        assert fill == functions["marker"]["color"]
        text = [replay["tensor_text"][int(0 < s <= step)][i]
                for i, s in enumerate(replay["tensor_step"])]  # fmt: skip
        assert text == tensors["text"]
        spot = replay["current"][step]
        assert current["x"] == ([spot[0]] if spot else [])


def test_the_no_grad_figure_draws_y_ng_outside_the_graph() -> None:
    spec = figures.figures(explore())["no-grad"]
    tensors, functions, _ = traces(spec)
    assert functions["text"] == ["MulBackward0", "AccumulateGrad"]
    colours = dict(zip([t.split(" ")[0] for t in tensors["text"]], tensors["marker"]["color"],
                       strict=True))  # fmt: skip
    assert colours["y_ng"] == figures.LOOSE


def test_gradient_descent_figures_plot_the_lesson_numbers() -> None:
    result = explore(learning_rate=0.03, epochs=40)
    every = figures.figures(result)
    weight = every["descent-weight"]["data"][0]
    loss = every["descent-loss"]["data"][0]
    assert weight["x"] == list(range(41)) and weight["y"] == result["descent"]["weights"]
    assert loss["x"] == list(range(1, 41)) and loss["y"] == result["descent"]["losses"]
    assert every["descent-weight"]["layout"]["shapes"][0]["y0"] == 2.0
    assert every["descent-loss"]["layout"]["yaxis"]["type"] == "log"


def test_accumulation_figure_shows_x_grad_after_each_statement() -> None:
    bars = figures.figures(explore())["accumulation"]["data"][0]
    np.testing.assert_array_equal(
        np.array(bars["y"], dtype=float), [np.nan, np.nan, 6, 6, 12, 0, 0, 6]
    )
    assert bars["text"][:3] == ["None", "None", "6"]
