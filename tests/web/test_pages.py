"""Pages, static files and errors through the app."""

from __future__ import annotations

import gzip
import re

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.lessons.registry import LESSONS


def test_home_lists_every_lesson_in_the_notes_order(client: TestClient) -> None:
    html = client.get("/").text
    positions = [html.index(f'href="{lesson.path}"') for lesson in LESSONS]
    assert positions == sorted(positions)
    assert html.count("Open the lesson") == len(LESSONS)


def test_every_listed_lesson_is_a_page(client: TestClient) -> None:
    for lesson in LESSONS:
        r = client.get(lesson.path)
        assert r.status_code == 200, lesson.slug
        assert lesson.title in r.text, lesson.slug


def test_a_slug_with_no_lesson_is_a_404_that_names_it(client: TestClient) -> None:
    r = client.get("/lessons/no-such-lesson", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "no-such-lesson" in r.text


def html_text(html: str) -> str:
    """The page's text as a reader sees it: tags dropped, entities decoded."""
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", "", html))


def test_bad_page_state_is_a_422_page_that_names_the_field(client: TestClient) -> None:
    r = client.get("/lessons/softmax-cross-entropy?temperature=hot")
    assert r.status_code == 422
    assert "text/html" in r.headers["content-type"] and "temperature must be a number" in r.text
    r = client.get("/lessons/activations?depth=100000")
    assert r.status_code == 422 and "max_depth" in r.text


def test_unknown_pages_get_an_html_404_and_api_paths_get_json(client: TestClient) -> None:
    page = client.get("/no/such/page")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "Page not found" in page.text
    api = client.get("/api/nothing-here")
    assert api.status_code == 404 and api.json()["detail"]


def test_static_assets_are_fingerprinted_cached_forever_and_gzipped(client: TestClient) -> None:
    html = client.get("/lessons/activations").text
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any("vendor/plotly.min." in u for u in urls)
    for url in urls:
        assert re.search(r"\.[0-9a-f]{10}\.\w+$", url), url
        r = client.get(url, headers={"accept-encoding": "gzip"})
        assert r.status_code == 200
        assert "immutable" in r.headers["cache-control"]
        assert r.headers["content-encoding"] == "gzip"


def test_plotly_is_served_from_the_plotly_package(client: TestClient) -> None:
    from app.web.assets import PLOTLY_JS

    html = client.get("/lessons/activations").text
    url = re.search(r'src="(/static/vendor/plotly\.min\.[0-9a-f]+\.js)"', html)
    assert url
    r = client.get(url.group(1), headers={"accept-encoding": "identity"})
    assert r.content == PLOTLY_JS.read_bytes()  # the file inside the plotly package


def test_an_unfingerprinted_asset_is_revalidated_and_unzips_to_the_file(
    client: TestClient,
) -> None:
    raw = client.get("/static/css/app.css", headers={"accept-encoding": "identity"})
    assert raw.headers["cache-control"] == "no-cache"
    assert raw.content.startswith(b"/* PyTorch Explorer")
    with client.stream("GET", "/static/css/app.css", headers={"accept-encoding": "gzip"}) as r:
        assert r.headers["content-encoding"] == "gzip"
        assert gzip.decompress(b"".join(r.iter_raw())) == raw.content
    etag = raw.headers["etag"]
    assert client.get("/static/css/app.css", headers={"if-none-match": etag}).status_code == 304


def test_pages_are_gzipped_and_carry_security_headers(client: TestClient) -> None:
    r = client.get("/lessons/softmax-cross-entropy", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    csp = r.headers["content-security-policy"]
    script_src = csp.split("script-src")[1].split(";")[0]
    assert "'self'" in script_src and "unsafe-inline" not in script_src
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"


def test_no_page_loads_anything_from_another_host(client: TestClient) -> None:
    for path in ["/", *(lesson.path for lesson in LESSONS)]:
        html = client.get(path).text
        assert not re.search(r'(?:src|href)="(?:https?:)?//', html), path


def test_docs_lists_every_route_with_its_models_and_loads_nothing_remote(
    client: TestClient,
) -> None:
    schema = client.get("/openapi.json").json()
    html = client.get("/docs").text
    for path, item in schema["paths"].items():
        for method in item:
            assert f"{method.upper()}</span> <code>{path}</code>" in html, (method, path)
    assert "Request body (JSON)" in html and "Response (JSON)" in html
    assert '"logits": {' in html_text(html)  # models are inlined, not only named
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    assert "<script>" not in html  # nothing inline: the CSP would refuse it


def test_warming_builds_every_lessons_default_view_without_an_error(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from app.lessons import transfer_learning as transfer
    from app.web.routes import pages

    with caplog.at_level("ERROR", logger="app.pages"):
        pages.LessonWarmer(settings, None).join(timeout=240)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert transfer.sweep.cache_info().currsize == 1
    assert transfer.example_run.cache_info().currsize == 3
