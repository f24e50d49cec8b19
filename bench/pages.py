"""What a page weighs over the wire, first visit and repeat visit, from the real server.

With Chromium (the default), each page gets a fresh browser context (empty cache): one
navigation, then a reload. Bytes are Chrome's own count through the DevTools protocol:
the sum of ``Network.loadingFinished.encodedDataLength`` over the page's http requests, which is
what came over the socket (compressed bodies plus response headers). The first-visit row's
baseline is the decoded size of the same responses (``Network.dataReceived.dataLength``), so its
ratio is what compression saves; the repeat row's baseline is the first visit.

Without Chromium (``--no-browser``, or none installed) an httpx simulation stands in: the HTML,
then every ``<script src>``, ``<link href>`` and ``<img src>`` it names, gzip accepted; bytes are
compressed bodies plus an approximate header size (status line and ``name: value`` lines). Its
repeat visit refetches the HTML and revalidates, with ``If-None-Match``, every asset whose
``Cache-Control`` is not long-lived; it cannot see what scripts fetch by themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from bench.common import CHROMIUM, CHROMIUM_ARGS, Context, Row, chromium_available, serve

GROUP = "page weight over the wire (bytes)"


@dataclass
class Request:
    """One http request of a page load."""

    path: str
    status: int = 0
    wire: int = 0  # compressed body + headers, as received
    decoded: int = 0  # body after decompression
    cached: bool = False  # answered by the browser's memory or disk cache
    done: bool = False  # loading finished or failed


@dataclass
class Visit:
    """The requests of one page load."""

    requests: list[Request] = field(default_factory=list)

    @property
    def wire(self) -> int:
        return sum(r.wire for r in self.requests)

    @property
    def decoded(self) -> int:
        return sum(r.decoded for r in self.requests)

    def summary(self) -> str:
        parts = [f"{len(self.requests)} req"]
        cached = sum(r.cached for r in self.requests)
        not_modified = sum(r.status == 304 for r in self.requests)
        if cached:
            parts.append(f"{cached} from cache")
        if not_modified:
            parts.append(f"{not_modified}x 304")
        return ", ".join(parts)

    def detail(self) -> list[list[object]]:
        """Per request: path, status, wire bytes, from cache; for results.json."""
        return [[r.path, r.status, r.wire, r.cached] for r in self.requests]


def pages_of(base: str) -> list[str]:
    """Home and every lesson page, as the app lists them."""
    lessons = httpx.get(f"{base}/api/lessons", timeout=30).json()
    return ["/", *(lesson["path"] for lesson in lessons)]


# ---- Chromium -----------------------------------------------------------------------------------


class NetworkLog:
    """Collects the DevTools Network events of one page load, http(s) requests only."""

    def __init__(self) -> None:
        self.by_id: dict[str, Request] = {}
        self.visit = Visit()

    def reset(self) -> Visit:
        done, self.visit, self.by_id = self.visit, Visit(), {}
        return done

    def will_send(self, event: dict[str, Any]) -> None:
        url = event["request"]["url"]
        if url.startswith("http") and event["requestId"] not in self.by_id:
            self.by_id[event["requestId"]] = request = Request(urlsplit(url).path)
            self.visit.requests.append(request)

    def from_cache(self, event: dict[str, Any]) -> None:
        if request := self.by_id.get(event["requestId"]):
            request.cached = True

    def response(self, event: dict[str, Any]) -> None:
        if request := self.by_id.get(event["requestId"]):
            response = event["response"]
            request.status = int(response["status"])
            request.cached |= bool(
                response.get("fromDiskCache") or response.get("fromPrefetchCache")
            )

    def data(self, event: dict[str, Any]) -> None:
        if request := self.by_id.get(event["requestId"]):
            request.decoded += int(event["dataLength"])

    def finished(self, event: dict[str, Any]) -> None:
        if request := self.by_id.get(event["requestId"]):
            request.wire = int(event["encodedDataLength"])
            request.done = True

    def failed(self, event: dict[str, Any]) -> None:
        if request := self.by_id.get(event["requestId"]):
            request.done = True

    def settled(self) -> bool:
        return all(request.done for request in self.visit.requests)


def browser_visits(base: str, paths: list[str]) -> dict[str, tuple[Visit, Visit]]:
    """First visit and reload of each page, each page in a fresh context (empty cache)."""
    from playwright.sync_api import sync_playwright

    out: dict[str, tuple[Visit, Visit]] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path in paths:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                cdp = context.new_cdp_session(page)
                log = NetworkLog()
                cdp.on("Network.requestWillBeSent", log.will_send)
                cdp.on("Network.requestServedFromCache", log.from_cache)
                cdp.on("Network.responseReceived", log.response)
                cdp.on("Network.dataReceived", log.data)
                cdp.on("Network.loadingFinished", log.finished)
                cdp.on("Network.loadingFailed", log.failed)
                cdp.send("Network.enable")
                page.goto(base + path, wait_until="load")
                _settle(page, log)
                first = log.reset()
                page.reload(wait_until="load")
                _settle(page, log)
                repeat = log.reset()
                if errors:
                    raise RuntimeError(f"{path}: page errors {errors}")
                context.close()
                out[path] = (first, repeat)
        finally:
            browser.close()
    return out


def _settle(page: Any, log: NetworkLog, quiet_ms: int = 100, timeout_ms: int = 10_000) -> None:
    """Wait until every request seen has finished and none has started for ``quiet_ms``.

    Cheaper than Playwright's ``networkidle`` (500 ms of silence per load), and exact here: the
    pages fetch nothing after ``load`` until someone touches a control.
    """
    waited, quiet, seen = 0, 0, -1
    while waited < timeout_ms:
        count = len(log.visit.requests)
        quiet = quiet + 25 if log.settled() and count == seen else 0
        if quiet >= quiet_ms:
            return
        seen = count
        page.wait_for_timeout(25)
        waited += 25
    raise TimeoutError(f"requests still loading after {timeout_ms} ms: {log.visit.detail()}")


# ---- httpx simulation ---------------------------------------------------------------------------


class AssetLinks(HTMLParser):
    """Every ``<script src>``, ``<link href>`` and ``<img src>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value and not value.startswith("data:"):
                self.links.append(value)


LONG_LIVED = re.compile(r"immutable|max-age=(\d{5,})")


def header_bytes(response: httpx.Response) -> int:
    """Approximate HTTP/1.1 header size: the status line and ``name: value\\r\\n`` lines."""
    status = len(f"HTTP/1.1 {response.status_code} {response.reason_phrase}\r\n")
    return status + sum(len(k) + len(v) + 4 for k, v in response.headers.raw) + 2


def fetch(client: httpx.Client, url: str, visit: Visit, etag: str | None = None) -> httpx.Response:
    headers = {"If-None-Match": etag} if etag else {}
    response = client.get(url, headers=headers)
    wire = response.num_bytes_downloaded + header_bytes(response)
    request = Request(urlsplit(url).path, response.status_code, wire, len(response.content))
    visit.requests.append(request)
    return response


def simulated_visits(base: str, paths: list[str]) -> dict[str, tuple[Visit, Visit]]:
    """First visit and repeat visit of each page, as a cache-respecting client would make them."""
    out: dict[str, tuple[Visit, Visit]] = {}
    with httpx.Client(headers={"Accept-Encoding": "gzip"}, timeout=30) as client:
        for path in paths:
            first, repeat = Visit(), Visit()
            page = fetch(client, base + path, first)
            parser = AssetLinks()
            parser.feed(page.text)
            assets = [urljoin(base + path, link) for link in dict.fromkeys(parser.links)]
            cached = {url: fetch(client, url, first) for url in assets}
            fetch(client, base + path, repeat)
            for url, response in cached.items():
                if LONG_LIVED.search(response.headers.get("cache-control", "")):
                    repeat.requests.append(Request(urlsplit(url).path, 200, cached=True))
                else:
                    fetch(client, url, repeat, response.headers.get("etag"))
            out[path] = (first, repeat)
    return out


# ---- rows ---------------------------------------------------------------------------------------


def run(ctx: Context) -> list[Row]:
    browser = ctx.browser and chromium_available()
    how = "Chromium CDP encodedDataLength" if browser else "httpx simulation, headers approx."
    with serve(ctx.tmp / "data-pages") as base:
        paths = pages_of(base)
        visits = browser_visits(base, paths) if browser else simulated_visits(base, paths)
    rows: list[Row] = []
    for path, (first, repeat) in visits.items():
        rows += _rows(path, first, repeat, how)
    return rows


def _rows(name: str, first: Visit, repeat: Visit, how: str) -> list[Row]:
    return [
        Row(
            GROUP,
            f"{name} first visit",
            "B",
            first.wire,
            first.decoded,
            notes=f"{first.summary()}; bare = decoded size; {how}",
            extra={"requests": first.detail()},
        ),
        Row(
            GROUP,
            f"{name} repeat visit",
            "B",
            repeat.wire,
            first.wire,
            notes=f"{repeat.summary()}; bare = first visit",
            extra={"requests": repeat.detail()},
        ),
    ]
