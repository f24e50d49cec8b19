"""A phone-sized screen, and the HTML error pages."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

PHONE_WIDTH = 390


@pytest.mark.parametrize("path", ["/lessons/softmax-cross-entropy", "/lessons/activations"])
def test_lesson_fits_a_phone_without_horizontal_scrolling(phone_page: Page, plots, path) -> None:
    phone_page.goto(path)
    plots.wait_drawn(phone_page)
    width = phone_page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH + 1, f"{path} is {width}px wide on a {PHONE_WIDTH}px screen"


def test_lessons_menu_button_opens_the_nav_on_a_phone(phone_page: Page) -> None:
    phone_page.goto("/lessons/tensors")  # the menu is the same on every page; this one is light
    nav = phone_page.locator("#lesson-nav")
    button = phone_page.locator(".menu-toggle")
    expect(nav).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")

    button.click()
    expect(nav).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(nav.locator("li")).to_have_count(11)
    expect(nav.locator('a[aria-current="page"]')).to_have_attribute("href", "/lessons/tensors")
    expect(nav.locator('a[aria-current="page"]')).to_be_in_viewport()
    with phone_page.expect_navigation():
        nav.locator('a[href="/lessons/autograd"]').click()
    expect(phone_page.locator("h1")).to_have_text("Gradient calculation")
    expect(phone_page.locator("#lesson-nav")).to_be_hidden()  # a new page starts closed
    button.click()
    expect(nav).to_be_visible()

    button.click()
    expect(nav).to_be_hidden()
    expect(button).to_have_attribute("aria-expanded", "false")


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/lessons/no-such-lesson", "no-such-lesson"),
        ("/nope", "/nope"),
    ],
)
def test_unknown_pages_are_an_html_404_page(page: Page, problems, path, detail) -> None:
    problems.expect(404, path)
    response = page.goto(path)
    assert response is not None
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    expect(page).to_have_title("Page not found · PyTorch Explorer")
    expect(page.locator(".error-page .status")).to_have_text("404")
    expect(page.locator(".error-page h1")).to_have_text("Page not found")
    expect(page.locator(".error-page .detail")).to_contain_text(detail)
    with page.expect_navigation():
        page.locator(".error-page a", has_text="Back to all lessons").click()
    expect(page.locator(".cards li")).to_have_count(11)
