"""The Tensor basics page, its partial and its JSON twin: the program runs on the server."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.lessons.tensors import EXAMPLES
from app.main import create_app

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
    r = client.get(f"{PAGE}?{urlencode({'code': 'x = 1' + chr(10) + 'import os'})}")
    assert r.status_code == 200
    message = re.search(r'<p id="program-message"[^>]*>(.*?)</p>', r.text, re.S)
    assert message and "line 2" in message.group(1) and "import os" in message.group(1)
    assert '<li data-line="2" class="error">' in r.text
    twin = client.get(f"{TWIN}?{urlencode({'code': 'import os'})}").json()["result"]
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
