"""The Tensor basics page, its partial and its JSON twin: the program runs on the server."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

from app.config import Settings
from app.lessons.tensors import EXAMPLES
from app.main import create_app
from app.web.routes.lessons.tensors import ProgramRequest, ProgramResponse

PAGE = "/lessons/tensors"
TWIN = "/api/lessons/tensors/view"


def page_data(text: str) -> dict:
    """The trace the page embeds for its script."""
    found = re.search(
        r'<script type="application/json" id="tensors-data">(.*?)</script>', text, re.S
    )
    assert found, "the page embeds no trace"
    return json.loads(found.group(1))


def text_of(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def card(markup: str, name: str) -> str:
    """The server-rendered value card of variable ``name``."""
    found = re.search(
        rf'<div class="value-card[^"]*" data-variable="{name}".*?</table>', markup, re.S
    )
    assert found, f"no card for {name}"
    return found.group(0)


def test_the_page_runs_the_example_and_shows_the_step_before_any_script(
    client: TestClient,
) -> None:
    r = client.get(f"{PAGE}?example=view&step=2")
    assert r.status_code == 200
    b = card(r.text, "b")
    assert (
        "tensor [4,1]" in b and "stride [1,1]" in b
    )  # as values.js writes them and "storage s1" in b
    assert re.findall(r"<td>([^<]*)</td>", b) == ["1", "2", "3", "4"]
    assert "a and b share memory" in text_of(r.text)
    assert '<li data-line="2" class="current">' in r.text
    assert "Step 2 of 4" in r.text and 'class="plot-data"' in r.text
    data = page_data(r.text)
    assert data["result"]["step"] == 2 and len(data["result"]["steps"]) == 4
    assert data["form"]["examples"].keys() == EXAMPLES.keys()


def test_a_step_past_the_end_shows_the_last_one(client: TestClient) -> None:
    r = client.get(f"{PAGE}?example=view&step=99")
    assert r.status_code == 200 and "Step 4 of 4" in r.text
    a = card(r.text, "a")
    assert re.findall(r"<td>([^<]*)</td>", a) == ["10", "2", "3", "4"]


def test_the_partial_is_the_runner_without_the_page_around_it(client: TestClient) -> None:
    r = client.get(f"{PAGE}/partial?example=numpy&step=3")
    assert r.status_code == 200 and "<html" not in r.text
    assert 'id="variables"' in r.text and 'data-slot="fig-heatmap"' in r.text
    assert "a and n share memory" in text_of(r.text)


def test_the_json_twin_holds_the_trace_the_step_and_the_heatmap(client: TestClient) -> None:
    body = client.get(f"{TWIN}?example=view&step=2").json()
    result = body["result"]
    assert body["params"]["example"] == "view" and body["params"]["step"] == 2
    assert result["changed"] == ["b"] and result["line"] == 2
    assert result["shared"] == [{"storage": "s1", "names": ["a", "b"]}]
    # The twin's trace is in steps "changes": the server rebuilt the step's variables for it.
    assert result["steps"][result["index"]]["changes"].keys() == {"b"}
    b = result["variables"]["b"]
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(b["values"], a.reshape(4, -1))
    assert body["figures"]["heatmap"]["data"][0]["z"] == a.reshape(4, 1).tolist()


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_runs_in_the_worker_pool_without_error(client: TestClient, name: str) -> None:
    result = client.get(f"{TWIN}?example={name}").json()["result"]
    assert result["error"] is None and result["refused"] is None
    assert result["count"] == len([t for t in EXAMPLES[name].code.splitlines() if t.strip()])


def test_the_learners_code_in_the_url_runs_at_the_step_it_names(client: TestClient) -> None:
    code = "x = torch.arange(6).view(2, 3)\ny = x * 2\nz = x @ x.T\n"
    r = client.get(f"{PAGE}?{urlencode({'example': 'view', 'code': code, 'step': 3})}")
    assert r.status_code == 200
    assert "Your edit of: view(4, -1)" in text_of(r.text)
    assert html.escape(code, quote=False) in r.text  # in the editor
    x = np.arange(6).reshape(2, 3)
    assert re.findall(r"<td>([^<]*)</td>", card(r.text, "z")) == [str(v) for v in (x @ x.T).flat]
    assert 'id="step-next" href="/lessons/tensors?example=view&amp;code=' in r.text


def test_a_refused_program_shows_the_sandboxs_message_on_its_line_not_a_500(
    client: TestClient,
) -> None:
    r = client.get(f"{PAGE}?{urlencode({'code': 'x = 1' + chr(10) + 'eval(1)'})}")
    assert r.status_code == 200
    message = re.search(r'<p id="program-message"[^>]*>(.*?)</p>', r.text, re.S)
    assert message and "line 2" in message.group(1) and "eval" in message.group(1)
    assert '<li data-line="2" class="error">' in r.text
    twin = client.get(f"{TWIN}?{urlencode({'code': 'eval(1)'})}").json()["result"]
    assert twin["refused"]["line"] == 1 and twin["count"] == 0


def test_a_runtime_error_is_the_last_step_with_pytorchs_message(client: TestClient) -> None:
    code = "a = torch.ones(3)\nb = a.item()\n"
    r = client.get(f"{PAGE}?{urlencode({'code': code, 'step': 2})}")
    assert r.status_code == 200 and "Step 2 of 2" in r.text
    error = re.search(r'<p id="step-error"[^>]*>(.*?)</p>', r.text, re.S)
    assert error and "line 2" in error.group(1)
    assert "a Tensor with 3 elements cannot be converted to Scalar" in html.unescape(error.group(1))
    assert '<li data-line="2" class="error">' in r.text


def test_learner_text_is_escaped_in_the_page_and_its_embedded_data(client: TestClient) -> None:
    code = 'x = "</script><script>alert(1)</script>"\n'
    r = client.get(f"{PAGE}?{urlencode({'code': code})}")
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text
    assert page_data(r.text)["result"]["code"] == code


def test_bad_page_state_is_a_422_page_that_says_what_to_fix(client: TestClient) -> None:
    r = client.get(f"{PAGE}?example=nope")
    assert r.status_code == 422 and "text/html" in r.headers["content-type"]
    assert "the examples are create, dtype" in html.unescape(r.text)
    r = client.get(f"{PAGE}?step=last")
    assert r.status_code == 422 and "step must be a whole number" in html.unescape(r.text)
    assert client.get(f"{TWIN}?example=nope").status_code == 422


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", program_max_code_chars=200)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_code_over_the_size_limit_shows_the_limit_instead_of_breaking(
    small_client: TestClient,
) -> None:
    code = "x = torch.ones(2)\n" * 20
    r = small_client.get(f"{PAGE}?{urlencode({'code': code})}")
    assert r.status_code == 200
    message = re.search(r'<p id="program-message"[^>]*>(.*?)</p>', r.text, re.S)
    assert message and "max_code_chars" in message.group(1) and "360" in message.group(1)


# ---- POST /api/tensors/run: steps "none", files and figures (issue 13) ----------------------

FILE_ITEM = {"name": "model.pth", "bytes": 3, "base64": "AAEC", "kind": "file"}
BOARD_ITEM = {"name": "runs.zip", "bytes": 0, "base64": "", "kind": "tensorboard"}
FIGURE_ITEM = {"step": 4, "line": 7, "png": "iVBORw0KGgo=", "width": 640, "height": 480}


def test_the_response_model_carries_files_and_figures_and_steps_none() -> None:
    answer = {
        "steps": [],
        "error": None,
        "steps_format": "none",
        "stdout_after": "loss 0.5\n",
        "files": [FILE_ITEM, BOARD_ITEM],
        "figures": [FIGURE_ITEM],
    }
    dumped = ProgramResponse.model_validate(answer).model_dump()
    assert dumped["files"] == [FILE_ITEM, BOARD_ITEM] and dumped["figures"] == [FIGURE_ITEM]
    assert dumped["steps_format"] == "none"
    # An answer written before files and figures existed still validates: both default empty.
    old = ProgramResponse.model_validate({"steps": [], "error": None}).model_dump()
    assert old["files"] == [] and old["figures"] == [] and old["steps_format"] == "full"
    assert ProgramRequest.model_validate({"code": "x = 1", "steps": "none"}).steps == "none"


@pytest.mark.parametrize(
    "bad",
    [
        {"files": [{**FILE_ITEM, "kind": "folder"}]},
        {"files": [{**FILE_ITEM, "bytes": -1}]},
        {"figures": [{**FIGURE_ITEM, "width": 0}]},
        {"figures": [{k: v for k, v in FIGURE_ITEM.items() if k != "png"}]},
    ],
)
def test_the_response_model_refuses_malformed_files_and_figures(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ProgramResponse.model_validate({"steps": [], "error": None, **bad})


def test_the_openapi_schema_documents_steps_none_files_and_figures(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "none" in schemas["ProgramRequest"]["properties"]["steps"]["enum"]
    response = schemas["ProgramResponse"]["properties"]
    assert response["files"]["items"]["$ref"].endswith("/ProgramFile")
    assert response["figures"]["items"]["$ref"].endswith("/ProgramFigure")
    assert schemas["ProgramFile"]["properties"]["kind"]["enum"] == ["file", "tensorboard"]
    assert set(schemas["ProgramFigure"]["required"]) == {"step", "line", "png", "width", "height"}


def test_a_steps_value_the_api_does_not_know_is_a_422(client: TestClient) -> None:
    r = client.post("/api/tensors/run", json={"code": "x = 1", "steps": "some"})
    assert r.status_code == 422


# The engine's end of it: a pasted script's saved file and figure come back in the answer.
SAVES_A_STATE_DICT = """import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        return self.linear(x)

torch.manual_seed(0)
model = Net()
torch.save(model.state_dict(), "model.pth")
print("saved")
"""

PLOTS_A_LINE = """import matplotlib.pyplot as plt

losses = [1.0, 0.6, 0.4, 0.3]
plt.plot(losses)
plt.xlabel("epoch")
plt.ylabel("loss")
plt.show()
"""


def test_a_saved_state_dict_comes_back_and_opens_with_plain_torch_load(
    client: TestClient,
) -> None:
    r = client.post("/api/tensors/run", json={"code": SAVES_A_STATE_DICT, "steps": "none"})
    assert r.status_code == 200, r.text
    body = r.json()
    ProgramResponse.model_validate(body)
    assert body["error"] is None and body["steps"] == [] and body["steps_format"] == "none"
    assert body["stdout_after"] == "saved\n"
    (saved,) = [f for f in body["files"] if f["name"] == "model.pth"]
    raw = base64.b64decode(saved["base64"])
    assert saved["kind"] == "file" and saved["bytes"] == len(raw)
    loaded = torch.load(io.BytesIO(raw))  # PyTorch's default: weights_only=True
    torch.manual_seed(0)
    expected = torch.nn.Linear(3, 2).state_dict()  # the same seed, in plain PyTorch
    assert list(loaded) == ["linear.weight", "linear.bias"]
    for name, tensor in expected.items():
        assert torch.equal(loaded[f"linear.{name}"], tensor), name


def test_a_figure_comes_back_as_a_png_of_its_stated_size_at_the_step_that_drew_it(
    client: TestClient,
) -> None:
    r = client.post("/api/tensors/run", json={"code": PLOTS_A_LINE, "steps": "changes"})
    assert r.status_code == 200, r.text
    body = r.json()
    ProgramResponse.model_validate(body)
    assert body["error"] is None
    (figure,) = body["figures"]
    picture = Image.open(io.BytesIO(base64.b64decode(figure["png"])))
    assert picture.format == "PNG"
    assert picture.size == (figure["width"], figure["height"])
    shown = PLOTS_A_LINE.splitlines().index("plt.show()") + 1
    assert figure["line"] == shown
    # The statement that drew it is the step after those recorded before it.
    assert body["steps"][figure["step"]]["line"] == shown


def test_the_page_embeds_the_programs_files_and_figures_for_its_script(
    client: TestClient,
) -> None:
    code = SAVES_A_STATE_DICT + PLOTS_A_LINE
    r = client.get(f"{PAGE}?{urlencode({'code': code})}")
    assert r.status_code == 200
    assert 'id="program-figures"' in r.text and 'id="program-files"' in r.text
    result = page_data(r.text)["result"]
    assert [f["name"] for f in result["files"]] == ["model.pth"]
    (figure,) = result["figures"]
    assert Image.open(io.BytesIO(base64.b64decode(figure["png"]))).size == (
        figure["width"],
        figure["height"],
    )
