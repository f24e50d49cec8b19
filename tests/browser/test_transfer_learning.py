"""The Transfer learning lesson in a real browser: the example runs and the frozen table, the
arrow keys and the URL, the three modes launched from the page and followed live, and a phone."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

LESSON = "/lessons/transfer-learning"
TRAINING_TIMEOUT_MS = 120_000  # three small runs on a busy two-core machine


def state(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_the_example_runs_the_frozen_table_and_the_sweep(page: Page, plots) -> None:
    page.goto(LESSON)
    plots.wait_drawn(page, "fig-curves", "fig-sweep")
    names = [t["name"] for t in plots.traces(page, "fig-curves")]
    assert names == ["feature-extract", "finetune", "scratch"]
    for i in range(3):
        assert plots.values(page, "fig-curves", key="x", index=i) == list(range(1, 16))
    expect(page.locator('[data-trainable="feature-extract"]')).to_have_text("325")
    expect(page.locator('[data-frozen="feature-extract"]')).to_have_text("1248")
    expect(page.locator('[data-trainable="scratch"]')).to_have_text("1573")
    expect(page.locator("#sweep tbody tr")).to_have_count(6)
    expect(page.locator("#samples img")).to_have_count(16)


def test_arrow_keys_step_examples_and_epochs_and_the_url_keeps_them(page: Page, plots) -> None:
    page.goto(LESSON)
    plots.wait_drawn(page, "fig-sweep")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => location.search.includes('examples=11')")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => location.search.includes('epochs=14')")
    page.wait_for_function("() => document.getElementById('fig-sweep').layout.shapes[0].x0 === 11")
    page.locator("#metric").select_option("val_loss")
    page.wait_for_function("() => location.search.includes('metric=val_loss')")
    plots.wait_drawn(page, "fig-curves")
    page.reload()  # the shared link opens the same view
    expect(page.locator("#examples")).to_have_value("11")
    expect(page.locator("#epochs")).to_have_value("14")
    expect(page.locator("#metric")).to_have_value("val_loss")


def test_arrow_left_takes_fewer_examples_and_arrow_up_more_epochs(page: Page, plots) -> None:
    page.goto(LESSON)
    plots.wait_drawn(page, "fig-sweep")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#examples")).to_have_value("9")
    page.wait_for_function("() => location.search.includes('examples=9')")
    page.keyboard.press("ArrowUp")
    expect(page.locator("#epochs")).to_have_value("16")
    page.wait_for_function("() => location.search.includes('epochs=16')")
    page.wait_for_function("() => document.getElementById('fig-sweep').layout.shapes[0].x0 === 9")
    assert state(page)["examples"] == ["9"] and state(page)["epochs"] == ["16"]


def test_the_three_modes_launched_from_the_page_train_live(page: Page, plots) -> None:
    page.goto(LESSON + "?examples=3&epochs=4")
    plots.wait_drawn(page, "fig-curves")
    page.locator("#train-modes").click()
    page.wait_for_url("**/lessons/transfer-learning?*runs=*")
    ids = state(page)["runs"][0].split(",")
    assert len(ids) == 3
    chips = page.locator("#transfer-readout .status")
    expect(chips).to_have_count(3)
    expect(chips.filter(has_text="completed")).to_have_count(3, timeout=TRAINING_TIMEOUT_MS)
    plots.wait_drawn(page, "fig-curves")
    traces = plots.traces(page, "fig-curves")
    assert [t["name"].split()[:2] for t in traces] == [
        [run_id[:8], mode]  # a legend names a run by its id's first 8 characters
        for run_id, mode in zip(ids, ("feature-extract", "finetune", "scratch"), strict=True)
    ]
    for i, run_id in enumerate(ids):
        run = page.request.get(f"/api/runs/{run_id}").json()
        assert run["config"]["examples_per_class"] == 3 and run["config"]["epochs"] == 4
        expected = [v for _, v in run["metrics"]["val_accuracy"]]
        assert plots.values(page, "fig-curves", index=i) == expected
        assert plots.values(page, "fig-curves", key="x", index=i) == [1, 2, 3, 4]


def test_a_phone_reads_the_page_without_sideways_scrolling(phone_page: Page, plots) -> None:
    phone_page.goto(LESSON)
    plots.wait_drawn(phone_page, "fig-curves", "fig-sweep")
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= phone_page.viewport_size["width"]
