"""The activation-functions lesson, driven like a learner would, checked against NumPy."""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlsplit

import numpy as np
from playwright.sync_api import Page, expect

LESSON = "/lessons/activations"
FIGURES = ["fig-curve", "fig-softmax", "fig-vanishing", "fig-dead", "fig-moved"]
NAMES = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu"]
TOL = 1e-5


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def gelu(x: np.ndarray) -> np.ndarray:
    return np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])


def open_lesson(page: Page, plots, query: str = "") -> None:
    page.goto(LESSON + (f"?{query}" if query else ""))
    plots.wait_drawn(page, *FIGURES)


def curve_x(page: Page, plots) -> np.ndarray:
    return np.array(plots.values(page, "fig-curve", "x"))


def checked_name(page: Page) -> str:
    return page.locator('input[name="name"]:checked').get_attribute("value") or ""


def vanishing_lengths(page: Page, plots) -> list[int]:
    return [len(t["y"]) for t in plots.traces(page, "fig-vanishing")]


def wait_for_depth(page: Page, depth: int) -> None:
    page.wait_for_function(
        """n => {
            const data = document.getElementById("fig-vanishing").data;
            return data.length === 4 && data.every((t) => t.y.length === n);
        }""",
        arg=depth,
    )


def test_sigmoid_curve_and_its_derivative_match_numpy(page: Page, plots) -> None:
    open_lesson(page, plots)
    for fig in FIGURES:
        assert plots.traces(page, fig), fig
    assert checked_name(page) == "sigmoid"
    x = curve_x(page, plots)
    assert x[0] == -5 and x[-1] == 5 and len(x) > 50
    s = sigmoid(x)
    plots.wait_for_values(page, "fig-curve", s, tol=TOL)
    plots.wait_for_values(page, "fig-curve", s * (1 - s), index=1, tol=TOL)
    # softmax([x, 1, -1]) in the output-layer figure.
    logits = np.stack([x, np.ones_like(x), -np.ones_like(x)], axis=1)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    for i in range(3):
        plots.wait_for_values(page, "fig-softmax", p[:, i], index=i, tol=TOL)


def test_choosing_relu_redraws_max_0_x_with_a_0_1_derivative(page: Page, plots) -> None:
    open_lesson(page, plots)
    x = curve_x(page, plots)
    page.locator('input[name="name"][value="relu"]').check()

    plots.wait_for_values(page, "fig-curve", np.maximum(0, x), tol=TOL)
    plots.wait_for_values(page, "fig-curve", (x > 0).astype(float), index=1, tol=TOL)
    assert parse_qs(urlsplit(page.evaluate("location.href")).query)["name"] == ["relu"]
    expect(page.locator("#fig-curve .gtitle")).to_have_text("ReLU and its derivative")


def test_choosing_an_activation_rewrites_its_note_and_keeps_the_other_paragraphs(
    page: Page, plots
) -> None:
    open_lesson(page, plots)
    paragraphs = page.locator("#lesson-output section > p")
    before = paragraphs.all_inner_texts()
    x = curve_x(page, plots)
    page.locator('input[name="name"][value="relu"]').check()
    plots.wait_for_values(page, "fig-curve", np.maximum(0, x), tol=TOL)

    # patch() rewrites the slots and then the paragraphs in one go, so both are final now.
    assert "max(0, x)" in page.locator('[data-slot="curve-note"]').inner_text()
    after = paragraphs.all_inner_texts()
    assert after[1:] == before[1:]  # only the note depends on the activation


def test_arrow_keys_cycle_through_the_activations(page: Page, plots) -> None:
    open_lesson(page, plots)
    x = curve_x(page, plots)
    page.evaluate("document.activeElement && document.activeElement.blur()")

    page.keyboard.press("ArrowRight")
    assert checked_name(page) == "tanh"
    plots.wait_for_values(page, "fig-curve", np.tanh(x), tol=TOL)
    plots.wait_for_values(page, "fig-curve", 1 - np.tanh(x) ** 2, index=1, tol=TOL)

    page.keyboard.press("ArrowLeft")
    assert checked_name(page) == "sigmoid"
    page.keyboard.press("ArrowLeft")  # wraps round to the last one
    assert checked_name(page) == NAMES[-1]
    plots.wait_for_values(page, "fig-curve", gelu(x), tol=TOL)
    assert parse_qs(urlsplit(page.evaluate("location.href")).query)["name"] == ["gelu"]


def test_arrow_up_adds_a_layer_to_the_vanishing_gradient_stack(page: Page, plots) -> None:
    open_lesson(page, plots)
    assert vanishing_lengths(page, plots) == [20] * 4
    page.evaluate("document.activeElement && document.activeElement.blur()")

    page.keyboard.press("ArrowUp")
    expect(page.locator("#depth")).to_have_value("21")
    expect(page.locator('output[data-for="depth"]')).to_have_text("21")
    wait_for_depth(page, 21)
    expect(page.locator("#lesson-output h2").nth(2)).to_contain_text("through 21 layers")
    assert parse_qs(urlsplit(page.evaluate("location.href")).query)["depth"] == ["21"]

    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#depth")).to_have_value("19")
    wait_for_depth(page, 19)
    page.wait_for_function("() => new URLSearchParams(location.search).get('depth') === '19'")


def test_arrow_keys_stay_with_a_field_being_typed_in_and_with_ctrl(page: Page, plots) -> None:
    open_lesson(page, plots)
    page.locator("#x_min").focus()
    page.keyboard.press("ArrowRight")  # moves the caret in the number, not the activation
    page.keyboard.press("ArrowLeft")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("Control+ArrowRight")
    page.keyboard.press("Alt+ArrowUp")
    assert checked_name(page) == "sigmoid"
    expect(page.locator("#depth")).to_have_value("20")

    page.keyboard.press("ArrowRight")  # outside a field the lesson has the key
    assert checked_name(page) == "tanh"


def test_sigmoid_gradients_vanish_toward_the_input(page: Page, plots) -> None:
    open_lesson(page, plots)
    traces = {t["name"]: t["y"] for t in plots.traces(page, "fig-vanishing")}
    assert "sigmoid" in traces
    norms = traces["sigmoid"]
    assert all(v > 0 for v in norms)
    assert norms[0] < norms[-1]
    assert norms[0] < norms[-1] / 100  # many orders of magnitude over 20 layers


def test_url_state_opens_the_same_view(page: Page, plots) -> None:
    open_lesson(page, plots, "name=tanh&depth=10")
    assert checked_name(page) == "tanh"
    expect(page.locator("#depth")).to_have_value("10")
    assert vanishing_lengths(page, plots) == [10] * 4
    x = curve_x(page, plots)
    plots.wait_for_values(page, "fig-curve", np.tanh(x), tol=TOL)

    # And a change made on the page survives a reload of its URL.
    page.locator('input[name="name"][value="leaky_relu"]').check()
    leaky = np.where(x > 0, x, 0.1 * x)
    plots.wait_for_values(page, "fig-curve", leaky, tol=TOL)
    page.reload()
    plots.wait_drawn(page, *FIGURES)
    assert checked_name(page) == "leaky_relu"
    assert vanishing_lengths(page, plots) == [10] * 4
    plots.wait_for_values(page, "fig-curve", leaky, tol=TOL)
