"""Learners in the browser (issue 16, item 1): name yourself on /me, make the one-time link, and
open it in a fresh browser context (a phone), which becomes the same learner."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import PHONE, Problems, _close_and_check, _watched_page

NAME = "Ada <b>&amp; co</b>"  # typed as is: shown as text, never as HTML


def test_a_learner_names_themselves_and_carries_the_identity_to_another_browser(
    page: Page, browser: Browser, base_url: str, problems: Problems
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    page.goto("/me")
    expect(page.get_by_role("link", name="You")).to_have_attribute("aria-current", "page")
    learner = page.locator("#me-learner").inner_text()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", learner)
    cookie = next(c for c in page.context.cookies() if c["name"] == "explorer_learner")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    # A name over the limit is refused with the server's message; then a good one, by keyboard.
    name_field = page.get_by_label("Display name")
    name_field.evaluate("input => input.removeAttribute('maxlength')")  # as a script could
    name_field.fill("x" * 41)
    problems.expect(422, "/api/me")
    name_field.press("Enter")
    expect(page.locator("#name-error")).to_contain_text("40")
    expect(name_field).to_have_attribute("aria-invalid", "true")
    name_field.fill(NAME)
    name_field.press("Enter")
    expect(page.locator("#name-saved")).to_have_text("Saved.")
    expect(page.locator("#me-name")).to_have_text(NAME)
    expect(page.locator("#name-error")).to_be_hidden()
    assert page.locator("#me-name b").count() == 0  # no markup was made of it
    page.reload()
    expect(page.locator("#me-name")).to_have_text(NAME)

    # The one-time link, made from the keyboard and copied with the button.
    page.get_by_role("button", name="Make a one-time link").focus()
    page.keyboard.press("Enter")
    link_field = page.get_by_label("Your link")
    expect(link_field).to_have_value(re.compile(re.escape(base_url) + r"/me/claim/[\w-]{22}$"))
    link = link_field.input_value()
    expect(page.locator("#link-expiry")).to_contain_text("works once")
    page.get_by_role("button", name="Copy link").click()
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == link

    # A fresh browser (phone-sized) opens the link: it asks, then it is learner A.
    context, phone = _watched_page(browser, problems, PHONE)
    try:
        phone.goto("/me")
        assert phone.locator("#me-learner").inner_text() != learner
        phone.goto(link)
        expect(phone.locator("#claim-name")).to_have_text(NAME)
        expect(phone.locator("#claim-learner")).to_have_text(learner)
        phone.get_by_role("button", name="Continue as this learner").click()
        expect(phone).to_have_url(f"{base_url}/me")
        expect(phone.locator("#me-learner")).to_have_text(learner)
        expect(phone.locator("#me-name")).to_have_text(NAME)
        expect(phone.get_by_label("Display name")).to_have_value(NAME)
        fits = "document.documentElement.scrollWidth <= window.innerWidth"
        assert phone.evaluate(fits), "the page scrolls sideways on a phone"
        # The link worked once: opening it again says so.
        path = link.removeprefix(base_url)
        problems.expect(410, path)
        phone.goto(link)
        expect(phone.locator(".error-page")).to_contain_text("already been used")
    finally:
        _close_and_check(context, problems)
    # The first browser is still learner A, with the same name.
    page.goto("/me")
    expect(page.locator("#me-learner")).to_have_text(learner)
