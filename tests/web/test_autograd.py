"""The gradient-calculation page, its partial and its JSON twin, with the real worker pool."""

from __future__ import annotations

import html as html_module
import re
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

PAGE = "/lessons/autograd"
TWIN = "/api/lessons/autograd/view"


def text_of(html: str) -> str:
    return html_module.unescape(re.sub(r"<[^>]+>", "", html))


def visible_step(html: str) -> int:
    """The replay panel the server left visible."""
    shown = re.findall(r'class="replay-step" data-step="(\d+)">', html)
    assert len(shown) == 1, shown
    return int(shown[0])


def test_the_page_shows_the_graph_the_replay_and_the_real_code(client: TestClient) -> None:
    r = client.get(PAGE)
    assert r.status_code == 200
    html = r.text
    assert html.count('class="plot-data"') == 5
    for fig in ("graph", "no-grad", "accumulation", "descent-weight", "descent-loss"):
        assert f'id="fig-{fig}"' in html
    text = text_of(html)
    assert "x = torch.tensor(1.0, requires_grad=True)" in text  # the program, in the editor
    assert "Step 1 of 3: MulBackward0" in text and "Step 2 of 3: AddBackward0" in text
    assert "x.grad = 6" in text
    assert "dz/dx = dz/dy · dy/dx = 2y · 1 = 6 · 1 = 6" in " ".join(text.split())
    # The code on screen is the code that runs.
    assert "def gradient_descent" in text and "w.grad.zero_()" in text
    assert "def chain_rule" in text and "def backward_story" in text
    assert "node.register_hook" in text and "next_functions" in text
    assert 'src="/static/js/autograd.js' in html or "js/autograd." in html
    assert visible_step(html) == 0


def test_the_json_twin_has_the_same_numbers(client: TestClient) -> None:
    view = client.get(TWIN, params={"step": "2"}).json()
    assert view["slug"] == "autograd"
    result = view["result"]
    assert result["step"] == 2 and result["steps"] == 3
    assert [s["label"] for s in result["story"]] == [
        "MulBackward0",
        "AddBackward0",
        "AccumulateGrad",
    ]
    assert result["chain"]["dz_dx"] == 6.0
    assert [row["grad"] for row in result["accumulation"]["rows"]][4] == 12.0
    assert result["no_grad"]["inside"]["grad_fn"] is None
    assert set(view["figures"]) == {"graph", "no-grad", "accumulation", "descent-weight",
                                    "descent-loss"}  # fmt: skip
    ring = view["figures"]["graph"]["data"][3]
    functions = view["figures"]["graph"]["data"][2]
    add = functions["text"].index("AddBackward0")
    assert (ring["x"], ring["y"]) == ([functions["x"][add]], [functions["y"][add]])


def test_the_view_comes_from_the_url(client: TestClient) -> None:
    html = client.get(PAGE, params={"example": "shared", "backward": "e", "step": "3",
                                    "learning_rate": "0.05", "epochs": "30"}).text  # fmt: skip
    assert re.search(r'<option value="shared"\s+selected>', html)
    assert re.search(r'<option value="e"\s+selected>e.backward\(\)', html)
    assert 'name="step" id="step" value="3"' in html
    assert visible_step(html) == 3
    assert 'id="learning_rate" min="0.005" max="0.2" step="0.005" value="0.05"' in html
    assert "after 30 epochs" in text_of(html)
    # The replay's links keep the rest of the state (they work without JavaScript).
    next_link = re.search(r'data-go="next" href="([^"]+)"', html)
    assert next_link is not None
    href = html_module.unescape(next_link.group(1))
    assert "example=shared" in href and "backward=e" in href and href.endswith("step=4")


def test_a_typed_program_is_drawn_and_kept_in_the_url(client: TestClient) -> None:
    code = "p = torch.tensor([1., 2.], requires_grad=True)\nq = torch.exp(p).sum()\n"
    r = client.get(PAGE, params={"code": code})
    assert r.status_code == 200
    assert '<option value="custom" selected>Your program</option>' in r.text
    assert "q = torch.exp(p).sum()" in text_of(r.text)
    result = client.get(TWIN, params={"code": code}).json()["result"]
    assert result["program"]["backward"] == "q"
    labels = [s["label"] for s in result["story"]]
    assert labels == ["SumBackward0", "ExpBackward0", "AccumulateGrad"]
    assert result["leaf_grads"][0]["grad"] == pytest.approx([2.7182817, 7.3890561])
    # The next link carries the program itself.
    assert f"code={quote(code, safe='')}".replace("%20", "+") in html_module.unescape(r.text)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("eval('1')\n", "Line 1: eval is not available"),
        ("x = (\n", "SyntaxError"),
        ("x = torch.ones(100000, 100000)\n", "max_tensor_elements"),
        ("x = torch.tensor(1.0, requires_grad=True)\ny = x * undefined\n", "NameError"),
        ("a = torch.ones(2, 3)\nb = torch.ones(4, 5)\nc = a @ b\n", "Line 3:"),
        ("for i in range(100000):\n    i = i + 1\n", "max_statements"),
    ],
)
def test_a_bad_program_is_a_clear_message_beside_the_editor(
    client: TestClient, code: str, message: str
) -> None:
    r = client.get(PAGE, params={"code": code})
    assert r.status_code == 200
    error = re.search(r'<p class="program-error" role="alert" id="program-error">(.*?)</p>', r.text)
    assert error is not None and message in html_module.unescape(error.group(1))
    assert html_module.unescape(r.text).count(code.splitlines()[0]) >= 1  # still in the editor
    twin = client.get(TWIN, params={"code": code})
    assert twin.status_code == 200 and twin.json()["result"]["graph"]["error"]["message"]


def test_learner_text_is_escaped(client: TestClient) -> None:
    code = 'x = "</textarea><script>alert(1)</script>"\n'
    html = client.get(PAGE, params={"code": code}).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;/textarea&gt;&lt;script&gt;" in html


def test_backward_on_a_missing_or_vector_variable_says_why(client: TestClient) -> None:
    html = client.get(PAGE, params={"backward": "nope"}).text
    assert "backward: &#39;nope&#39; is not defined in the program" in html
    html = client.get(PAGE, params={"example": "vector", "backward": "z"}).text
    assert "needs a scalar output" in html and "z.mean()" in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        ({"epochs": "100000"}, "max_epochs"),
        ({"example": "nope"}, "example must be one of"),
        ({"step": "two"}, "step must be a whole number"),
        ({"chain_x": "1000"}, "max_abs_x"),
    ],
)
def test_bad_page_state_is_a_422_that_names_the_field(
    client: TestClient, query: dict[str, str], message: str
) -> None:
    for path in (PAGE, f"{PAGE}/partial", TWIN):
        r = client.get(path, params=query)
        assert r.status_code == 422, path
        assert message in html_module.unescape(r.text)


def test_odd_input_is_never_a_500(client: TestClient) -> None:
    queries = [
        {"step": "-5"}, {"step": "999999999"}, {"backward": ""}, {"backward": "x"},
        {"code": ""}, {"code": "   "}, {"code": "\x00"}, {"code": "x" * 30_000},
        {"code": "while True:\n    pass\n"}, {"code": "x = 1\n", "backward": "x"},
        {"code": "x = torch.tensor(1.0, requires_grad=True)\nx.backward()\nx.backward()\n"},
        {"example": "custom"}, {"learning_rate": "nan"}, {"epochs": "-1"}, {"chain_x": "inf"},
    ]  # fmt: skip
    for query in queries:
        r = client.get(TWIN, params=query)
        assert r.status_code in (200, 422), (query, r.status_code, r.text[:300])
    # The page still answers afterwards.
    assert client.get(PAGE).status_code == 200


def test_the_partial_is_the_changing_part_of_the_page(client: TestClient) -> None:
    r = client.get(f"{PAGE}/partial", params={"learning_rate": "0.05", "step": "1"})
    assert r.status_code == 200
    assert "<html" not in r.text
    for slot in ("replay", "fig-graph", "backward-select", "descent-readout", "chain"):
        assert f'data-slot="{slot}"' in r.text
    assert visible_step(r.text) == 1
