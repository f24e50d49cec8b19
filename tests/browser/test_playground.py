"""The playground (``GET /playground``), driven as a learner and a teacher would: paste a training
script, step into ``forward`` and out again, jump to an epoch, plot the loss, open its graph,
take the notebook home, step by keyboard alone, on a phone, from a shared link, into an error.

Every page is watched by conftest's ``page`` fixtures: a console error or an uncaught exception
fails the test. Numbers are checked against plain PyTorch: the script run as plain Python in a
subprocess, the notebook's code cells run the same way, and the graph's functions walked in torch.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import nbformat
import pytest
import torch
from playwright.sync_api import Page, expect
from torch import nn

from app.web.code_url import decode_code, encode_code

# A class-based training script as a learner pastes it: an nn.Module with forward, a DataLoader
# without shuffling (so plain Python sees the same batches), and the loss printed every epoch.
TRAINING_SCRIPT = """import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
X = torch.randn(32, 4)  # (32, 4)
y = (X[:, 0] > 0).long()  # (32,)
loader = DataLoader(TensorDataset(X, y), batch_size=16)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        out = self.fc(x)  # (N, 2)
        return out


model = Net()
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

for epoch in range(4):
    for inputs, labels in loader:
        logits = model(inputs)
        loss = loss_fn(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.6f}")
"""
EPOCHS, BATCHES, BATCH = 4, 2, 16  # range(4); 32 rows in batches of 16

# A function called in a loop: small enough to walk every step control over it.
CALLS = """def square(v):
    out = v * v
    return out


total = 0
for i in range(3):
    total = total + square(i)
print(total)
"""

# nn.Linear(3, 2) given rows of 5 features: PyTorch's shape mismatch, at line 6.
MISMATCH = """import torch
import torch.nn as nn

layer = nn.Linear(3, 2)
x = torch.ones(4, 5)
y = layer(x)
print(y)
"""

PLAIN_NICENESS = 15  # below the sandbox workers' 10 (app/workers/serve.py WORKER_NICENESS)
SCROLL_OVERFLOW = (
    "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
)


def line_of(code: str, text: str) -> int:
    """The 1-based line of ``code`` whose stripped text starts with ``text``."""
    lines = [n for n, line in enumerate(code.split("\n"), 1) if line.strip().startswith(text)]
    assert len(lines) == 1, (text, lines)
    return lines[0]


def run_trace(base_url: str, code: str) -> dict[str, Any]:
    """The API's answer the page draws (steps "changes"); a cold worker may overrun once."""
    for _ in range(3):
        response = httpx.post(
            f"{base_url}/api/tensors/run", json={"code": code, "steps": "changes"}, timeout=60
        )
        if response.status_code == 200:
            return response.json()
    pytest.fail(f"POST /api/tensors/run answered {response.status_code}: {response.text}")


@pytest.fixture(scope="module")
def training(base_url: str) -> dict[str, Any]:
    """The training script's trace; asking for it first also warms a sandbox worker."""
    answer = run_trace(base_url, TRAINING_SCRIPT)
    assert answer["error"] is None and not answer["truncated"]
    return answer


@pytest.fixture
def plain_run(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """The training script as plain Python, started at once so it runs while the browser works.

    It runs at a lower priority than the server's sandbox workers (nice 10): competing with them
    on two cores, it could push the page's own runs past their time limit.
    """
    (tmp_path / "plain").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", TRAINING_SCRIPT],
        cwd=tmp_path / "plain",
        env=os.environ | {"MPLBACKEND": "Agg"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.nice(PLAIN_NICENESS),
    )
    yield process
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)


def finished(process: subprocess.Popen[str]) -> str:
    """What a started process printed, once it exits with 0."""
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def wait_runs(page: Page, runs: int) -> None:
    """Wait until the page has drawn ``runs`` completed runs."""
    expect(page.locator("body")).to_have_attribute("data-runs", str(runs))


def open_program(page: Page, code: str) -> None:
    """Open the playground on ``code`` as a link packs it, and wait for its run to be drawn."""
    page.goto(f"/playground?code={encode_code(code)}")
    wait_runs(page, 1)


def label(page: Page, step: int, total: int) -> None:
    expect(page.locator("#step-label")).to_have_text(f"Step {step} of {total}")


def caption(page: Page, line: int, source: str, function: str | None = None) -> None:
    where = f" in {function}" if function else ""
    expect(page.locator("#step-caption")).to_have_text(f"Line {line}{where} just ran: {source}")


def depth_of(step: dict[str, Any]) -> int:
    return len(step["stack"]) - 1 if step.get("stack") else 0


def steps_at(answer: dict[str, Any], line: int) -> list[int]:
    """The 1-based steps of ``answer`` recorded at ``line``."""
    return [i for i, step in enumerate(answer["steps"], 1) if step["line"] == line]


def blur(page: Page) -> None:
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def graph_functions(loss: torch.Tensor) -> list[str]:
    """Every node of ``loss``'s autograd graph, by class name, as torch itself links them."""
    seen: set[int] = set()
    names: list[str] = []
    todo = [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names.append(type(node).__name__)
        todo.extend(next_node for next_node, _ in node.next_functions)
    return sorted(names)


def test_a_pasted_training_script_steps_into_forward_plots_its_loss_and_goes_home_as_a_notebook(
    page: Page,
    training: dict[str, Any],
    plain_run: subprocess.Popen[str],
    plots: Any,
    tmp_path: Path,
) -> None:
    steps = training["steps"]
    total = len(steps)
    open_program(page, 'print("paste your program over me")')
    label(page, 1, 1)

    page.locator("#code").fill(TRAINING_SCRIPT)
    page.locator("#code").press("Control+Enter")
    wait_runs(page, 2)
    expect(page.locator("#listing li")).to_have_count(len(TRAINING_SCRIPT.split("\n")))
    label(page, 1, total)

    # Into forward: run to its first body line, the first step the trace has there.
    body = line_of(TRAINING_SCRIPT, "out = self.fc(x)")
    page.locator(f'#listing li[data-line="{body}"] .ln').click()
    into = steps_at(training, body)[0]
    label(page, into, total)
    caption(page, body, "out = self.fc(x)", "Net.forward")
    expect(page.locator(f'#listing li[data-line="{body}"]')).to_have_class(
        re.compile(r"\bcurrent\b")
    )
    call = page.locator('#frames section.frame[data-depth="1"]')
    expect(call.locator(".frame-title")).to_have_text(re.compile(r"^Net\.forward\b"))
    expect(page.locator('#frames section.frame[data-depth="0"] .frame-title')).to_have_text(
        "Global frame"
    )
    expect(call.locator(".frame-var")).to_have_count(3)
    keys = call.locator(".frame-var").evaluate_all("rows => rows.map(r => r.dataset.key)")
    assert keys == ["self@1", "x@1", "out@1"]
    self_row = call.locator('.frame-var[data-key="self@1"]')
    expect(self_row).to_contain_text("Net")
    expect(self_row).to_contain_text("same object as model")  # self is the caller's model
    # x is the first batch: the first 16 rows of the seeded X, as plain torch draws them.
    torch.manual_seed(0)
    first_batch = torch.randn(32, 4)[:BATCH]  # (16, 4)
    x_card = call.locator('.frame-var[data-key="x@1"]')
    expect(x_card).to_contain_text("tensor [16,4]")
    cells = [float(t) for t in x_card.locator("table.grid td").all_text_contents()]
    assert cells == pytest.approx(first_batch.flatten().tolist(), abs=5e-5)

    # Step out: back on the caller's line, the call's frame gone.
    page.locator("#step-out").click()
    caller = line_of(TRAINING_SCRIPT, "logits = model(inputs)")
    out_step = next(
        i for i in range(into + 1, total + 1) if depth_of(steps[i - 1]) == 0
    )  # the first step back at the top level
    label(page, out_step, total)
    caption(page, caller, "logits = model(inputs)")
    expect(page.locator(f'#listing li[data-line="{caller}"]')).to_have_class(
        re.compile(r"\bcurrent\b")
    )
    expect(page.locator('#frames section.frame[data-depth="1"]')).to_have_count(0)

    # The epoch loop's iteration box: epoch 3 is its third header step, with epoch = 2.
    header = line_of(TRAINING_SCRIPT, "for epoch in range(4):")
    iteration = page.locator(f'#loops .loop-row[data-line="{header}"] input.loop-iteration')
    iteration.fill("3")
    iteration.press("Enter")
    third = steps_at(training, header)[2]
    label(page, third, total)
    caption(page, header, "for epoch in range(4):")
    expect(page.locator('.frame-var[data-key="epoch"] .value-text')).to_have_text("2")
    expect(iteration).to_have_value("3")

    # The loss across the run: one point per batch, at the steps that computed it.
    loss_line = line_of(TRAINING_SCRIPT, "loss = loss_fn(logits, labels)")
    loss_steps = steps_at(training, loss_line)
    assert len(loss_steps) == EPOCHS * BATCHES
    page.locator('.plot-button[data-key="loss"]').click()
    expect(page.locator("#series-panel")).to_be_visible()
    plots.wait_drawn(page, "fig-series")
    assert plots.values(page, "fig-series", "x") == loss_steps
    losses = plots.values(page, "fig-series", "y")
    marked = max(s for s in loss_steps if s <= third)  # the loss this step still holds
    expect(page.locator("#fig-series")).to_have_attribute("data-marked", str(marked))

    page.locator("#step-last").click()
    label(page, total, total)
    expect(page.locator("#fig-series")).to_have_attribute("data-marked", str(loss_steps[-1]))
    shown = page.locator("#stdout").text_content() or ""  # compared with plain Python below
    printed = re.findall(r"epoch (\d+): loss (\d+\.\d{6})", shown)
    assert [int(e) for e, _ in printed] == list(range(EPOCHS))
    # The last batch of each epoch is the loss that epoch printed, at the printed precision.
    assert [f"{v:.6f}" for v in losses[BATCHES - 1 :: BATCHES]] == [v for _, v in printed]

    # The graph of loss at the last step: the functions torch links behind a cross-entropy loss.
    page.locator('.graph-button[data-key="loss"]').click()
    expect(page.locator("#graph-panel")).to_be_visible()
    expect(page.locator("#graph-title")).to_have_text(f"The autograd graph of loss at step {total}")
    plots.wait_drawn(page, "fig-graph")
    layer = nn.Linear(4, 2)
    oracle = graph_functions(nn.CrossEntropyLoss()(layer(first_batch), torch.zeros(BATCH).long()))
    assert "NllLossBackward0" in oracle
    functions = next(t for t in plots.traces(page, "fig-graph") if t["name"] == "grad_fn nodes")
    assert sorted(functions["text"]) == oracle
    expect(page.locator("#graph-note")).to_contain_text(f"{len(oracle)} functions")

    # Take it home: a valid notebook whose code cells print, in plain Python, what the page did.
    with page.expect_download() as download:
        page.locator("#download-notebook").click()
    assert download.value.suggested_filename.endswith(".ipynb")
    notebook = nbformat.reads(Path(download.value.path()).read_text("utf-8"), as_version=4)
    nbformat.validate(notebook)
    expect(page.locator("#download-notebook")).to_be_enabled()
    expect(page.locator("#program-message")).to_be_hidden()
    _title, setup, *program = notebook.cells
    assert setup.cell_type == "code" and all(cell.cell_type == "code" for cell in program)
    joined = "\n".join(cell.source for cell in program).splitlines()
    assert [t for t in joined if t.strip()] == [
        t for t in TRAINING_SCRIPT.splitlines() if t.strip()
    ]
    code = [setup.source, *(cell.source for cell in program)]
    script = tmp_path / "notebook.py"
    script.write_text("\n\n".join(code))
    cells_run = subprocess.Popen(
        [sys.executable, script.name],
        cwd=tmp_path,
        env=os.environ | {"MPLBACKEND": "Agg"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert finished(plain_run) == shown  # the script alone, in plain Python
        assert finished(cells_run) == shown  # the notebook's code cells, in plain Python
    finally:
        if cells_run.poll() is None:
            cells_run.kill()
            cells_run.communicate()


def press_or_click(page: Page, how: str, key: str, button: str) -> None:
    """One step action: the key (focus out of any field), or a click on its button."""
    if how == "keys":
        page.keyboard.press(key)
    else:
        page.locator(button).click()


def test_keyboard_alone_reaches_the_same_steps_as_the_buttons(page: Page, base_url: str) -> None:
    answer = run_trace(base_url, CALLS)
    depths = [depth_of(step) for step in answer["steps"]]
    total = len(depths)

    def over(step: int) -> int:  # the next step in this frame or an outer one
        return next(
            (j for j in range(step + 1, total + 1) if depths[j - 1] <= depths[step - 1]), total
        )

    def out(step: int) -> int:  # the first step back in the caller
        return next(
            (j for j in range(step + 1, total + 1) if depths[j - 1] < depths[step - 1]), total
        )

    call_line = line_of(CALLS, "total = total + square(i)")
    loop_line = line_of(CALLS, "for i in range(3):")
    headers = steps_at(answer, loop_line)
    # Each action with its key and its button, and the step it must reach from the one before.
    actions: list[tuple[str, str, Any]] = [
        ("ArrowRight", "#step-next", lambda s: s + 1),
        ("ArrowRight", "#step-next", lambda s: s + 1),
        ("ArrowRight", "#step-next", lambda s: s + 1),  # into square
        ("ArrowDown", "#step-over", over),  # over the rest of square's body, within it
        ("ArrowUp", "#step-out", out),  # back to the caller's line
        ("ArrowDown", "#step-over", over),
        ("ArrowDown", "#step-over", over),  # over the second call
        ("PageUp", '.loop-row button[title="Previous iteration"]', lambda s: headers[0]),
        ("PageDown", '.loop-row button[title="Next iteration"]', lambda s: headers[1]),
        ("End", "#step-last", lambda s: total),
        ("ArrowLeft", "#step-prev", lambda s: s - 1),
        ("Home", "#step-first", lambda s: 1),
    ]
    expected = [1]
    for _key, _button, target in actions:
        expected.append(target(expected[-1]))
    assert depths[expected[3] - 1] == 1 and depths[expected[5] - 1] == 0

    reached: dict[str, list[int]] = {}
    for how in ("keys", "buttons"):
        open_program(page, CALLS)
        label(page, 1, total)
        seen = [1]
        if how == "keys":
            # Tab from Run to the step buttons; Enter and Space press them.
            page.locator("#run").focus()
            for _ in range(10):
                page.keyboard.press("Tab")
                if page.evaluate("() => document.activeElement.id") == "step-next":
                    break
            expect(page.locator("#step-next")).to_be_focused()
            page.keyboard.press("Enter")
            label(page, 2, total)
            page.keyboard.press(" ")
            label(page, 3, total)
            seen += [2, 3]
            blur(page)
            rest = actions[2:]
        else:
            rest = actions
        for key, button, _target in rest:
            press_or_click(page, how, key, button)
            step = expected[len(seen)]
            label(page, step, total)
            seen.append(step)
            if step == expected[3]:
                caption(page, line_of(CALLS, "out = v * v"), "out = v * v", "square")
            if step == expected[5]:
                caption(page, call_line, "total = total + square(i)")
        reached[how] = seen
    assert reached["keys"] == reached["buttons"] == expected

    # Where a button is disabled its key does nothing: no Step out at the top level. (The page
    # redraws within the keydown, so the label is read at once.)
    page.locator("#step-next").click()
    label(page, 2, total)
    expect(page.locator("#step-out")).to_be_disabled()
    blur(page)
    page.keyboard.press("ArrowUp")
    shown = page.locator("#step-label").text_content()
    assert shown == f"Step 2 of {total}", f"ArrowUp at the top level went to {shown!r}"
    # A line number is a button too: focus it, press Enter, and the program runs to that line.
    page.locator(f'#listing li[data-line="{call_line}"] .ln').focus()
    page.keyboard.press("Enter")
    label(page, steps_at(answer, call_line)[0], total)
    # Keys typed in a field are the field's: an arrow in the loop's box does not step.
    iteration = page.locator(f'.loop-row[data-line="{loop_line}"] input.loop-iteration')
    iteration.focus()
    before = page.locator("#step-label").text_content()
    page.keyboard.press("ArrowLeft")
    assert page.locator("#step-label").text_content() == before


def test_on_a_phone_a_run_stepped_into_a_call_has_no_sideways_scroll(
    phone_page: Page, training: dict[str, Any]
) -> None:
    page = phone_page
    open_program(page, TRAINING_SCRIPT)
    label(page, 1, len(training["steps"]))
    assert page.evaluate(SCROLL_OVERFLOW) <= 0
    body = line_of(TRAINING_SCRIPT, "out = self.fc(x)")
    page.locator(f'#listing li[data-line="{body}"] .ln').click()
    expect(page.locator('#frames section.frame[data-depth="1"] .frame-title')).to_have_text(
        re.compile(r"^Net\.forward\b")
    )
    expect(page.locator('.frame-var[data-key="x@1"]')).to_be_visible()
    assert page.evaluate(SCROLL_OVERFLOW) <= 0
    for control in ("#run", "#step-next", "#step-out", "#step-last", "#download-notebook"):
        box = page.locator(control).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, control


def test_a_shared_link_reopens_the_same_program_at_the_same_step(
    page: Page, training: dict[str, Any]
) -> None:
    total = len(training["steps"])
    open_program(page, TRAINING_SCRIPT)
    body = line_of(TRAINING_SCRIPT, "out = self.fc(x)")
    page.locator(f'#listing li[data-line="{body}"] .ln').click()
    page.locator("#step-next").click()  # to `return out`, still inside forward
    step = steps_at(training, body)[0] + 1
    label(page, step, total)
    page.wait_for_function("s => location.search.endsWith(`&step=${s}`)", arg=step)
    link = page.url
    query = parse_qs(urlsplit(link).query)
    assert urlsplit(link).path == "/playground" and query["step"] == [str(step)]
    # The browser's deflate-raw + base64url is what the server unpacks: the exact program.
    assert decode_code(query["code"][0], 20_000) == TRAINING_SCRIPT

    page.goto(link)  # the student opens the teacher's link
    wait_runs(page, 1)
    expect(page.locator("#code")).to_have_value(TRAINING_SCRIPT)
    label(page, step, total)
    caption(page, body + 1, "return out", "Net.forward")
    expect(page.locator('#frames section.frame[data-depth="1"] .frame-title')).to_have_text(
        re.compile(r"^Net\.forward\b")
    )
    assert page.url == link


def test_a_shape_mismatch_marks_its_line_and_shows_pytorchs_message(
    page: Page, base_url: str
) -> None:
    answer = run_trace(base_url, MISMATCH)
    with pytest.raises(RuntimeError) as raised:  # what plain PyTorch says
        nn.Linear(3, 2)(torch.ones(4, 5))
    message = str(raised.value)
    assert "mat1 and mat2 shapes cannot be multiplied (4x5 and 3x2)" in message
    line = line_of(MISMATCH, "y = layer(x)")
    assert answer["error"]["line"] == line

    open_program(page, MISMATCH)
    total = len(answer["steps"]) + 1  # the error is a last step of its own
    label(page, 1, total)
    expect(page.locator("#step-error")).to_be_hidden()
    page.locator("#step-last").click()
    label(page, total, total)
    expect(page.locator(f'#listing li[data-line="{line}"]')).to_have_class(re.compile(r"\berror\b"))
    expect(page.locator("#listing li.error")).to_have_count(1)
    expect(page.locator("#step-error")).to_be_visible()
    expect(page.locator("#error-message")).to_contain_text(f"line {line}")
    expect(page.locator("#error-message")).to_contain_text(message)
    hint = answer["error"].get("hint")
    if hint:
        expect(page.locator("#error-hint")).to_be_visible()
        expect(page.locator("#error-hint")).to_have_text(hint)
    else:
        expect(page.locator("#error-hint")).to_be_hidden()
    # The variables are as the step before left them: x is there, y never was.
    expect(page.locator('.frame-var[data-key="x"]')).to_contain_text("tensor [4,5]")
    expect(page.locator('.frame-var[data-key="y"]')).to_have_count(0)
