"""A form on another site cannot change anything here (issue 16, item 6), in a real browser.

The other site is ``http://evil.example``, served by Playwright's router inside Chromium (no DNS,
no network): its page posts a plain HTML form to the real app, as a forged request would. The
browser itself sends ``Origin: http://evil.example`` and ``Sec-Fetch-Site: cross-site``.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, Route

EVIL = "http://evil.example"


@pytest.fixture
def long_run(page: Page, base_url: str) -> Iterator[str]:
    """A digits run of the page's own learner that trains for a while (cancelled at the end)."""
    answer = page.request.post(
        f"{base_url}/api/runs",
        data={"task": "digits-cnn", "config": {"epochs": 50, "batch_size": 4}},
    )
    assert answer.status == 202, answer.text()
    run_id: str = answer.json()["id"]
    yield run_id
    page.request.post(f"{base_url}/api/runs/{run_id}/cancel")


def evil_page(action: str) -> str:
    return (
        "<!doctype html><title>Win a prize</title>"
        f'<form method="post" action="{html.escape(action)}">'
        '<input type="hidden" name="x" value="1"><button id="go">Claim</button></form>'
    )


def test_a_form_on_another_site_cannot_cancel_a_run(
    page: Page, problems, base_url: str, long_run: str
) -> None:
    action = f"{base_url}/api/runs/{long_run}/cancel"

    def serve(route: Route) -> None:
        route.fulfill(status=200, content_type="text/html", body=evil_page(action))

    page.route(f"{EVIL}/**", serve)
    page.goto(f"{EVIL}/prize")
    problems.expect(403, f"/api/runs/{long_run}/cancel")
    with page.expect_response(lambda r: r.url == action) as answer_info:
        page.click("#go")
    answer = answer_info.value
    assert answer.status == 403
    request = answer.request
    assert request.all_headers().get("origin") == EVIL  # the browser's own word
    assert "cross-site" in answer.json()["detail"]
    status = httpx.get(f"{base_url}/api/runs/{long_run}").json()["status"]
    assert status in {"queued", "running"}

    # The same cancel from the app's own run page goes through.
    page.goto(f"{base_url}/runs/{long_run}")
    page.click("#cancel-run")
    page.wait_for_function(
        "() => document.getElementById('run-status').textContent.trim() === 'cancelled'"
    )
    assert httpx.get(f"{base_url}/api/runs/{long_run}").json()["status"] == "cancelled"
