"""Browser tests: the real server in a subprocess, driven by Debian's Chromium through Playwright.

Every page a test opens is watched: a console error, a Content Security Policy refusal, an
uncaught exception, a failed request or an HTTP error from the app fails the test at teardown,
unless the test declared that status as expected (``problems.expect(404, "/nope")``).
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from app.deploy import ClassDeployment, drop_database, ensure_database, flush_broker

# One place says how Debian's Chromium is launched here, for the tests and the benchmarks alike.
from bench.common import CHROMIUM, CHROMIUM_ARGS
from tests import pg

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STARTUP_TIMEOUT_S = 30.0
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 30_000  # generous: CI shares two cores with the server and the browser

expect.set_options(timeout=TIMEOUT_MS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.browser)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app, served by uvicorn on a free port, with its data in a temporary folder."""
    tmp = tmp_path_factory.mktemp("server")
    log_path = tmp / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"EXPLORER_DATA_DIR": str(tmp / "data"), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"The server exited with code {process.returncode} before answering /healthz.\n"
                f"Its log:\n{log_path.read_text(errors='replace')}",
                pytrace=False,
            )
        try:
            response = httpx.get(f"{url}/healthz", timeout=2.0)
            if response.status_code == 200:
                return
            last_error = f"/healthz answered {response.status_code}"
        except httpx.HTTPError as error:
            last_error = repr(error)
        time.sleep(0.1)
    process.kill()
    process.wait(timeout=10)
    pytest.fail(
        f"The server did not answer GET /healthz with 200 within {STARTUP_TIMEOUT_S:g} s "
        f"({last_error}).\nIts log:\n{log_path.read_text(errors='replace')}",
        pytrace=False,
    )


# The class deployment's web ports are looked for from here up; its broker is a Redis database
# no other test uses (flushed when the deployment starts).
CLASS_FIRST_PORT = 8600
CLASS_BROKER_URL = "redis://127.0.0.1:6379/11"
CLASS_ENV = {  # what a browser test does not open would only compete for the two cores
    "EXPLORER_WARM_LESSONS": "false",
    "EXPLORER_PROGRAM_PREWARM": "false",
    "EXPLORER_PICTURE_PREWARM": "false",
}


def _free_consecutive_ports(count: int, start: int = CLASS_FIRST_PORT) -> int:
    """The first of ``count`` consecutive free ports from ``start`` up."""
    for first in range(start, start + 1000):
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports from {start} up")


@pytest.fixture(scope="session")
def class_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClassDeployment]:
    """A class deployment (2 web processes, 2 Celery workers, Redis, PostgreSQL), started once.

    Its PostgreSQL database is new, named for this session alone, and dropped at the end; its
    logs are in ``data_dir / "logs"`` (web1.log, worker1.log...).
    """
    if not pg.pg_available():
        pytest.fail(pg.UNAVAILABLE, pytrace=False)
    try:
        flush_broker(CLASS_BROKER_URL)  # only database 11: nothing an earlier session left queued
    except redis.RedisError as error:
        pytest.fail(f"Redis does not answer at {CLASS_BROKER_URL} ({error})", pytrace=False)
    database_url = pg.sqlalchemy_url(pg.new_name("explorer_browser"))
    ensure_database(database_url)
    deployment = ClassDeployment(
        webs=2,
        workers=2,
        port=_free_consecutive_ports(2),
        database_url=database_url,
        broker_url=CLASS_BROKER_URL,
        data_dir=tmp_path_factory.mktemp("class") / "data",
        env=dict(CLASS_ENV),
    )
    try:
        try:
            deployment.start()
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"The class deployment did not start: {error}", pytrace=False)
        yield deployment
    finally:
        deployment.stop()
        drop_database(database_url)


@pytest.fixture(scope="session")
def class_url(class_deployment: ClassDeployment) -> str:
    """The class deployment's first web process (``class_deployment.urls`` has every one)."""
    return class_deployment.urls[0]


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """Debian's headless Chromium; missing Chromium is a failure, never a silent skip."""
    if not Path(CHROMIUM).is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is not at {CHROMIUM}: run make test, which installs Debian's chromium "
            "(or set EXPLORER_CHROMIUM to a Chromium binary).",
            pytrace=False,
        )
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@dataclass
class Problems:
    """What went wrong in the browser during one test, and the HTTP errors it expected."""

    origin: str
    seen: list[str] = field(default_factory=list)
    expected: list[tuple[int, str]] = field(default_factory=list)
    _failed_loads: list[tuple[int, str, str]] = field(default_factory=list)

    def expect(self, status: int, path: str) -> None:
        """Declare that the app answers ``path`` (query ignored) with ``status`` in this test."""
        self.expected.append((status, path))

    def _is_expected(self, status: int, url: str) -> bool:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" == self.origin and (
            (status, parts.path) in self.expected
        )

    def on_console(self, message: ConsoleMessage) -> None:
        text = message.text
        if message.type == "error":
            # Chromium logs every HTTP error response; those are judged as responses below.
            if text.startswith("Failed to load resource: the server responded with a status of"):
                status = int(text.split("status of ", 1)[1].split()[0])
                self._failed_loads.append((status, message.location.get("url", ""), text))
                return
            self.seen.append(f"console error: {text} at {message.location}")
        elif message.type == "warning" and ("Content Security Policy" in text or "Refused" in text):
            self.seen.append(f"console warning: {text} at {message.location}")

    def on_page_error(self, error: PlaywrightError) -> None:
        self.seen.append(f"uncaught exception: {error.message}\n{error.stack or ''}")

    def on_request_failed(self, request: Any) -> None:
        # A navigation cancels what the old page still had in flight (the favicon, a superseded
        # partial update): Chromium reports that as ERR_ABORTED, and it is not a fault.
        if "ERR_ABORTED" in str(request.failure):
            return
        self.seen.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def on_response(self, response: Any) -> None:
        status, url = response.status, response.url
        if status >= 400 and url.startswith(self.origin) and not self._is_expected(status, url):
            self.seen.append(f"HTTP {status} from {url}")

    def report(self) -> list[str]:
        """Everything unexpected, the response-less resource errors included."""
        found = list(self.seen)
        for _status, url, text in self._failed_loads:
            if not url.startswith(self.origin):  # the app's own are judged by on_response
                found.append(f"console error: {text} at {url}")
        return found


@pytest.fixture
def problems(base_url: str) -> Problems:
    """The recorder the ``page`` fixture fills; tests call ``problems.expect(...)``."""
    return Problems(origin=base_url)


def _watched_page(browser: Browser, problems: Problems, viewport: dict[str, int]) -> Any:
    context = browser.new_context(viewport=viewport, base_url=problems.origin)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", problems.on_console)
    page.on("pageerror", problems.on_page_error)
    page.on("requestfailed", problems.on_request_failed)
    page.on("response", problems.on_response)
    return context, page


def _close_and_check(context: Any, problems: Problems) -> None:
    found = problems.report()
    context.close()
    if found:
        pytest.fail(
            "The browser reported problems:\n" + "\n".join(f"- {p}" for p in found),
            pytrace=False,
        )


@pytest.fixture
def page(browser: Browser, problems: Problems) -> Iterator[Page]:
    """A fresh desktop-sized page; any browser problem fails the test."""
    context, page = _watched_page(browser, problems, DESKTOP)
    yield page
    _close_and_check(context, problems)


@pytest.fixture
def phone_page(browser: Browser, problems: Problems) -> Iterator[Page]:
    """A fresh phone-sized (390x844) page, watched like ``page``."""
    context, page = _watched_page(browser, problems, PHONE)
    yield page
    _close_and_check(context, problems)


class Plots:
    """Read what Plotly drew: each figure div keeps its traces on ``.data``."""

    def wait_drawn(self, page: Page, *ids: str) -> None:
        """Wait until every figure in ``ids`` (all on the page when empty) has its traces."""
        page.wait_for_function(
            """ids => {
                const divs = ids.length
                    ? ids.map((id) => document.getElementById(id))
                    : [...document.querySelectorAll(".plot-wrap .plot")];
                return divs.length > 0 && divs.every(
                    (d) => d && Array.isArray(d.data) && d.data.length > 0
                        && d.querySelector(".main-svg"));
            }""",
            arg=list(ids),
        )

    def trace(self, page: Page, fig_id: str, index: int = 0) -> dict[str, Any]:
        """One trace as plotted (x, y, name, marker...)."""
        return page.evaluate(
            "([id, i]) => JSON.parse(JSON.stringify(document.getElementById(id).data[i]))",
            [fig_id, index],
        )

    def traces(self, page: Page, fig_id: str) -> list[dict[str, Any]]:
        """Every trace of a figure, as plotted."""
        return page.evaluate(
            "id => JSON.parse(JSON.stringify(document.getElementById(id).data))", fig_id
        )

    def values(self, page: Page, fig_id: str, key: str = "y", index: int = 0) -> list[Any]:
        """``data[index][key]`` of a figure, e.g. the bar heights."""
        return page.evaluate(
            "([id, i, key]) => Array.from(document.getElementById(id).data[i][key])",
            [fig_id, index, key],
        )

    def wait_for_number(self, page: Page, selector: str, expected: float, tol: float) -> None:
        """Wait until the element's text reads as ``expected`` within ``tol``."""
        try:
            page.wait_for_function(
                """([sel, want, tol]) => {
                    const el = document.querySelector(sel);
                    return el && Math.abs(Number(el.textContent) - want) <= tol;
                }""",
                arg=[selector, expected, tol],
            )
        except PlaywrightTimeoutError:
            text = page.locator(selector).text_content()
            pytest.fail(f"{selector} reads {text!r}, expected {expected} (± {tol})")

    def wait_for_values(
        self,
        page: Page,
        fig_id: str,
        expected: Sequence[float],
        key: str = "y",
        index: int = 0,
        tol: float = 1e-6,
    ) -> None:
        """Wait until ``data[index][key]`` equals ``expected`` within ``tol``, else say how not."""
        want = [float(v) for v in expected]
        try:
            page.wait_for_function(
                """([id, i, key, want, tol]) => {
                    const d = document.getElementById(id);
                    const got = d && d.data && d.data[i] && d.data[i][key];
                    return got && got.length === want.length
                        && want.every((w, j) => Math.abs(got[j] - w) <= tol);
                }""",
                arg=[fig_id, index, key, want, tol],
            )
        except PlaywrightTimeoutError:
            got = self.values(page, fig_id, key, index)
            pytest.fail(f"{fig_id} data[{index}].{key} is {got}, expected {want} (± {tol})")
        got = self.values(page, fig_id, key, index)
        assert all(math.isclose(g, w, abs_tol=tol) for g, w in zip(got, want, strict=True))


@pytest.fixture(scope="session")
def plots() -> Plots:
    return Plots()
