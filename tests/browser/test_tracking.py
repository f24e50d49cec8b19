"""The Tracking lesson in a real browser: the example runs' panels, smoothing and threshold by
keyboard, three real runs launched from the page and followed live, and a phone."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import numpy as np
from playwright.sync_api import Page, expect

LESSON = "/lessons/tracking"
PHONE_WIDTH = 390
TRAINING_TIMEOUT_MS = 120_000  # three small CNN runs on a busy two-core machine


def state(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased moving average, written independently (closed form)."""
    out = []
    for t in range(1, len(values) + 1):
        powers = weight ** np.arange(t - 1, -1, -1)
        out.append(float(np.dot(powers, values[:t]) / powers.sum()))
    return out


def test_the_example_runs_show_scalars_architecture_images_and_pr_curves(page: Page, plots) -> None:
    page.goto(LESSON)
    plots.wait_drawn(page, "fig-scalars", "fig-pr")
    assert len(plots.traces(page, "fig-scalars")) == 6  # three runs, raw and smoothed
    raw = plots.values(page, "fig-scalars", index=0)
    smoothed = plots.values(page, "fig-scalars", index=1)
    assert np.allclose(smoothed, smooth(raw, 0.6), rtol=1e-6)
    expect(page.locator("#parameter-total")).to_have_text("1370")
    expect(page.locator("#samples img")).to_have_count(16)
    assert page.locator("#architecture tbody tr").count() == 7  # input, 5 layers, total


def test_arrow_keys_change_smoothing_and_threshold_and_the_url_keeps_them(
    page: Page, plots
) -> None:
    page.goto(LESSON + "?smoothing=0.6&threshold=0.5")
    plots.wait_drawn(page, "fig-scalars", "fig-pr")
    before = page.locator("#pr-readout").inner_text()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => location.search.includes('smoothing=0.65')")
    raw = plots.values(page, "fig-scalars", index=0)
    page.wait_for_function(
        "() => document.getElementById('fig-scalars').data[1].meta.smoothing === 0.65"
    )
    assert np.allclose(plots.values(page, "fig-scalars", index=1), smooth(raw, 0.65), rtol=1e-6)
    page.keyboard.press("ArrowUp")
    page.wait_for_function("() => location.search.includes('threshold=0.55')")
    expect(page.locator("#pr-readout")).not_to_have_text(before)
    assert state(page)["smoothing"] == ["0.65"] and state(page)["threshold"] == ["0.55"]

    page.reload()  # the shared link opens the same view
    expect(page.locator("#smoothing")).to_have_value("0.65")
    expect(page.locator("#threshold")).to_have_value("0.55")


def test_arrow_left_smooths_less_and_arrow_down_lowers_the_threshold(page: Page, plots) -> None:
    page.goto(LESSON + "?smoothing=0.6&threshold=0.5")
    plots.wait_drawn(page, "fig-scalars", "fig-pr")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#smoothing")).to_have_value("0.55")
    page.wait_for_function(
        "() => document.getElementById('fig-scalars').data[1].meta.smoothing === 0.55"
    )
    raw = plots.values(page, "fig-scalars", index=0)
    assert np.allclose(plots.values(page, "fig-scalars", index=1), smooth(raw, 0.55), rtol=1e-6)
    page.keyboard.press("ArrowDown")
    expect(page.locator("#threshold")).to_have_value("0.45")
    page.wait_for_function("() => location.search.includes('threshold=0.45')")
    assert state(page)["smoothing"] == ["0.55"] and state(page)["threshold"] == ["0.45"]


def test_three_runs_launched_from_the_page_are_followed_until_they_finish(
    page: Page, plots
) -> None:
    page.goto(LESSON)
    plots.wait_drawn(page, "fig-scalars")
    page.locator("#train-three").click()
    page.wait_for_url("**/lessons/tracking?runs=*")
    ids = state(page)["runs"][0].split(",")
    assert len(ids) == 3
    chips = page.locator("#runs-readout .status")
    expect(chips).to_have_count(3)
    expect(chips.filter(has_text="completed")).to_have_count(3, timeout=TRAINING_TIMEOUT_MS)
    plots.wait_drawn(page, "fig-scalars", "fig-pr")
    names = [t["name"] for t in plots.traces(page, "fig-scalars")[1::2]]
    assert [n.split()[0] for n in names] == [run_id[:8] for run_id in ids]  # short ids
    assert [n.split()[-1] for n in names] == ["lr=0.01", "lr=0.05", "lr=0.2"]
    points = plots.values(page, "fig-scalars", key="x", index=0)
    assert points[-1] == 6 * 45  # six epochs of 45 batches, every step streamed and stored


def test_the_phone_layout_has_no_horizontal_overflow(phone_page: Page, plots) -> None:
    phone_page.goto(LESSON)
    plots.wait_drawn(phone_page, "fig-scalars", "fig-pr")
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH + 1, f"{LESSON} is {width}px wide on a {PHONE_WIDTH}px screen"
