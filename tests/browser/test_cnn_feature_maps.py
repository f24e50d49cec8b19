"""The CNN feature-maps page in a real browser: every figure drawn, the arrow keys step the digit
and the channel with the URL keeping up, clicks on small pictures and channel names, the layer
switch, the way in from the CNN lesson, and a phone."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
from playwright.sync_api import Page, expect

LESSON = "/lessons/cnn-feature-maps"
TWIN = "/api/lessons/cnn-feature-maps/view"
PHONE_WIDTH = 390
FIGURES = ("fig-prediction", "fig-filters", "fig-maps", "fig-classes", "fig-channel_map")


def state(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def twin(base_url: str, query: str) -> dict:
    response = httpx.get(f"{base_url}{TWIN}?{query}", timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_maps(page: Page, expected: list) -> None:
    """Wait until every channel's panel of fig-maps holds the expected map."""
    want = [np.asarray(grid).ravel().tolist() for grid in expected]
    page.wait_for_function(
        """want => {
            const d = document.getElementById("fig-maps");
            return d && d.data && d.data.length === want.length && want.every((w, k) => {
                const got = d.data[k].z.flat();
                return got.length === w.length && w.every((v, j) => Math.abs(got[j] - v) <= 1e-5);
            });
        }""",
        arg=want,
    )


def flat_z(page: Page, index: int) -> list[float]:
    return page.evaluate("i => document.getElementById('fig-maps').data[i].z.flat()", index)


def test_every_figure_is_drawn_from_the_servers_numbers(page: Page, plots, base_url: str) -> None:
    page.goto(f"{LESSON}?image=7&layer=1&channel=0")
    plots.wait_drawn(page, *FIGURES)
    view = twin(base_url, "image=7&layer=1&channel=0")
    assert len(plots.traces(page, "fig-maps")) == 8
    for k, grid in enumerate(view["result"]["maps"]):
        assert np.allclose(flat_z(page, k), np.asarray(grid).ravel(), atol=1e-6)
    bars = plots.values(page, "fig-prediction")
    assert np.allclose(bars, view["result"]["prediction"]["probabilities"], atol=1e-9)
    expect(page.locator("#fm-label")).to_have_text(str(view["result"]["input"]["label"]))
    thumbs = sum(len(r["top"]) for r in view["result"]["responses"])
    expect(page.locator("#fm-top .fm-thumb img")).to_have_count(thumbs)
    expect(page.locator(".code-block summary").first).to_be_visible()


def test_arrow_keys_step_the_digit_and_the_channel_and_the_url_keeps_them(
    page: Page, plots, base_url: str
) -> None:
    page.goto(f"{LESSON}?image=7&layer=1&channel=0")
    plots.wait_drawn(page, *FIGURES)
    page.locator("h1").click()  # focus on the page, not a control
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => new URLSearchParams(location.search).get('image') === '8'")
    view = twin(base_url, "image=8&layer=1&channel=0")
    wait_for_maps(page, view["result"]["maps"])
    expect(page.locator("#fm-label")).to_have_text(str(view["result"]["input"]["label"]))
    expect(page.locator("#fm-digit")).to_have_value(str(view["result"]["input"]["label"]))

    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => new URLSearchParams(location.search).get('image') === '6'")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => new URLSearchParams(location.search).get('channel') === '1'")
    expect(page.locator("#fm-focus-peak")).to_have_text(
        f"{twin(base_url, 'image=6&channel=1')['result']['responses'][1]['peak']:.4f}".rstrip(
            "0"
        ).rstrip(".")
    )
    expect(page.locator(".fm-channel.focus")).to_have_attribute("data-channel", "1")
    assert state(page)["image"] == ["6"] and state(page)["channel"] == ["1"]

    page.reload()  # the shared link opens the same view
    expect(page.locator("#fm-image")).to_have_value("6")
    expect(page.locator("#fm-channel")).to_have_value("1")


def test_clicks_on_a_picture_a_channel_and_a_digit_move_the_view(
    page: Page, plots, base_url: str
) -> None:
    page.goto(f"{LESSON}?image=7&layer=1&channel=0")
    plots.wait_drawn(page, *FIGURES)
    thumb = page.locator('.fm-channel[data-channel="2"] .fm-thumb').first
    index = thumb.get_attribute("data-image")
    thumb.click()
    page.wait_for_function(
        "i => new URLSearchParams(location.search).get('image') === i", arg=index
    )
    expect(page.locator("#fm-input")).to_have_attribute("data-image", str(index))

    page.locator('.fm-channel-name[data-channel="3"]').click()
    page.wait_for_function("() => new URLSearchParams(location.search).get('channel') === '3'")

    first_nine = twin(base_url, "")["result"]["first_of_digit"]["9"]
    page.locator("#fm-digit").select_option("9")
    page.wait_for_function(
        "i => new URLSearchParams(location.search).get('image') === String(i)", arg=first_nine
    )
    expect(page.locator("#fm-label")).to_have_text("9")


def test_another_layer_reloads_with_its_channels(page: Page, plots) -> None:
    page.goto(f"{LESSON}?image=7&layer=1&channel=5")
    plots.wait_drawn(page, *FIGURES)
    page.locator("#fm-layer").select_option("2")
    page.wait_for_function("() => new URLSearchParams(location.search).get('layer') === '2'")
    plots.wait_drawn(page, *FIGURES, "fig-kernels")
    assert state(page)["channel"] == ["0"]
    expect(page.locator("#fm-channel option")).to_have_count(16)
    assert len(plots.traces(page, "fig-maps")) == 16
    assert len(plots.traces(page, "fig-kernels")) == 8  # one kernel per layer-1 channel


def test_the_cnn_lesson_links_here(page: Page, plots) -> None:
    page.goto("/lessons/cnn")
    link = page.locator('#feature-maps-link a[href="/lessons/cnn-feature-maps"]')
    expect(link).to_be_visible()
    link.click()
    page.wait_for_url(f"**{LESSON}")
    plots.wait_drawn(page, *FIGURES)
    expect(page.locator("h1")).to_have_text("CNN feature maps")
    expect(page.locator('a[rel="prev"]')).to_have_attribute("href", "/lessons/cnn")


def test_the_phone_layout_has_no_horizontal_overflow(phone_page: Page, plots) -> None:
    for query in ("", "?layer=2&channel=14"):
        phone_page.goto(LESSON + query)
        plots.wait_drawn(phone_page, *FIGURES)
        width = phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE_WIDTH + 1, f"{LESSON}{query} is {width}px wide on a phone"
