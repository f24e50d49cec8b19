"""The Tensor basics lesson, driven like a learner would: pick, step, edit, run, reload."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import nbformat
import numpy as np
import pytest
import torch
from PIL import Image
from playwright.sync_api import Locator, Page, Request, expect

from app.lessons.tensors import EXAMPLES
from app.web.routes.notebook import file_name

LESSON = "/lessons/tensors"


@pytest.fixture(scope="module", autouse=True)
def warm_sandbox(base_url: str) -> None:
    """Start a sandbox worker first: a cold one (2-10 s on a busy machine) is not under test."""
    response = httpx.post(f"{base_url}/api/tensors/run", json={"code": "x = 1"}, timeout=60)
    assert response.status_code == 200


def open_lesson(page: Page, query: str = "") -> None:
    page.goto(LESSON + (f"?{query}" if query else ""))
    page.wait_for_function("() => document.getElementById('fig-heatmap').data")
    expect(page.locator("#program-form")).to_have_attribute("data-ready", "true")


def state(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def label(page: Page, text: str) -> None:
    expect(page.locator("#step-label")).to_have_text(text)


def cells(page: Page, name: str) -> list[str]:
    grid = page.locator(f'#variables [data-variable="{name}"] > table.grid td')
    return [t.strip() for t in grid.all_text_contents()]


def blur(page: Page) -> None:
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def test_view_example_steps_by_keys_and_buttons_and_marks_shared_memory(page: Page) -> None:
    open_lesson(page)
    page.locator('.example-link[data-example="view"]').click()
    label(page, "Step 1 of 4")
    expect(page.locator('.example-link[data-example="view"]')).to_have_attribute(
        "aria-current", "true"
    )
    blur(page)
    expect(page.locator('#variables [data-variable="b"]')).to_have_count(0)

    page.keyboard.press("ArrowRight")
    label(page, "Step 2 of 4")
    b = page.locator('#variables [data-variable="b"]')
    expect(b).to_contain_text("tensor [4,1]")
    expect(b).to_have_class("value-card kind-tensor changed")
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert cells(page, "b") == [f"{v:g}" for v in a.reshape(4, -1).flat]
    expect(page.locator("#shared-notes")).to_contain_text("a and b share memory")
    expect(b.locator(".badge-chip.shared")).to_have_text("shares memory with a")
    expect(page.locator('#listing li[data-line="2"]')).to_have_class("current")
    assert state(page)["example"] == ["view"] and state(page)["step"] == ["2"]
    page.wait_for_function(
        "z => JSON.stringify(document.getElementById('fig-heatmap').data[0].z)"
        " === JSON.stringify(z)",
        arg=a.reshape(4, 1).tolist(),
    )

    page.keyboard.press("ArrowLeft")
    label(page, "Step 1 of 4")
    expect(page.locator('#variables [data-variable="b"]')).to_have_count(0)

    page.locator("#step-next").click()
    page.locator("#step-next").click()
    page.locator("#step-next").click()
    label(page, "Step 4 of 4")
    a[0, 0] = 10.0
    assert cells(page, "b") == [f"{v:g}" for v in a.reshape(4, 1).flat]  # b saw a's write
    first_b = page.locator('#variables [data-variable="b"] > table.grid td').first
    expect(first_b).to_have_class("changed")  # only the cell that changed
    expect(page.locator('#variables [data-variable="b"] > table.grid td.changed')).to_have_count(1)
    expect(page.locator("#shared-notes")).to_contain_text("a, b and c share memory")

    page.locator("#heatmap-var").select_option("a")  # draw a instead of the changed tensor
    page.wait_for_function(
        "() => document.getElementById('fig-heatmap').layout.title.text.startsWith('a: tensor')"
    )
    assert state(page)["var"] == ["a"]

    page.locator("#step-first").click()
    label(page, "Step 1 of 4")
    page.keyboard.press("End")
    label(page, "Step 4 of 4")
    page.locator("#step-prev").click()
    label(page, "Step 3 of 4")
    assert state(page)["step"] == ["3"]


def test_edited_code_runs_steps_and_a_reload_keeps_the_code_and_step(page: Page) -> None:
    open_lesson(page, "example=view")
    code = "x = torch.arange(6).view(2, 3)\ny = x * 2\nz = x @ x.T\nprint(z)\n"
    page.locator("#code").fill(code)
    expect(page.locator("#edit-note")).to_contain_text("press Run")
    page.locator("#run").click()
    label(page, "Step 1 of 4")
    expect(page.locator("#explanation-title")).to_have_text(
        "Your edit of: view(4, -1): a 2x2 becomes a 4x1"
    )
    blur(page)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    label(page, "Step 3 of 4")
    x = np.arange(6).reshape(2, 3)
    assert cells(page, "z") == [str(v) for v in (x @ x.T).flat]
    expect(page.locator('#listing li[data-line="3"]')).to_have_class("current")
    assert state(page)["code"] == [code] and state(page)["step"] == ["3"]
    page.keyboard.press("End")
    printed = page.locator("#stdout mark").text_content() or ""
    assert printed.startswith("tensor([[")
    assert [int(v) for v in re.findall(r"-?\d+", printed)] == list((x @ x.T).flat)

    page.keyboard.press("ArrowLeft")
    page.wait_for_load_state("networkidle")  # a reload aborts requests still in flight
    page.reload()
    expect(page.locator("#program-form")).to_have_attribute("data-ready", "true")
    label(page, "Step 3 of 4")
    expect(page.locator("#code")).to_have_value(code)
    assert cells(page, "z") == [str(v) for v in (x @ x.T).flat]


def test_a_refused_program_and_a_runtime_error_show_their_messages_on_their_lines(
    page: Page, problems
) -> None:
    problems.expect(422, "/api/tensors/run")
    open_lesson(page, "example=item")
    page.locator("#code").fill("x = torch.ones(2)\neval(1)\n")
    page.locator("#run").click()
    message = page.locator("#program-message")
    expect(message).to_be_visible()
    expect(message).to_contain_text("line 2")
    expect(message).to_contain_text("eval is not available")
    expect(page.locator('#listing li[data-line="2"]')).to_have_class("error")
    label(page, "Step 0 of 0")

    page.locator("#code").fill("x = torch.tensor([3.5, 1.25])\ny = x.item()\n")
    page.keyboard.press("Control+Enter")
    label(page, "Step 1 of 2")
    expect(message).to_be_hidden()
    page.locator("#step-last").click()
    error = page.locator("#step-error")
    expect(error).to_contain_text("line 2")
    expect(error).to_contain_text("a Tensor with 2 elements cannot be converted to Scalar")
    expect(page.locator('#listing li[data-line="2"]')).to_have_class("error")
    assert cells(page, "x") == ["3.5", "1.25"]  # as line 1 left it
    expect(page.locator("#url-note")).to_be_hidden()

    # Too long for the address bar: it still runs, and the page says the link opens the example.
    page.locator("#code").fill("# " + "long " * 1500 + "\nx = torch.ones(2)\n")
    page.locator("#run").click()
    label(page, "Step 1 of 1")
    expect(page.locator("#url-note")).to_contain_text("over the limit")
    assert "code" not in state(page) and state(page)["example"] == ["item"]


def test_on_a_phone_the_runner_fits_and_steps(phone_page: Page) -> None:
    open_lesson(phone_page, "example=numpy&step=1")
    phone_page.locator("#step-last").click()
    label(phone_page, "Step 8 of 8")
    expect(phone_page.locator("#shared-notes li")).to_have_count(2)
    assert cells(phone_page, "t") == ["5", "5", "5"]
    overflow = phone_page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


# A program whose steps add, change and delete variables: the page rebuilds each step's
# variables from what the step changed (steps "changes"); they must be the API's full state.
CHANGING = (
    "t = torch.arange(4)\n"
    "for i in range(3):\n"
    "    t[i] = 10 * i\n"
    "    u = t * 2\n"
    "    del u\n"
    "s = 'done'\n"
    "del t\n"
)


def card_names(page: Page) -> list[str]:
    return page.locator("#variables .value-card").evaluate_all(
        "cards => cards.map(card => card.dataset.variable)"
    )


def test_stepping_a_program_that_changes_and_deletes_shows_the_apis_full_state(
    page: Page, base_url: str
) -> None:
    full = httpx.post(f"{base_url}/api/tensors/run", json={"code": CHANGING}, timeout=60).json()
    states = [step["variables"] for step in full["steps"]]
    open_lesson(page, "example=view")
    page.locator("#code").fill(CHANGING)
    page.locator("#run").click()
    label(page, f"Step 1 of {len(states)}")
    blur(page)
    for index, variables in enumerate(states):
        if index:
            page.keyboard.press("ArrowRight")
        label(page, f"Step {index + 1} of {len(states)}")
        assert card_names(page) == list(variables), index
        for name, value in variables.items():
            if value["kind"] == "tensor":
                assert cells(page, name) == [str(v) for v in value["values"]], (index, name)
    for index in range(len(states) - 2, -1, -1):  # and back again
        page.keyboard.press("ArrowLeft")
        label(page, f"Step {index + 1} of {len(states)}")
        assert card_names(page) == list(states[index]), index


def test_the_repeated_string_program_opens_under_the_budget_and_steps(
    page: Page, base_url: str
) -> None:
    code = (
        "s = 'x' * 2000\n"
        + "".join(f"v{i} = s\n" for i in range(240))
        + "for i in range(880):\n    pass\n"
    )
    query = urlencode({"code": code, "step": 241})
    size = len(httpx.get(f"{base_url}{LESSON}?{query}", timeout=60).content)
    assert size <= 8 * 1024 * 1024  # max_answer_bytes (it was 929 MB)
    open_lesson(page, query)
    label(page, "Step 241 of 2000")
    assert card_names(page)[-1] == "v239" and len(card_names(page)) == 241
    expect(page.locator("#notices")).to_contain_text("max_steps_recorded")
    blur(page)
    page.keyboard.press("End")
    label(page, "Step 2000 of 2000")
    assert len(card_names(page)) == 242  # s, v0 ... v239 and i
    expect(page.locator('#variables [data-variable="i"] .value-text')).to_have_text("879")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    label(page, "Step 1998 of 2000")
    page.keyboard.press("Home")
    label(page, "Step 1 of 2000")
    assert card_names(page) == ["s"]


def test_each_steps_heatmap_is_the_servers_figure_drawn_at_once(page: Page, base_url: str) -> None:
    """The page draws POST /api/tensors/heatmap's figure for the tensor of each step; the
    neighbouring steps' figures are asked for ahead, so a key press draws without waiting."""
    full = httpx.post(
        f"{base_url}/api/tensors/run", json={"code": EXAMPLES["view"].code}, timeout=60
    ).json()["steps"]
    asked: list[tuple[str, Any]] = []  # (name, values) of every heatmap the page asked for

    def note(request: Request) -> None:
        if request.url.endswith("/api/tensors/heatmap"):
            body = json.loads(request.post_data or "{}")
            asked.append((body["name"], body["value"]["values"]))

    page.on("request", note)
    open_lesson(page, "example=view")
    blur(page)
    drawn_after_ms = []
    for index, step in enumerate(full):
        if index:
            page.wait_for_timeout(100)  # the requests the page made have been reported here
            before = list(asked)
            drawn_after_ms.append(page.evaluate(PRESS_AND_TIME))  # ms from the key to the drawing
            label(page, f"Step {index + 1} of {len(full)}")
        name = page.locator("#heatmap-var").input_value()
        value = step["variables"][name]
        if index:
            # The step's figure was asked for before its key was pressed: drawn without waiting.
            assert (name, value["values"]) in before, (index, name)  # 1 == 1.0: JSON's numbers
        expected = httpx.post(
            f"{base_url}/api/tensors/heatmap", json={"name": name, "value": value}
        ).json()["figure"]
        page.wait_for_function(
            "([z, title]) => { const d = document.getElementById('fig-heatmap');"
            " return JSON.stringify(d.data[0].z) === JSON.stringify(z)"
            " && d.layout.title.text === title; }",
            arg=[expected["data"][0]["z"], expected["layout"]["title"]["text"]],
        )
        assert np.array_equal(np.asarray(value["values"], dtype=float).reshape(-1), np.asarray(
            expected["data"][0]["z"], dtype=float).reshape(-1))  # fmt: skip
    print("heatmap drawn after a key press (ms):", [round(t) for t in drawn_after_ms])


# Press ArrowRight in the page and answer how many ms later Plotly had redrawn the heatmap.
PRESS_AND_TIME = """() => new Promise((resolve) => {
    const div = document.getElementById('fig-heatmap');
    const started = performance.now();
    const done = () => {
        div.removeListener('plotly_afterplot', done);
        resolve(performance.now() - started);
    };
    div.on('plotly_afterplot', done);
    document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}));
})"""


# A whole beginner script as a learner pastes it (issue 13): a learner nn.Module trained for a few
# epochs, the losses printed and plotted, the weights saved.
BEGINNER_SCRIPT = """import torch
import torch.nn as nn
import matplotlib.pyplot as plt

torch.manual_seed(0)
X = torch.linspace(-1, 1, 20).reshape(-1, 1)  # (20, 1)
y = 3 * X + 1


class LinearRegression(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.linear(x)


model = LinearRegression(1, 1)
criterion = nn.MSELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
losses = []
for epoch in range(5):
    loss = criterion(model(X), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    print(f"epoch {epoch + 1}: loss = {loss.item():.4f}")

plt.plot(losses)
plt.xlabel("epoch")
plt.ylabel("loss")
plt.show()
torch.save(model.state_dict(), "model.pth")
"""


def downloaded(page: Page, link: Locator) -> bytes:
    """What a click on a download link saves, as a learner's browser would save it."""
    with page.expect_download() as download:
        link.click()
    return Path(download.value.path()).read_bytes()


def plain_python(script: str, folder: Path) -> str:
    """What the script prints run as plain Python in a fresh process (matplotlib on Agg)."""
    env = os.environ | {"MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_a_pasted_beginner_script_prints_its_losses_shows_its_figure_and_offers_its_file(
    page: Page, tmp_path: Path
) -> None:
    printed = plain_python(BEGINNER_SCRIPT, tmp_path)
    assert printed.count("loss = ") == 5
    open_lesson(page, "example=view")
    page.locator("#code").fill(BEGINNER_SCRIPT)
    page.locator("#run").click()
    # The listing is the script's once its answer is in (the example's steps showed before).
    expect(page.locator("#listing li")).to_have_count(len(BEGINNER_SCRIPT.splitlines()))
    expect(page.locator("#step-label")).to_contain_text("Step 1 of ")
    blur(page)
    page.keyboard.press("End")
    expect(page.locator("#step-error")).to_be_hidden()
    expect(page.locator("#stdout")).to_have_text(printed)  # line for line as plain Python

    figure = page.locator("#figures figure.program-figure")
    expect(figure).to_have_count(1)
    shown = BEGINNER_SCRIPT.splitlines().index("plt.show()") + 1
    img = figure.locator("img")
    expect(img).to_have_attribute("alt", f"Figure 1, drawn by line {shown}: plt.show()")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    expect(figure).not_to_have_class(re.compile(r"\bcurrent\b"))  # the last step is torch.save
    # The figure's step link, by keyboard: the step that drew it, with its line and highlight.
    figure.locator("a.figure-step").focus()
    page.keyboard.press("Enter")
    expect(figure).to_have_class(re.compile(r"\bcurrent\b"))
    expect(figure).to_have_attribute("aria-current", "step")
    expect(page.locator(f'#listing li[data-line="{shown}"]')).to_have_class("current")
    blur(page)
    page.keyboard.press("ArrowRight")
    expect(figure).not_to_have_class(re.compile(r"\bcurrent\b"))

    link = page.locator('#files a[download="model.pth"]')
    expect(link).to_have_count(1)
    expect(link).to_have_text("Download model.pth")
    expect(page.locator("#files li")).to_contain_text(
        re.compile(r"model\.pth · \d[\d.]*\s(bytes|KB)")
    )
    saved = downloaded(page, link)
    loaded = torch.load(io.BytesIO(saved))
    expected = torch.load(tmp_path / "model.pth")  # what plain Python saved
    assert list(loaded) == list(expected)
    for name, tensor in expected.items():
        assert torch.allclose(loaded[name], tensor, rtol=0, atol=1e-6), name


PLOT_ONLY = """import matplotlib.pyplot as plt
from torch.utils.tensorboard import SummaryWriter

writer = SummaryWriter("runs/demo")
for step in range(3):
    writer.add_scalar("loss", 1.0 / (step + 1), step)
writer.close()
plt.plot([3, 1, 2])
plt.title("a wide title that must not push the page sideways on a phone")
plt.show()
"""


def test_on_a_phone_a_figure_and_the_tensorboard_download_fit(phone_page: Page) -> None:
    open_lesson(phone_page, "example=view")
    phone_page.locator("#code").fill(PLOT_ONLY)
    phone_page.locator("#run").click()
    expect(phone_page.locator("#figures img")).to_have_count(1)
    board = phone_page.locator('#files li[data-kind="tensorboard"]')
    expect(board.locator("a")).to_have_text("Download TensorBoard log (zip)")
    expect(board).to_contain_text("tensorboard --logdir <unzipped folder>")
    phone_page.wait_for_function(
        "() => [...document.querySelectorAll('#figures img')].every(i => i.complete)"
    )
    overflow = phone_page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    width = phone_page.locator("#figures img").evaluate("img => img.getBoundingClientRect().width")
    assert width <= 390


def png_base64(width: int, height: int) -> str:
    """A small real PNG, as the answer carries one."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_the_page_draws_the_answers_figures_and_files_as_it_gets_them(
    page: Page, base_url: str
) -> None:
    """The page only draws: the figures and files of the API's answer (here added to a real
    answer on its way to the page) become images at their steps and Blob downloads."""
    code = "a = torch.ones(2)\nb = a * 2\nc = b + 1\n"
    answer = httpx.post(
        f"{base_url}/api/tensors/run", json={"code": code, "steps": "changes"}, timeout=60
    ).json()
    saved = bytes(range(256)) * 5  # 1280 bytes
    answer["figures"] = [
        {"step": 1, "line": 2, "png": png_base64(64, 48), "width": 64, "height": 48},
        {"step": 2, "line": 3, "png": png_base64(32, 24), "width": 32, "height": 24},
        {"step": 3, "line": 3, "png": png_base64(32, 24), "width": 32, "height": 24},
    ]
    answer["files"] = [
        {"name": "model.pth", "bytes": len(saved), "base64": base64.b64encode(saved).decode(),
         "kind": "file"},
        {"name": "runs.zip", "bytes": 22, "base64": base64.b64encode(b"PK\x05\x06" + bytes(18))
         .decode(), "kind": "tensorboard"},
    ]  # fmt: skip
    page.route(
        "**/api/tensors/run",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(answer)
        ),
    )
    open_lesson(page, "example=view")
    expect(page.locator("#program-figures")).to_be_hidden()
    expect(page.locator("#program-files")).to_be_hidden()
    page.locator("#code").fill(code)
    page.locator("#run").click()
    label(page, "Step 1 of 3")
    figures = page.locator("#figures figure.program-figure")
    expect(figures).to_have_count(3)
    first, second, third = figures.nth(0), figures.nth(1), figures.nth(2)
    expect(first.locator("img")).to_have_attribute("alt", "Figure 1, drawn by line 2: b = a * 2")
    expect(first.locator("figcaption")).to_have_text("Figure 1 · line 2 · step 2")
    expect(second.locator("figcaption")).to_have_text("Figure 2 · line 3 · step 3")
    # Drawn after the last recorded step (recording had stopped): it goes with the last step.
    expect(third.locator("figcaption")).to_have_text("Figure 3 · line 3 · after step 3")
    size = first.locator("img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [64, 48]
    expect(first).to_have_class(re.compile(r"\blater\b"))
    blur(page)
    page.keyboard.press("ArrowRight")
    label(page, "Step 2 of 3")
    expect(first).to_have_class(re.compile(r"\bcurrent\b"))
    expect(second).to_have_class(re.compile(r"\blater\b"))
    second.locator("a.figure-step").click()
    label(page, "Step 3 of 3")
    expect(second).to_have_attribute("aria-current", "step")
    expect(third).to_have_class(re.compile(r"\bcurrent\b"))
    expect(first).not_to_have_attribute("aria-current", "step")
    assert state(page)["step"] == ["3"]

    link = page.locator('#files a[download="model.pth"]')
    expect(link).to_have_text("Download model.pth")
    expect(page.locator('#files li[data-kind="file"]')).to_contain_text("model.pth · 1.3 KB")
    got = downloaded(page, link)
    assert got == saved
    board = page.locator('#files li[data-kind="tensorboard"]')
    expect(board.locator("a")).to_have_text("Download TensorBoard log (zip)")
    expect(board.locator("a")).to_have_attribute("download", "runs.zip")
    expect(board).to_contain_text("runs.zip · 22 bytes")
    expect(board.locator("code")).to_have_text("tensorboard --logdir <unzipped folder>")

    # The next answer without figures or files takes them away.
    answer["figures"], answer["files"] = [], []
    page.locator("#run").click()
    expect(page.locator("#program-figures")).to_be_hidden()
    expect(page.locator("#program-files")).to_be_hidden()


# A class-based training script in blocks separated by blank lines (issue 14, "take it home"):
# no seed of its own, so its numbers are those of the seed every sandbox run starts from, which
# the notebook's setup cell sets.
TRAINING_SCRIPT = """import torch
import torch.nn as nn

X = torch.randn(32, 3)  # (32, 3)
w_true = torch.tensor([[2.0], [-1.0], [0.5]])  # (3, 1)
y = X @ w_true + 0.1 * torch.randn(32, 1)  # (32, 1)


class Learner(nn.Module):
    def __init__(self, n_in, n_hidden):
        super().__init__()
        self.hidden = nn.Linear(n_in, n_hidden)
        self.out = nn.Linear(n_hidden, 1)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


model = Learner(3, 8)
loss_fn = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)

for epoch in range(4):
    optimizer.zero_grad()
    loss = loss_fn(model(X), y)
    loss.backward()
    optimizer.step()
    print(f'epoch {epoch + 1}: loss {loss.item():.4f}')

print(f'final loss {loss_fn(model(X), y).item():.4f}')
"""


def saved_download(page: Page, control: Locator) -> tuple[str, bytes]:
    """The name and bytes a click on a download control saves."""
    with page.expect_download() as download:
        control.click()
    return download.value.suggested_filename, Path(download.value.path()).read_bytes()


def stream_text(cell: Any) -> str:
    """What a notebook code cell's outputs say it printed."""
    return "".join(out["text"] for out in cell.get("outputs", []) if out["output_type"] == "stream")


def test_the_notebook_of_a_run_training_script_validates_and_prints_in_plain_python_as_the_page(
    page: Page, tmp_path: Path
) -> None:
    open_lesson(page, "example=view")
    page.locator("#code").fill(TRAINING_SCRIPT)
    page.locator("#run").click()
    expect(page.locator("#listing li")).to_have_count(len(TRAINING_SCRIPT.splitlines()))
    blur(page)
    page.keyboard.press("End")
    expect(page.locator("#step-error")).to_be_hidden()
    expect(page.locator("#stdout")).to_contain_text("final loss")
    shown = (page.locator("#stdout").text_content() or "").splitlines()
    assert len(shown) == 5 and all(re.search(r"loss \d+\.\d{4}$", line) for line in shown)

    name, body = saved_download(page, page.locator("#download-notebook"))
    assert name == "program.ipynb"  # an edited program has no title of its own
    expect(page.locator("#download-notebook")).to_be_enabled()
    expect(page.locator("#download-notebook")).to_have_text("Download notebook")
    notebook = nbformat.reads(body.decode("utf-8"), as_version=4)
    nbformat.validate(notebook)
    title, setup, *program = notebook.cells
    assert title.cell_type == "markdown"
    assert setup.cell_type == "code" and "torch.manual_seed(0)" in setup.source
    assert all(cell.cell_type == "code" for cell in program)

    # Split at the blank lines between top-level statements, the class whole, nothing lost.
    assert len(program) == 6
    assert [c.source for c in program if "class Learner" in c.source][0].count("def ") == 2
    joined = "\n".join(cell.source for cell in program).splitlines()
    assert [t for t in joined if t.strip()] == [
        t for t in TRAINING_SCRIPT.splitlines() if t.strip()
    ]

    # Each cell has what the sandbox printed there: the epochs in the loop's, the last line last.
    assert stream_text(program[4]).splitlines() == shown[:4]
    assert stream_text(program[5]).splitlines() == shown[4:]
    assert "".join(stream_text(cell) for cell in notebook.cells).splitlines() == shown

    # The code cells in order, unchanged, in plain Python: what the page printed.
    script = tmp_path / "notebook.py"
    script.write_text("\n\n".join(c.source for c in notebook.cells if c.cell_type == "code"))
    done = subprocess.run(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=os.environ | {"MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.splitlines() == shown


def test_download_py_by_keyboard_saves_exactly_the_editors_text(page: Page) -> None:
    open_lesson(page, "example=view")
    code = "# naïve ✓ — not run yet\nx = torch.ones(2)   \n\n\ny = x * 2"  # no final newline
    page.locator("#code").fill(code)
    page.locator("#run").focus()
    page.keyboard.press("Tab")  # the next control after Run
    expect(page.locator("#download-py")).to_be_focused()
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename == "program.py"
    assert Path(download.value.path()).read_bytes() == code.encode("utf-8")


def test_a_refused_programs_notebook_says_why_as_a_refused_run_does(page: Page, problems) -> None:
    problems.expect(422, "/api/notebook")
    open_lesson(page, "example=item")
    page.locator("#code").fill("x = torch.ones(2)\neval(1)\n")
    button = page.locator("#download-notebook")
    # Every state the button passes through, recorded as it changes.
    page.evaluate(
        """() => {
            const b = document.getElementById('download-notebook');
            window.notebookStates = [];
            const note = () => window.notebookStates.push([b.disabled, b.textContent]);
            new MutationObserver(note).observe(
                b, {attributes: true, childList: true, characterData: true, subtree: true});
        }"""
    )
    button.focus()
    page.keyboard.press("Enter")
    message = page.locator("#program-message")
    expect(message).to_be_visible()
    expect(message).to_contain_text("line 2")
    expect(message).to_contain_text("eval is not available")
    expect(button).to_be_enabled()
    expect(button).to_have_text("Download notebook")
    expect(button).to_be_focused()  # the keyboard stays where it was
    states = page.evaluate("() => window.notebookStates")
    assert [True, "Making the notebook…"] in states and states[-1] == [False, "Download notebook"]


def test_on_a_phone_the_downloads_fit_and_an_examples_notebook_is_named_after_it(
    phone_page: Page,
) -> None:
    open_lesson(phone_page, "example=view")
    for control in ("#download-py", "#download-notebook"):
        expect(phone_page.locator(control)).to_be_visible()
        box = phone_page.locator(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    overflow = phone_page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    name, body = saved_download(phone_page, phone_page.locator("#download-notebook"))
    assert name == file_name(EXAMPLES["view"].title)  # the server's name for the example's title
    notebook = nbformat.reads(body.decode("utf-8"), as_version=4)
    nbformat.validate(notebook)
    assert EXAMPLES["view"].title in notebook.cells[0].source
