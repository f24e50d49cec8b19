"""POST /api/tensors/heatmap: the server builds the Tensors page's heatmap for the Value the page
steps to (the page only draws it). Its cells are the tensor's values as plain torch computes
them, and a Value that does not fit its shape or the display limit is a 422 that says so."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.lessons import tensors
from tests.viz.test_tensors import as_grid, plain_steps, valid


def heatmap(client: TestClient, name: str | None, value: dict[str, Any] | None) -> Any:
    return client.post("/api/tensors/heatmap", json={"name": name, "value": value})


@pytest.mark.parametrize("example", ["view", "numpy", "multiply"])
def test_every_steps_tensors_heatmap_holds_their_values_as_plain_torch_computes_them(
    client: TestClient, example: str
) -> None:
    code = tensors.EXAMPLES[example].code
    run = client.post("/api/tensors/run", json={"code": code}).json()
    for step, real in zip(run["steps"], plain_steps(code), strict=True):
        for name, value in step["variables"].items():
            if value["kind"] not in tensors.ARRAY_KINDS:
                continue
            r = heatmap(client, name, value)  # a whole Value, as the run answered it
            assert r.status_code == 200, r.text
            figure = r.json()["figure"]
            valid(figure)
            assert figure["data"][0]["z"] == as_grid(real[name]), (example, step["line"], name)
            kind = value["kind"]
            assert figure["layout"]["title"]["text"].startswith(f"{name}: {kind} {value['shape']}")


def test_a_step_with_no_tensor_and_one_too_large_to_list_draw_empty_heatmaps(
    client: TestClient,
) -> None:
    empty = heatmap(client, None, None).json()["figure"]
    valid(empty)
    assert (
        empty["data"][0]["z"] == [] and empty["layout"]["title"]["text"] == "No tensor at this step"
    )
    unlisted = {"kind": "tensor", "shape": [1000, 1000], "dtype": "float32", "values": None}
    big = heatmap(client, "big", unlisted).json()["figure"]
    assert "too many elements to draw" in big["layout"]["title"]["text"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("x", {"kind": "tensor", "shape": [2, 2], "dtype": "float32", "values": [[1, 2], [3]]},
         "values[1] must be a list of 2 (shape [2]), not 1 items"),
        ("x", {"kind": "tensor", "shape": [2], "dtype": "float32", "values": [1, "two"]},
         "values[1] must be a number, true/false or one of nan, inf, -inf, not 'two'"),
        ("x", {"kind": "tensor", "shape": [], "dtype": "float32", "values": [1.0]},
         "values must be a number"),
        ("x", {"kind": "tensor", "shape": [401], "dtype": "float32", "values": [0.0] * 401},
         "elements of a tensor to draw is 401, over the limit of 400 "
         "(setting program_max_display_elements)"),
        ("x", {"kind": "tensor", "shape": [2**62] * 64, "dtype": "float32", "values": []},
         "elements of a tensor to draw is inf, over the limit of 400"),
        ("x", None, "name and value come together"),
        ("x", {"kind": "number", "shape": [], "dtype": "float32"}, "kind"),
        ("x", {"kind": "tensor", "shape": [1] * 65, "dtype": "float32"}, "shape"),
        ("x" * 1001, {"kind": "tensor", "shape": [], "dtype": "float32"}, "name"),
    ],
)  # fmt: skip
def test_a_value_that_does_not_fit_its_shape_or_the_limit_is_422_saying_which(
    client: TestClient, name: str, value: dict[str, Any] | None, message: str
) -> None:
    r = heatmap(client, name, value)
    assert r.status_code == 422
    assert message in r.json()["detail"]
