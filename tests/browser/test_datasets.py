"""The Datasets and DataLoaders lesson, driven like a learner: step the loop, change the loader."""

from __future__ import annotations

import math
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

LESSON = "/lessons/datasets"
PHONE_WIDTH = 390
SHOTS = os.environ.get("EXPLORER_SCREENSHOTS")  # a folder: save what the tests saw


def open_lesson(page: Page, plots, query: str = "") -> None:
    page.goto(LESSON + (f"?{query}" if query else ""))
    expect(page.locator("#controls")).to_have_attribute("data-ready", "true")
    plots.wait_drawn(page, "fig-assignment", "fig-iterations")


def state(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query, keep_blank_values=True)


def batch_rows(page: Page) -> list[int]:
    """The table rows the batch table shows, in order."""
    rows = page.locator("#ds-batch tbody tr").evaluate_all("rs => rs.map((r) => r.dataset.row)")
    return [int(r) for r in rows]


def lit_rows(page: Page) -> list[int]:
    """The cells of the 178-row strip lit as this batch."""
    cells = page.locator("#ds-rows li.batch").evaluate_all("cs => cs.map((c) => c.dataset.row)")
    return sorted(int(c) for c in cells)


def shoot(page: Page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_arrow_keys_step_the_iterations_and_the_url_keeps_the_step(page: Page, plots) -> None:
    open_lesson(page, plots)
    expect(page.locator("#step-label")).to_have_text("Step 1 of 90")  # 2 epochs × ceil(178/4)
    first = batch_rows(page)
    assert len(first) == 4 and lit_rows(page) == sorted(first)
    assert plots.values(page, "fig-assignment", "x", 1) == first  # the mark on the heatmap

    page.keyboard.press("ArrowRight")
    expect(page.locator("#step-label")).to_have_text("Step 2 of 90")
    second = batch_rows(page)
    assert second != first and lit_rows(page) == sorted(second)
    expect(page.locator("#loop-i")).to_have_text("1")
    expect(page.locator("#inputs-shape")).to_have_text("(4, 13)")
    assert page.locator("#ds-rows li.seen").count() == 4  # the first batch, already drawn
    plots.wait_for_values(page, "fig-assignment", second, key="x", index=1)
    plots.wait_for_values(page, "fig-iterations", [2], key="x", index=3)
    assert state(page)["step"] == ["2"]

    page.keyboard.press("End")  # the last, short batch of epoch 2: 178 = 44 × 4 + 2
    expect(page.locator("#step-label")).to_have_text("Step 90 of 90")
    expect(page.locator("#loop-epoch")).to_have_text("1")
    expect(page.locator("#loop-i")).to_have_text("44")
    expect(page.locator("#inputs-shape")).to_have_text("(2, 13)")
    expect(page.locator("#labels-shape")).to_have_text("(2,)")
    expect(page.locator("#step-next")).to_be_disabled()
    assert page.locator("#ds-rows li.later").count() == 0

    page.keyboard.press("PageUp")  # one epoch back: the same i in epoch 1
    expect(page.locator("#step-label")).to_have_text("Step 45 of 90")
    page.locator("#step-prev").click()
    expect(page.locator("#step-label")).to_have_text("Step 44 of 90")
    rows = batch_rows(page)
    shoot(page, "datasets-desktop")

    page.reload()  # the step is in the URL: the server draws the same batch
    expect(page.locator("#step-label")).to_have_text("Step 44 of 90")
    assert batch_rows(page) == rows


def test_changing_the_loader_redraws_the_batches_and_the_count(page: Page, plots, problems) -> None:
    problems.expect(422, f"{LESSON}/partial")
    open_lesson(page, plots, "step=3")
    page.locator("#index").fill("140")  # dataset[140]: rows 130 on are class 2
    expect(page.locator("#ds-table tr.selected")).to_have_attribute("data-row", "140")
    expect(page.locator("#item-target")).to_have_text("tensor(2)")
    expect(page.locator("#item-sample-shape")).to_have_text("(13,)")

    page.locator("#shuffle-false").check()
    expect(page.locator("#shuffle-note")).to_contain_text("shuffle=False")
    expect(page.locator("#step-label")).to_have_text("Step 3 of 90")
    expect(page.locator("#ds-batch tbody tr")).to_have_count(4)
    assert batch_rows(page) == [8, 9, 10, 11]  # table order: the third batch of four

    page.locator("#batch-size").fill("50")
    expect(page.locator("#formula")).to_have_text("⌈178 / 50⌉ = ⌈3.56⌉ = 4")
    expect(page.locator("#total-iterations")).to_have_text("8")
    page.locator("#drop_last-true").check()
    expect(page.locator("#formula")).to_have_text("⌊178 / 50⌋ = ⌊3.56⌋ = 3")
    expect(page.locator("#dropped")).to_contain_text("28 rows dropped")
    expect(page.locator("#ds-rows li.dropped")).to_have_count(178 - 150)
    assert batch_rows(page) == list(range(100, 150))
    bars = plots.traces(page, "fig-iterations")
    totals = [sum(t["y"][k] for t in bars[:3]) for k in range(len(bars[0]["y"]))]
    assert totals == [50] * 6 and math.isclose(bars[3]["x"][0], 3)
    query = state(page)
    assert query["batch_size"] == ["50"] and query["drop_last"] == ["true"]
    assert query["shuffle"] == ["false"] and query["index"] == ["140"]

    page.locator("#epochs").fill("99")  # over max_batch_epochs: the page says so, no crash
    expect(page.locator("#lesson-error")).to_contain_text("max_batch_epochs")


def test_phone_layout_has_no_horizontal_overflow(phone_page: Page, plots) -> None:
    open_lesson(phone_page, plots)
    phone_page.keyboard.press("ArrowRight")
    expect(phone_page.locator("#step-label")).to_have_text("Step 2 of 90")
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"the page is {width} px wide on a {PHONE_WIDTH} px phone"
    shoot(phone_page, "datasets-phone")
