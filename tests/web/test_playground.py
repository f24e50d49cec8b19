"""The playground over HTTP: GET /playground opens the program of its link, and
POST /api/playground/graph draws one variable's autograd graph at one step.

Independent checks: the link's program is packed with zlib here and read back by the page; the
graph's gradients are those plain PyTorch computes for the same program, stopped at that step.
"""

from __future__ import annotations

import base64
import html
import re
import zlib

import pytest
import torch
from fastapi.testclient import TestClient

from app.web.code_url import decode_code, encode_code
from app.web.routes.playground import DEFAULT_PROGRAM, playground_url

PROGRAM = """\
import torch
w = torch.tensor([2.0, -1.0], requires_grad=True)

def predict(x):
    y = x * w
    z = y.sum()
    return z

out = predict(torch.tensor([3.0, 4.0]))
loss = (out - 1) ** 2
loss.backward()
"""


def packed(code: str) -> str:
    """The page's packing, done independently: raw DEFLATE, then base64url without padding."""
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = raw.compress(code.encode()) + raw.flush()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def editor_text(page: str) -> str:
    match = re.search(r'<textarea id="code"[^>]*>\n?(.*?)</textarea>', page, re.S)
    assert match, "no editor on the page"
    return html.unescape(match.group(1))


@pytest.mark.parametrize("code", [PROGRAM, "print('héllo ✓')\n", "x = 1"])
def test_a_link_packed_as_the_page_packs_opens_that_exact_program(
    client: TestClient, code: str
) -> None:
    page = client.get("/playground", params={"code": packed(code), "step": 3})
    assert page.status_code == 200
    assert editor_text(page.text) == code
    assert decode_code(encode_code(code), 20_000) == code
    assert '"step":3' in page.text


def test_the_playground_opens_on_a_whole_training_script_and_is_in_the_navigation(
    client: TestClient,
) -> None:
    page = client.get("/playground")
    assert page.status_code == 200
    assert editor_text(page.text) == DEFAULT_PROGRAM
    assert 'href="/playground"' in client.get("/").text


def test_a_program_written_into_the_link_as_it_is_also_opens(client: TestClient) -> None:
    page = client.get("/playground", params={"code": "print(1 + 1)"})
    assert editor_text(page.text) == "print(1 + 1)"


def test_a_lesson_link_names_the_lesson_it_came_from(client: TestClient) -> None:
    url = playground_url("x = 1\n", "cnn")
    page = client.get(url)
    assert page.status_code == 200
    assert 'href="/lessons/cnn"' in page.text and 'name="from" value="cnn"' in page.text
    bad = client.get("/playground", params={"code": packed("x = 1"), "from": "nope"})
    assert bad.status_code == 422 and "no lesson called &#39;nope&#39;" in bad.text


def test_a_link_whose_program_is_past_the_code_limit_is_a_422_naming_it(
    client: TestClient, settings
) -> None:
    limit = settings.program_max_code_chars
    answer = client.get("/playground", params={"code": packed("#" * (limit + 1))})
    assert answer.status_code == 422
    assert "program_max_code_chars" in answer.text and str(limit) in answer.text
    # A small link that would unpack into far more than the limit stops unpacking there.
    bomb = client.get("/playground", params={"code": packed("a" * (50 * limit))})
    assert bomb.status_code == 422 and "program_max_code_chars" in bomb.text


def reference_at_step(code: str, lines_run: int) -> dict[str, torch.Tensor]:
    """Plain PyTorch for PROGRAM's first statements, as the sandbox's steps count them."""
    w = torch.tensor([2.0, -1.0], requires_grad=True)
    x = torch.tensor([3.0, 4.0])
    y = x * w
    z = y.sum()
    out = z
    loss = (out - 1) ** 2
    if lines_run >= 7:
        loss.backward()
    return {"w": w, "y": y, "z": z, "loss": loss}


def test_the_graph_of_a_local_at_a_step_inside_a_call(client: TestClient) -> None:
    # Steps: 1 w =, 2 def, 3 y = (in predict), 4 z =, 5 return, 6 out =, 7 loss =, 8 backward.
    answer = client.post("/api/playground/graph", json={"code": PROGRAM, "step": 4, "root": "z@1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    labels = {node["label"] for node in body["graph"]["nodes"]}
    assert {"SumBackward0", "MulBackward0", "AccumulateGrad"} <= labels
    assert body["grads"] == []  # backward has not run yet at step 4
    assert body["figure"]["data"] and "z at step 4" in str(body["figure"]["layout"])


def test_after_backward_the_graph_shows_the_gradients_that_arrived(client: TestClient) -> None:
    answer = client.post("/api/playground/graph", json={"code": PROGRAM, "step": 8, "root": "loss"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    w = torch.tensor([2.0, -1.0], requires_grad=True)
    loss = ((torch.tensor([3.0, 4.0]) * w).sum() - 1) ** 2
    loss.backward()
    grads = {item["name"]: item["text"] for item in body["grads"]}
    expected = ", ".join(f"{v:.4g}" for v in w.grad.tolist())
    assert grads == {"w": f"[{expected}]"}
    assert {"PowBackward0", "SubBackward0"} <= {n["label"] for n in body["graph"]["nodes"]}


def test_a_root_that_is_not_a_tensor_at_that_step_is_a_422_naming_it(client: TestClient) -> None:
    early = client.post("/api/playground/graph", json={"code": PROGRAM, "step": 2, "root": "loss"})
    assert early.status_code == 422
    assert "'loss' is not defined at step 2" in early.json()["detail"]
    for body in ({"code": PROGRAM, "step": 0, "root": "w"}, {"code": PROGRAM, "root": "w"}):
        assert client.post("/api/playground/graph", json=body).status_code == 422


def test_a_models_parameters_show_the_gradients_backward_left_in_them(client: TestClient) -> None:
    code = (
        "import torch\nimport torch.nn as nn\ntorch.manual_seed(0)\nmodel = nn.Linear(2, 1)\n"
        "x = torch.tensor([[1.0, 2.0]])\nloss = model(x).sum()\nloss.backward()\n"
    )
    body = client.post("/api/playground/graph", json={"code": code, "step": 6, "root": "loss"})
    assert body.status_code == 200, body.text
    grads = {item["name"]: item["text"] for item in body.json()["grads"]}
    # d(w.x + b)/dw = x and d/db = 1, whatever the seeded weights are.
    assert grads == {"model.weight": "[[1, 2]]", "model.bias": "[1]"}
