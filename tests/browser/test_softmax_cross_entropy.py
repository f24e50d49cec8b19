"""The softmax and cross-entropy lesson, driven like a learner would, checked against NumPy."""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from playwright.sync_api import Page, expect

LESSON = "/lessons/softmax-cross-entropy"
FIGURES = [
    "fig-probabilities",
    "fig-negative-log",
    "fig-gradient",
    "fig-temperature",
    "fig-mistake",
    "fig-batch",
    "fig-batch-losses",
]
DEFAULT_LOGITS = [2.0, 1.0, 0.1]
HIGHLIGHT = "#c44e52"  # the true class's bar
SET_VALUE = "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }"

# Counts Plotly.react calls per figure; installed before any page script runs.
COUNT_DRAWS = """
(() => {
  let plotly;
  window.__draws = {};
  Object.defineProperty(window, "Plotly", {
    configurable: true,
    get: () => plotly,
    set(value) {
      plotly = value;
      const react = value.react;
      value.react = function (div, ...rest) {
        window.__draws[div.id] = (window.__draws[div.id] || 0) + 1;
        return react.call(this, div, ...rest);
      };
    },
  });
})();
"""


def softmax(logits: list[float]) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def open_lesson(page: Page, plots, query: str = "") -> None:
    page.goto(LESSON + (f"?{query}" if query else ""))
    plots.wait_drawn(page, *FIGURES)


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.evaluate("location.href")).query)


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",")]


def test_every_figure_is_drawn_and_the_bars_are_numpy_softmax(page: Page, plots) -> None:
    open_lesson(page, plots)
    for fig in FIGURES:
        assert plots.traces(page, fig), fig
    p = softmax(DEFAULT_LOGITS)
    plots.wait_for_values(page, "fig-probabilities", p)
    plots.wait_for_values(page, "fig-negative-log", -np.log(p), tol=1e-5)
    # Autograd's gradient is p - one_hot(target) for T = 1.
    plots.wait_for_values(page, "fig-gradient", p - np.eye(3)[0], tol=1e-6)
    assert plots.trace(page, "fig-probabilities")["marker"]["color"][0] == HIGHLIGHT
    plots.wait_for_number(page, "#loss-value", -math.log(p[0]), tol=1e-4)
    # The batch: one -log p[y] per row.
    rows = [([2, 1, 0.1], 0), ([0.5, 2.5, 0.3], 1), ([1, 1, 1], 2)]
    losses = [-math.log(softmax(z)[y]) for z, y in rows]
    plots.wait_for_values(page, "fig-batch-losses", losses, tol=1e-5)


def test_softmax_slider_moves_the_probability_bars(page: Page, plots) -> None:
    open_lesson(page, plots)
    page.locator("#logit-1").evaluate(SET_VALUE, "3")

    p = softmax([2, 3, 0.1])
    plots.wait_for_values(page, "fig-probabilities", p)
    plots.wait_for_number(page, "#loss-value", -math.log(p[0]), tol=1e-4)
    assert floats(query(page)["logits"][0]) == [2, 3, 0.1]
    assert floats(page.locator("#logits").input_value()) == [2, 3, 0.1]
    expect(page.locator('output[data-for="logit-1"]')).to_contain_text("3")


def test_arrow_keys_choose_the_true_class_and_raise_its_logit(page: Page, plots) -> None:
    open_lesson(page, plots)
    page.evaluate("document.activeElement && document.activeElement.blur()")

    page.keyboard.press("ArrowRight")
    expect(page.locator('input[name="target"][value="1"]')).to_be_checked()
    p = softmax(DEFAULT_LOGITS)
    page.wait_for_function(
        "c => document.getElementById('fig-probabilities').data[0].marker.color[1] === c",
        arg=HIGHLIGHT,
    )
    colours = plots.trace(page, "fig-probabilities")["marker"]["color"]
    assert [c == HIGHLIGHT for c in colours] == [False, True, False]
    plots.wait_for_number(page, "#loss-value", -math.log(p[1]), tol=1e-4)
    assert query(page)["target"] == ["1"]

    page.keyboard.press("ArrowUp")  # five slider steps of 0.1 on the true class's logit
    expect(page.locator("#logit-1")).to_have_value("1.5")
    p = softmax([2, 1.5, 0.1])
    plots.wait_for_values(page, "fig-probabilities", p)
    plots.wait_for_number(page, "#loss-value", -math.log(p[1]), tol=1e-4)
    assert floats(query(page)["logits"][0]) == [2, 1.5, 0.1]


def test_arrow_left_wraps_to_the_last_class_and_arrow_down_lowers_its_logit(
    page: Page, plots
) -> None:
    open_lesson(page, plots)
    page.evaluate("document.activeElement && document.activeElement.blur()")

    page.keyboard.press("ArrowLeft")  # from class 0 round to the last one
    expect(page.locator('input[name="target"][value="2"]')).to_be_checked()
    plots.wait_for_number(page, "#loss-value", -math.log(softmax(DEFAULT_LOGITS)[2]), tol=1e-4)
    assert query(page)["target"] == ["2"]

    page.keyboard.press("ArrowDown")  # five slider steps of 0.1 down on class 2's logit
    expect(page.locator("#logit-2")).to_have_value("-0.4")
    p = softmax([2, 1, -0.4])
    plots.wait_for_values(page, "fig-probabilities", p)
    plots.wait_for_number(page, "#loss-value", -math.log(p[2]), tol=1e-4)
    assert floats(query(page)["logits"][0]) == [2, 1, -0.4]


def test_a_shared_link_opens_the_same_view(page: Page, plots) -> None:
    open_lesson(page, plots)
    page.locator('input[name="target"][value="2"]').check()
    page.locator("#logit-0").evaluate(SET_VALUE, "-1.5")
    page.locator("#temperature").evaluate(SET_VALUE, "2")
    p = softmax(np.array([-1.5, 1, 0.1]) / 2)
    plots.wait_for_values(page, "fig-probabilities", p)
    shared = page.evaluate("location.href")

    page.goto(shared)
    plots.wait_drawn(page, *FIGURES)
    plots.wait_for_values(page, "fig-probabilities", p)
    expect(page.locator('input[name="target"][value="2"]')).to_be_checked()
    expect(page.locator("#logit-0")).to_have_value("-1.5")
    expect(page.locator("#temperature")).to_have_value("2")
    plots.wait_for_number(page, "#loss-value", -math.log(p[2]), tol=1e-4)
    # Softmax's gradient through the temperature: (p - one_hot) / T.
    plots.wait_for_values(page, "fig-gradient", (p - np.eye(3)[2]) / 2, tol=1e-6)


def test_overflow_table_shows_nan_for_the_naive_softmax_and_finite_log_softmax(
    page: Page, plots
) -> None:
    open_lesson(page, plots)
    table = page.locator('[data-slot="overflow"] table')
    expect(table.locator("thead")).to_contain_text("z + 1000")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(3)
    p = softmax(DEFAULT_LOGITS)
    for i in range(3):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert float(cells[1]) == pytest.approx(DEFAULT_LOGITS[i] + 1000, abs=0.01)
        assert cells[2] == "inf"  # exp(1002) overflows float32
        assert cells[3] == "nan"  # inf / inf
        assert float(cells[5]) == pytest.approx(p[i], abs=1e-4)
        assert float(cells[6]) == pytest.approx(math.log(p[i]), abs=1e-4)


def test_a_bad_logit_shows_the_error_banner_and_keeps_the_figures(
    page: Page, plots, problems
) -> None:
    problems.expect(422, f"{LESSON}/partial")
    open_lesson(page, plots)
    banner = page.locator("#lesson-error")
    expect(banner).to_be_hidden()

    page.locator("#logits").fill("2, abc, 0.1")
    page.locator("#logits").press("Enter")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("abc")
    assert page.url.split("?")[0].endswith(LESSON)
    plots.wait_drawn(page, *FIGURES)
    plots.wait_for_values(page, "fig-probabilities", softmax(DEFAULT_LOGITS))

    # Fixing the value clears the banner and redraws (change on blur).
    page.locator("#logits").fill("2, 1, 0.5")
    page.locator("#logits").blur()
    expect(banner).to_be_hidden()
    plots.wait_for_values(page, "fig-probabilities", softmax([2, 1, 0.5]))


def test_a_bad_logit_with_a_different_class_count_shows_the_banner_without_reloading(
    page: Page, plots, problems
) -> None:
    problems.expect(422, f"{LESSON}/partial")
    open_lesson(page, plots)
    page.locator("#logits").fill("1, abc")
    page.locator("#logits").press("Enter")
    banner = page.locator("#lesson-error")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("abc")
    expect(page.locator("input[data-logit]")).to_have_count(3)
    plots.wait_drawn(page, *FIGURES)
    plots.wait_for_values(page, "fig-probabilities", softmax(DEFAULT_LOGITS))


def test_add_class_button_adds_a_slider_and_a_bar(page: Page, plots) -> None:
    open_lesson(page, plots)
    with page.expect_navigation():
        page.locator("#add-class").click()
    plots.wait_drawn(page, *FIGURES)
    expect(page.locator("input[data-logit]")).to_have_count(4)
    expect(page.locator('input[name="target"]')).to_have_count(4)
    plots.wait_for_values(page, "fig-probabilities", softmax([2, 1, 0.1, 0]))
    assert floats(query(page)["logits"][0]) == [2, 1, 0.1, 0]
    expect(page.locator("#remove-class")).to_be_enabled()


def test_code_blocks_open_and_show_the_real_source(page: Page, plots) -> None:
    open_lesson(page, plots)
    blocks = page.locator("#lesson-output details.code-block")
    assert blocks.count() >= 4
    first = blocks.first
    code = first.locator("pre")
    expect(code).to_be_hidden()
    first.locator("summary").click()
    expect(first).to_have_attribute("open", "")
    expect(code).to_be_visible()
    expect(code).to_contain_text("def softmax_cross_entropy")
    expect(code).to_contain_text("nn.CrossEntropyLoss")
    expect(code).to_contain_text("loss.backward()")


def test_json_twin_link_follows_the_current_query(page: Page, plots) -> None:
    open_lesson(page, plots)
    twin = page.locator("#json-twin")
    page.locator("#temperature").evaluate(SET_VALUE, "2")
    p = softmax(np.array(DEFAULT_LOGITS) / 2)
    plots.wait_for_values(page, "fig-probabilities", p)

    href = twin.get_attribute("href") or ""
    assert urlsplit(href).path == f"/api/lessons/{LESSON.rsplit('/', 1)[1]}/view"
    assert parse_qs(urlsplit(href).query) == query(page)
    assert parse_qs(urlsplit(href).query)["temperature"] == ["2"]
    view = page.request.get(href).json()
    assert view["params"]["temperature"] == 2
    assert np.allclose(view["result"]["probabilities"], p, atol=1e-6)


def test_each_figure_is_drawn_once_when_the_page_loads(page: Page, plots) -> None:
    page.add_init_script(COUNT_DRAWS)
    open_lesson(page, plots)
    page.wait_for_load_state("load")
    assert page.evaluate("window.__draws") == {fig: 1 for fig in FIGURES}
