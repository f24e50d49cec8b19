"""The gradient-calculation lesson, driven like a learner would: the graph, the backward replay
with the arrow keys, the gradient-descent controls, a typed program, and a phone screen."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, expect

LESSON = "/lessons/autograd"
FIGURES = ["fig-graph", "fig-no-grad", "fig-accumulation", "fig-descent-weight", "fig-descent-loss"]
HIGHLIGHT = "#c44e52"
TENSORS, FUNCTIONS, CURRENT = 1, 2, 3  # trace order of the graph figure
SET_VALUE = "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }"


@pytest.fixture(scope="module", autouse=True)
def warm_sandbox(base_url: str) -> None:
    """The server's first program waits for its sandbox workers to start (seconds): not here."""
    response = httpx.get(f"{base_url}{LESSON}", timeout=60)
    assert response.status_code == 200


def open_lesson(page: Page, plots, query: str = "") -> None:
    page.goto(LESSON + (f"?{query}" if query else ""))
    plots.wait_drawn(page, *FIGURES)


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.evaluate("location.href")).query)


def numpy_weights(lr: float, epochs: int) -> list[float]:
    X = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    w, weights = np.float32(0.0), [0.0]
    for _ in range(epochs):
        w = np.float32(w - np.float32(lr) * np.mean(2 * (w * X - 2 * X) * X))
        weights.append(float(w))
    return weights


def ringed(page: Page, plots) -> str | None:
    """The label of the grad_fn node the replay's ring sits on, as drawn."""
    functions = plots.trace(page, "fig-graph", FUNCTIONS)
    ring = plots.trace(page, "fig-graph", CURRENT)
    if not ring["x"]:
        return None
    spots = list(zip(functions["x"], functions["y"], strict=True))
    label = functions["text"][spots.index((ring["x"][0], ring["y"][0]))]
    colours = dict(zip(functions["text"], functions["marker"]["color"], strict=True))
    assert colours[label] == HIGHLIGHT
    return label


def test_backward_replay_with_the_arrow_keys_ends_at_x_grad_6_and_survives_a_reload(
    page: Page, plots
) -> None:
    open_lesson(page, plots)
    functions = plots.trace(page, "fig-graph", FUNCTIONS)
    assert sorted(functions["text"]) == ["AccumulateGrad", "AddBackward0", "MulBackward0"]
    tensors = plots.trace(page, "fig-graph", TENSORS)
    assert sorted(tensors["text"]) == ["x = 1", "y = 3", "z = 9"]
    assert page.locator("#fig-graph").text_content().count("Backward0") >= 2  # drawn labels
    assert ringed(page, plots) is None

    page.evaluate("document.activeElement && document.activeElement.blur()")
    shown = page.locator(".replay-step:visible")
    for step, label in enumerate(["MulBackward0", "AddBackward0", "AccumulateGrad"], start=1):
        page.keyboard.press("ArrowRight")
        expect(page.locator("#replay-label")).to_have_text(f"Step {step} of 3")
        expect(shown).to_contain_text(label)
        assert ringed(page, plots) == label
        assert query(page)["step"] == [str(step)]
    expect(shown.locator(".grad-in")).to_have_text("6")
    expect(shown.locator(".leaf-grad")).to_have_text("x.grad = 6")
    assert "x = 1<br>grad 6" in plots.trace(page, "fig-graph", TENSORS)["text"]
    page.keyboard.press("ArrowRight")  # past the end: stays
    expect(page.locator("#replay-label")).to_have_text("Step 3 of 3")

    page.keyboard.press("ArrowLeft")
    expect(shown).to_contain_text("AddBackward0")
    expect(shown.locator(".grad-out")).to_have_text("6, None")
    page.reload()
    plots.wait_drawn(page, *FIGURES)
    expect(page.locator("#replay-label")).to_have_text("Step 2 of 3")
    expect(page.locator(".replay-step:visible")).to_contain_text("AddBackward0")
    assert ringed(page, plots) == "AddBackward0"


def test_learning_rate_and_epochs_redraw_the_descent_curves(page: Page, plots) -> None:
    open_lesson(page, plots, "step=1")
    plots.wait_for_values(page, "fig-descent-weight", numpy_weights(0.01, 20), tol=1e-5)
    page.locator("#learning_rate").evaluate(SET_VALUE, "0.05")
    plots.wait_for_values(page, "fig-descent-weight", numpy_weights(0.05, 20), tol=1e-5)
    page.locator("#epochs").evaluate(SET_VALUE, "40")
    plots.wait_for_values(page, "fig-descent-weight", numpy_weights(0.05, 40), tol=1e-5)
    plots.wait_for_number(page, "#final-w", numpy_weights(0.05, 40)[-1], tol=1e-4)
    assert query(page)["learning_rate"] == ["0.05"] and query(page)["epochs"] == ["40"]
    # The in-place update keeps the replay where it was.
    assert query(page)["step"] == ["1"]
    expect(page.locator("#replay-label")).to_have_text("Step 1 of 3")
    assert ringed(page, plots) == "MulBackward0"
    twin = page.locator("#json-twin").get_attribute("href") or ""
    assert parse_qs(urlsplit(twin).query)["learning_rate"] == ["0.05"]


def test_a_typed_program_runs_and_a_bad_one_says_why(page: Page, plots) -> None:
    open_lesson(page, plots)
    program = page.locator("#program")
    program.fill("p = torch.tensor(2.0, requires_grad=True)\nq = torch.sin(p) * p\n")
    with page.expect_navigation():
        page.locator("#run-program").click()
    plots.wait_drawn(page, *FIGURES)
    labels = plots.trace(page, "fig-graph", FUNCTIONS)["text"]
    assert "SinBackward0" in labels and "MulBackward0" in labels
    expect(page.locator("#backward")).to_have_value("q")
    assert "q = torch.sin(p) * p" in query(page)["code"][0]
    page.locator('[data-go="last"]').click()
    grad = np.cos(2.0) * 2.0 + np.sin(2.0)  # d/dp sin(p)·p
    expect(page.locator(".replay-step:visible .leaf-grad")).to_contain_text(f"p.grad = {grad:.4g}")

    program.fill("eval(1)\n")
    program.press("Control+Enter")
    page.wait_for_url("**code=eval*")
    expect(page.locator("#program-error")).to_contain_text("Line 1: eval is not available")
    expect(page.locator("#program")).to_have_value("eval(1)")


def test_picking_an_example_and_a_backward_variable(page: Page, plots) -> None:
    open_lesson(page, plots, "step=2")
    with page.expect_navigation():
        page.locator("#example").select_option("shared")
    plots.wait_drawn(page, *FIGURES)
    assert query(page)["example"] == ["shared"] and "code" not in query(page)
    expect(page.locator("#replay-label")).to_have_text("Step 0 of 5")
    page.locator("#backward").select_option("d")
    expect(page.locator("#replay-label")).to_have_text("Step 0 of 4")
    assert query(page)["backward"] == ["d"]


def test_the_phone_layout_has_no_horizontal_overflow(phone_page: Page, plots) -> None:
    open_lesson(phone_page, plots)
    width = phone_page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1], width
    phone_page.locator('[data-go="next"]').click()
    expect(phone_page.locator("#replay-label")).to_have_text("Step 1 of 3")
