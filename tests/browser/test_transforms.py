"""The Transforms lesson, driven like a learner would: build, reorder, upload, share."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image
from playwright.sync_api import Page, expect

from app.lessons.images import sample_image

LESSON = "/lessons/transforms"
API = "/api/transforms/apply"


def open_lesson(page: Page, plots, query: str = "") -> None:
    page.goto(LESSON + (f"?{query}" if query else ""))
    expect(page.locator("#controls")).to_have_attribute("data-ready", "true")
    plots.wait_drawn(page, "fig-histogram")


def state(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def shapes(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("#stages .stage-shape").all_text_contents()]


def expect_shapes(page: Page, expected: list[str]) -> None:
    expect(page.locator("#stages .stage-shape")).to_have_text(expected)


def item(page: Page, index: int):
    return page.locator(f'#pipeline .pipe-item[data-index="{index}"]')


def blur(page: Page) -> None:
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def png(height: int, width: int) -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_add_a_stage_reorder_it_with_keys_and_buttons_and_see_the_shapes_change(
    page: Page, plots, problems
) -> None:
    problems.expect(422, API)  # grayscale after to_tensor: the page says why
    open_lesson(page, plots, "p=resize:8x8,to_tensor")
    expect_shapes(page, ["[96, 96, 3]", "[8, 8, 3]", "[3, 8, 8]"])
    expect(page.locator("#stages .stage-kind")).to_have_text(["image", "image", "tensor"])

    page.get_by_role("button", name="+ Grayscale").click()
    expect(page.locator("#pipeline .pipe-item")).to_have_count(3)
    expect(item(page, 2)).to_contain_text("Grayscale")
    banner = page.locator("#lesson-error")
    expect(banner).to_have_text(
        "Stage 3 (grayscale): Grayscale works on images, but it got a tensor: "
        "put it before to_tensor."
    )
    expect(page.locator("#stages")).to_have_class("stage-strip stale")
    expect(item(page, 2)).to_have_class("pipe-item failed")

    # the keyboard moves it: focus its up button and press Enter
    item(page, 2).get_by_role("button", name="Move Grayscale (stage 3) up").focus()
    page.keyboard.press("Enter")
    expect(item(page, 1)).to_contain_text("Grayscale")
    expect(banner).to_be_hidden()
    expect_shapes(page, ["[96, 96, 3]", "[8, 8, 3]", "[8, 8, 1]", "[1, 8, 8]"])
    expect(page.locator("#stages .stage-range").last).not_to_have_text("")
    assert state(page)["p"] == ["resize:8x8,grayscale,to_tensor"]
    # focus stays on the moved transform, so the next press moves it again
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Move Grayscale (stage 2) up"

    # Alt+Up on the transform itself moves it to the top
    page.keyboard.press("Alt+ArrowUp")
    expect(item(page, 0)).to_contain_text("Grayscale")
    expect_shapes(page, ["[96, 96, 3]", "[96, 96, 1]", "[8, 8, 1]", "[1, 8, 8]"])
    assert state(page)["p"] == ["grayscale,resize:8x8,to_tensor"]

    # a button moves it back down; the snippet and the dataset follow the pipeline
    item(page, 0).get_by_role("button", name="Move Grayscale (stage 1) down").click()
    expect_shapes(page, ["[96, 96, 3]", "[8, 8, 3]", "[8, 8, 1]", "[1, 8, 8]"])
    expect(page.locator('[data-slot="snippet"]')).to_contain_text("Grayscale(),")
    expect(page.locator(".dataset-shape")).to_have_text(["tensor [1, 8, 8]"] * 4)


def test_parameters_and_removal_update_the_stages_the_url_and_a_reload(page: Page, plots) -> None:
    open_lesson(page, plots, "p=resize:8x8,to_tensor")
    size = item(page, 0).get_by_label("Stage 1 Resize height")
    size.fill("12")
    expect_shapes(page, ["[96, 96, 3]", "[12, 8, 3]", "[3, 12, 8]"])
    expect(page).to_have_url(re.compile("resize%3A12x8"))
    item(page, 1).get_by_role("button", name="Remove ToTensor (stage 2)").click()
    expect_shapes(page, ["[96, 96, 3]", "[12, 8, 3]"])
    page.get_by_role("button", name="+ ToTensor").click()
    page.get_by_role("button", name="+ Normalize").click()
    mean = item(page, 2).get_by_label("Stage 3 Normalize mean, one per channel")
    mean.fill("0.485, 0.456, 0.406")
    expect(page.locator("#stages .stage-card")).to_have_count(4)
    expect(page.locator("#stages .stage-layout").last).to_have_text("C×H×W")
    expect(page).to_have_url(re.compile("0.485_0.456_0.406"))
    page.reload()
    expect(page.locator("#controls")).to_have_attribute("data-ready", "true")
    expect_shapes(page, ["[96, 96, 3]", "[12, 8, 3]", "[3, 12, 8]", "[3, 12, 8]"])
    expect(item(page, 2).get_by_label("Stage 3 Normalize mean, one per channel")).to_have_value(
        "0.485, 0.456, 0.406"
    )


def test_arrow_keys_select_a_stage_and_the_histogram_follows(page: Page, plots) -> None:
    open_lesson(page, plots, "p=grayscale,to_tensor")
    selected = page.locator("#stages .stage-card.selected .stage-num")
    expect(selected).to_have_text("2")  # the last stage by default
    assert [t["name"] for t in plots.traces(page, "fig-histogram")] == ["L"]
    blur(page)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(selected).to_have_text("0")
    page.wait_for_function(
        "() => document.getElementById('fig-histogram').data.map((t) => t.name).join() === 'R,G,B'"
    )
    expect(page.locator("#stage-detail")).to_contain_text(
        "The input picture: image, shape [96, 96, 3]"
    )
    assert state(page)["stage"] == ["0"]
    # the bars are the picture's own pixel counts, 8 values per bin
    red = np.asarray(sample_image("flower"))[..., 0]
    counts = np.histogram(red, bins=32, range=(0, 256))[0].tolist()
    assert plots.values(page, "fig-histogram", "y", 0) == counts
    page.locator('#stages .stage-card[data-stage="1"] .stage-pick').click()
    expect(selected).to_have_text("1")
    assert state(page)["stage"] == ["1"]


def test_an_uploaded_png_goes_through_the_pipeline_but_not_into_the_url(page: Page, plots) -> None:
    open_lesson(page, plots, "p=grayscale,to_tensor")
    page.set_input_files(
        "#upload", files=[{"name": "mine.png", "mimeType": "image/png", "buffer": png(12, 10)}]
    )
    expect_shapes(page, ["[12, 10, 3]", "[12, 10, 1]", "[1, 12, 10]"])
    expect(page.locator("#upload-note")).to_contain_text("Showing your picture, mine.png")
    assert "mine" not in page.url
    # edits keep using the upload
    page.get_by_role("button", name="+ Multiply").click()
    expect_shapes(page, ["[12, 10, 3]", "[12, 10, 1]", "[1, 12, 10]", "[1, 12, 10]"])
    page.get_by_role("button", name="Use the sample again").click()
    expect_shapes(page, ["[96, 96, 3]", "[96, 96, 1]", "[1, 96, 96]", "[1, 96, 96]"])
    page.set_input_files(
        "#upload", files=[{"name": "mine.png", "mimeType": "image/png", "buffer": png(12, 10)}]
    )
    expect_shapes(page, ["[12, 10, 3]", "[12, 10, 1]", "[1, 12, 10]", "[1, 12, 10]"])
    page.reload()  # the upload cannot come back: the sample does
    expect(page.locator("#controls")).to_have_attribute("data-ready", "true")
    expect_shapes(page, ["[96, 96, 3]", "[96, 96, 1]", "[1, 96, 96]", "[1, 96, 96]"])


def test_a_phone_shows_the_lesson_without_horizontal_overflow(phone_page: Page, plots) -> None:
    open_lesson(phone_page, plots)
    width = phone_page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1], width
    phone_page.get_by_role("button", name="+ HorizontalFlip").click()
    expect(phone_page.locator("#stages .stage-card")).to_have_count(7)
    width = phone_page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1], width
