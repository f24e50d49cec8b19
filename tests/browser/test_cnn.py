"""The CNN lesson, driven like a learner: step the window, upload a picture, pick filters."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image
from playwright.sync_api import Page, expect

LESSON = "/lessons/cnn"
PHONE_WIDTH = 390


def open_lesson(page: Page, plots, query: str = "") -> None:
    page.goto(LESSON + (f"?{query}" if query else ""))
    expect(page.locator("#controls")).to_have_attribute("data-ready", "true")
    plots.wait_drawn(page)


def state(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query, keep_blank_values=True)


def output_cells(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("#window-output td").all_text_contents()]


def window_cells(page: Page) -> list[tuple[int, int]]:
    cells = page.locator("#window-input td.in-window")
    return [
        (
            int(cells.nth(i).get_attribute("data-r") or -1),
            int(cells.nth(i).get_attribute("data-c") or -1),
        )
        for i in range(cells.count())
    ]


def png(width: int, height: int) -> bytes:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def test_arrow_keys_move_the_window_and_fill_the_output_cell(page: Page, plots) -> None:
    open_lesson(page, plots)
    expect(page.locator("#window-label")).to_have_text("Step 1 of 4")
    assert output_cells(page) == ["6", "·", "·", "·"]
    assert window_cells(page) == [(0, 0), (0, 1), (1, 0), (1, 1)]

    page.keyboard.press("ArrowRight")
    expect(page.locator("#window-label")).to_have_text("Step 2 of 4")
    assert output_cells(page) == ["6", "8", "·", "·"]
    expect(page.locator('#window-output td[data-i="1"]')).to_have_class("current")
    assert window_cells(page) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert page.locator("#window-products td").all_text_contents() == ["2", "0", "0", "6"]
    expect(page.locator("#window-sum")).to_contain_text("2×1 + 3×0 + 5×0 + 6×1 = 8")
    assert state(page)["step"] == ["2"]

    page.keyboard.press("End")
    expect(page.locator("#window-label")).to_have_text("Step 4 of 4")
    assert output_cells(page) == ["6", "8", "12", "14"]
    expect(page.locator("#window-next")).to_be_disabled()
    page.keyboard.press("ArrowLeft")
    assert output_cells(page) == ["6", "8", "12", "·"]
    page.locator("#window-prev").click()
    expect(page.locator("#window-label")).to_have_text("Step 2 of 4")

    page.reload()  # the step is in the URL
    expect(page.locator("#window-label")).to_have_text("Step 2 of 4")
    assert output_cells(page) == ["6", "8", "·", "·"]


def test_padding_updates_the_formula_and_the_steps_live(page: Page, plots) -> None:
    open_lesson(page, plots)
    page.locator("#padding").fill("1")
    expect(page.locator("#window-label")).to_have_text("Step 1 of 16")
    formula = page.locator(".cnn-window .cnn-formula code").first
    expect(formula).to_contain_text("⌊(3 + 2·1 − 1·(2 − 1) − 1) / 1⌋ + 1 = ⌊3 / 1⌋ + 1 = 4")
    expect(page.locator("#window-input td.pad")).to_have_count(16)
    assert window_cells(page) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    page.locator("#stride").fill("2")
    expect(page.locator("#window-label")).to_have_text("Step 1 of 4")
    assert state(page)["padding"] == ["1"] and state(page)["stride"] == ["2"]
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("ArrowRight")
    assert window_cells(page) == [(0, 2), (0, 3), (1, 2), (1, 3)]


def test_uploading_a_png_through_the_page_shows_the_three_channel_maps(page: Page, plots) -> None:
    open_lesson(page, plots)
    page.set_input_files(
        "#image-file", files=[{"name": "mine.png", "mimeType": "image/png", "buffer": png(20, 16)}]
    )
    result = page.locator("#image-result")
    expect(result).to_have_attribute("data-source", "upload:mine.png")
    expect(page.locator(".channel")).to_have_count(3)
    for name in ("R", "G", "B"):
        maps = page.locator(f'.channel[data-channel="{name}"] img.map')
        expect(maps).to_have_count(3)
        for i in range(3):
            assert (maps.nth(i).get_attribute("src") or "").startswith("data:image/png;base64,")
    expect(page.locator('[data-count="input"]')).to_have_text("960")  # 3 × 16 × 20
    expect(page.locator('[data-count="conv"]')).to_have_text("756")  # 3 × 14 × 18
    expect(page.locator('[data-count="pooled"]')).to_have_text("189")  # 3 × 7 × 9
    expect(page.locator("#upload-note")).to_be_visible()
    assert (page.locator("#image-original").get_attribute("src") or "").startswith("blob:")
    plots.wait_for_values(page, "fig-image-counts", [960, 756, 189])

    page.locator("#image-preset").select_option("sobel_x")
    sobel_row = page.locator('.channel[data-channel="G"] table.kernel tr').first
    expect(sobel_row).to_have_text("-101")  # edge's first row was -1 -1 -1
    expect(result).to_have_attribute("data-source", "upload:mine.png")  # still the upload
    assert state(page)["image_kernel"] == ["sobel_x"]
    assert "file" not in state(page)  # the picture itself is not in the URL


def test_changing_the_preset_and_typing_values_on_the_sample(page: Page, plots) -> None:
    open_lesson(page, plots)
    page.locator("#image-preset").select_option("blur")
    expect(page.locator('.channel[data-channel="R"] table.kernel td').first).to_have_text("0.111")
    expect(page.locator("#image-values")).to_have_value(
        "[[0.1111, 0.1111, 0.1111],\n [0.1111, 0.1111, 0.1111],\n [0.1111, 0.1111, 0.1111]]"
    )
    assert state(page)["image_kernel"] == ["blur"]

    page.locator("#image-values").fill("[[0, 1], [1, 0]]")
    page.locator("#image-values").blur()
    expect(page.locator("#image-preset")).to_have_value("typed")
    expect(page.locator('[data-count="conv"]')).to_have_text(str(3 * 95 * 95))
    assert state(page)["image_kernel"] == ["[[0, 1], [1, 0]]"]

    page.locator("#image-sample").select_option("tiny")
    page.locator("#image-pool-size").fill("1")
    expect(page.locator('[data-count="input"]')).to_have_text("75")
    expect(page.locator('[data-count="conv"]')).to_have_text("48")  # 3 × 4 × 4 with a 2×2 filter
    page.reload()  # sample, filter and pooling come back from the URL
    expect(page.locator("#image-sample")).to_have_value("tiny")
    expect(page.locator("#image-preset")).to_have_value("typed")
    expect(page.locator('[data-count="conv"]')).to_have_text("48")


def test_a_file_that_is_not_a_picture_is_refused_with_a_message(
    page: Page, plots, problems
) -> None:
    problems.expect(415, "/lessons/cnn/image")
    open_lesson(page, plots)
    page.set_input_files(
        "#image-file", files=[{"name": "cat.png", "mimeType": "image/png", "buffer": b"meow"}]
    )
    expect(page.locator("#image-error")).to_contain_text("PNG, JPEG, GIF, WebP or BMP")
    expect(page.locator("#image-result")).to_have_attribute("data-source", "sample:flower")
    expect(page.locator("#upload-note")).to_be_hidden()


def test_pooling_shows_max_min_and_average_of_the_notes_map(page: Page, plots) -> None:
    open_lesson(page, plots)
    tables = {
        kind: page.locator(f'table.pool-out[data-kind="{kind}"] td').all_text_contents()
        for kind in ("max", "min", "avg")
    }
    assert tables == {
        "max": ["4", "5", "3", "7"],
        "min": ["1", "0", "0", "0"],
        "avg": ["2.5", "2", "1.5", "2.5"],
    }
    assert [plots.trace(page, "fig-pooling", i)["z"] for i in range(3)] == [
        [[4, 5], [3, 7]],
        [[1, 0], [0, 0]],
        [[2.5, 2], [1.5, 2.5]],
    ]
    page.locator("#pool-stride").fill("1")
    expect(page.locator("#pool-features")).to_have_text("16 → 9")
    expect(page.locator('table.pool-out[data-kind="max"] td')).to_have_count(9)


def test_the_phone_layout_has_no_horizontal_overflow(phone_page: Page, plots) -> None:
    open_lesson(phone_page, plots)
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH + 1, f"{LESSON} is {width}px wide on a {PHONE_WIDTH}px screen"
    phone_page.set_input_files(
        "#image-file", files=[{"name": "wide.png", "mimeType": "image/png", "buffer": png(300, 40)}]
    )
    expect(phone_page.locator("#image-result")).to_have_attribute("data-source", "upload:wide.png")
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH + 1, f"{LESSON} is {width}px wide after an upload"


def test_typing_a_new_matrix_and_kernel_recomputes_the_window(page: Page, plots) -> None:
    open_lesson(page, plots)
    page.locator("#matrix").fill("1 2 0\n0 1 2\n2 0 1\n1 1 1")
    page.locator("#kernel").fill("1, -1")
    page.locator("#kernel").blur()
    expect(page.locator("#window-label")).to_have_text("Step 1 of 8")  # 4×3 input, 1×2 kernel
    page.keyboard.press("End")
    assert output_cells(page) == ["-1", "2", "-1", "-1", "2", "-1", "0", "0"]
    assert state(page)["kernel"] == ["1, -1"] and state(page)["step"] == ["8"]
