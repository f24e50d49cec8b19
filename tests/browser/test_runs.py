"""Training runs in the browser: launch from /runs, watch the charts grow live, cancel a run.

Every test runs twice: against the server alone (local runner, SQLite) and against a class
deployment (two web processes with the Celery runner, two Celery workers, Redis, PostgreSQL).
There the page is opened on the first web process while the API checks read the second, so what
the page showed is compared with what another process reads from the shared store.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from app.lessons.tracking import smooth
from tests.browser.conftest import Problems

RUN_URL = re.compile(r"/runs/[0-9a-f]+$")
COUNT = "(document.getElementById('fig-loss')?.data?.[0]?.x?.length ?? 0)"
RUN_TIMEOUT_MS = 30_000
WARM_UP_S = 90.0  # the server's first run starts the fork server (torch imported once): slow


@dataclass(frozen=True)
class Server:
    """Where a test's page is opened (``web``) and where its API checks read (``api``)."""

    web: str
    api: str


@pytest.fixture(scope="module", params=["alone", "class"])
def server(request: pytest.FixtureRequest) -> Server:
    """The server alone, or a class deployment: its page on web 1, its API checks on web 2."""
    if request.param == "alone":
        url = request.getfixturevalue("base_url")
        return Server(web=url, api=url)
    first, second = request.getfixturevalue("class_deployment").urls[:2]
    return Server(web=first, api=second)


@pytest.fixture
def problems(server: Server) -> Problems:
    """The browser's recorder (as conftest's), watching the server the page is opened on."""
    return Problems(origin=server.web)


@pytest.fixture(scope="module", autouse=True)
def warm_runner(server: Server) -> None:
    """One tiny run first, so the fork server is up before a test times a page (a class
    deployment's workers warm up before they say they are ready: there it checks the path)."""
    with httpx.Client(base_url=server.web, timeout=WARM_UP_S) as client:
        body = {"task": "linear-regression", "config": {"epochs": 1}}
        run_id = client.post("/api/runs", json=body).json()["id"]
        deadline = time.monotonic() + WARM_UP_S
        while client.get(f"/api/runs/{run_id}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "the warm-up run did not finish"
            time.sleep(0.1)


def launch_from_form(page: Page, task: str, **config: int) -> str:
    page.goto("/runs")
    page.select_option("#task", task)
    for name, value in config.items():
        page.fill(f"#cfg-{task}-{name}", str(value))
    page.click("#launch")
    page.wait_for_url(RUN_URL)
    return urlsplit(page.url).path.rsplit("/", 1)[1]


def test_launched_run_grows_its_loss_chart_live_then_shows_what_it_learned(
    page: Page, plots, server: Server
) -> None:
    run_id = launch_from_form(page, "digits-cnn", epochs=6, batch_size=2)
    # Sample the loss chart's length, the status and the progress bar while the run trains
    # (into sessionStorage: the page reloads once the run is done, for its summary panels).
    page.evaluate(
        f"""() => {{
            const samples = [];
            setInterval(() => {{
                samples.push([
                    {COUNT},
                    document.getElementById('run-status').textContent,
                    document.getElementById('run-progress').value,
                ]);
                sessionStorage.setItem('samples', JSON.stringify(samples));
            }}, 50);
        }}"""
    )
    expect(page.locator("#run-status")).to_have_text("completed", timeout=RUN_TIMEOUT_MS)
    expect(page.locator(".sample-grid .sample")).to_have_count(16)  # after the reload
    samples = page.evaluate("() => JSON.parse(sessionStorage.getItem('samples'))")
    live = [(count, progress) for count, status, progress in samples if status == "running"]
    counts = sorted({count for count, _ in live})
    assert len(counts) >= 3, f"the chart grew only through {counts} while running"
    grown = [c for c, _ in live]
    assert grown == sorted(grown), "the chart shrank while running"  # it only ever grows
    assert len({progress for _, progress in live}) >= 2, "the progress bar never moved"

    # Done: the summary panels, and the chart holds every logged step.
    expect(page.locator("#parameter-total")).to_have_text("1,370")
    plots.wait_drawn(page, "fig-loss", "fig-pr")
    api = httpx.get(f"{server.api}/api/runs/{run_id}").json()
    drawn = plots.values(page, "fig-loss", "x")
    logged = [p[0] for p in api["metrics"]["loss"]]
    # Compared as arrays: a failing == on thousands of items makes pytest's diff run for minutes.
    assert np.array_equal(drawn, logged), f"{len(drawn)} steps drawn, {len(logged)} logged"
    assert api["status"] == "completed" and api["metrics"]["epoch"][-1][1] == 6
    expect(page.locator("#run-progress")).to_have_js_property("value", 1)

    # The smoothing follows the arrow keys and the URL; the PR curve follows the class picked.
    # Both are the server's numbers (smooth(), operating_point()), drawn as they came.
    page.locator("h1").click()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => new URL(location.href).searchParams.get('smoothing') === '0.65'")
    raw = plots.values(page, "fig-loss", "y", 0)
    plots.wait_for_values(page, "fig-loss", smooth(raw, 0.65), index=1, tol=1e-12)
    page.select_option("#pr-class", "7")
    assert parse_qs(urlsplit(page.url).query)["pr_class"] == ["7"]
    expect(page.locator("#pr-readout")).to_contain_text("Class 7 at p ≥ 0.50")
    assert plots.trace(page, "fig-pr")["name"] == "digit 7"
    page.locator("#threshold").fill("0.3")
    expect(page.locator("#pr-readout")).to_contain_text("Class 7 at p ≥ 0.30")
    assert parse_qs(urlsplit(page.url).query)["threshold"] == ["0.3"]
    point = httpx.get(f"{server.api}/api/runs/{run_id}/pr?pr_class=7&threshold=0.3").json()
    marker = plots.trace(page, "fig-pr", 1)
    assert marker["x"] == [point["recall"]] and marker["y"] == [point["precision"]]
    assert marker["name"] == "digit 7 at p ≥ 0.3"
    expect(page.locator("#pr-readout")).to_contain_text(f"precision {point['precision']:.3f}")


def test_cancelling_a_long_run_from_its_page_on_a_phone(
    phone_page: Page, plots, server: Server
) -> None:
    page = phone_page
    run_id = launch_from_form(page, "digits-cnn", epochs=50, batch_size=8)
    expect(page.locator("#run-status")).to_have_text(re.compile("queued|running"))
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.wait_for_function(f"() => {COUNT} > 0", timeout=RUN_TIMEOUT_MS)
    # A new smoothing while it runs: the server redraws the charts, and the stream carries on
    # after the last point drawn with values smoothed at the new weight.
    page.locator("h1").click()
    # Until the server's redraw arrives the old stream carries on at the old weight: wait for it.
    with page.expect_response(lambda r: "/scalars?smoothing=0.55" in r.url):
        page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => new URL(location.href).searchParams.get('smoothing') === '0.55'")
    grown = page.evaluate(COUNT)
    page.wait_for_function(f"() => {COUNT} > {grown} + 20", timeout=RUN_TIMEOUT_MS)
    raw_live, smoothed_live = page.evaluate(
        "() => document.getElementById('fig-loss').data.slice(0, 2).map((t) => Array.from(t.y))"
    )  # read together: a redraw between two reads would add points to one of them only
    assert np.allclose(smoothed_live, smooth(raw_live, 0.55), rtol=0, atol=1e-12)
    # The cancel's answer comes at once; the stream's final status comes only once the runner has
    # let go of the run (its worker stops at its next step alone, at its next heartbeat in a class
    # deployment) and the store has its last metric: then the page redraws from the store.
    with page.expect_response(lambda r: "/scalars?" in r.url, timeout=RUN_TIMEOUT_MS):
        page.click("#cancel-run")
        expect(page.locator("#run-status")).to_have_text("cancelled", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#cancel-run")).to_be_hidden()
    # A cancelled run is not reloaded: its charts are the ones the stream grew, smoothed by the
    # server exactly as app.lessons.tracking.smooth does over the whole series.
    # The chart catches up within its next drawing batch.
    api = httpx.get(f"{server.api}/api/runs/{run_id}").json()
    logged = [p[1] for p in api["metrics"]["loss"]]
    page.wait_for_function(f"n => {COUNT} >= n", arg=len(logged))
    raw = plots.values(page, "fig-loss", "y", 0)
    assert np.array_equal(raw, logged), f"{len(raw)} losses drawn, {len(logged)} logged"
    plots.wait_for_values(page, "fig-loss", smooth(raw, 0.55), index=1, tol=1e-12)

    page.goto("/runs")
    expect(page.locator("#runs-table tbody tr").first.locator(".status-badge")).to_have_text(
        "cancelled"
    )
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
