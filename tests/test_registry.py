"""Registry completeness: every live lesson has a page, a JSON twin, its APIs, a snippet that
runs, and a browser test; every lesson of the notes is in the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.lessons.registry import LESSONS, SUBPAGES
from app.web.views import VIEWS

ROOT = Path(__file__).resolve().parent.parent
NOTES = Path(__file__).resolve().parents[2] / "shared" / "curriculum-notes.md"
LIVE = [lesson for lesson in (*LESSONS, *SUBPAGES) if lesson.live]


def test_there_are_eleven_lessons_with_unique_slugs() -> None:
    assert len(LESSONS) == 11
    assert len({lesson.slug for lesson in LESSONS}) == 11


@pytest.mark.skipif(not NOTES.exists(), reason="the shared notes are beside the repo only")
def test_lessons_follow_the_sections_of_the_notes_in_order() -> None:
    headings = re.findall(r"^#{3,4} (.+?):?\s*$", NOTES.read_text(), flags=re.MULTILINE)
    sections = [h.strip().rstrip(":").strip() for h in headings]
    ours = [lesson.section for lesson in LESSONS]
    positions = [sections.index(section) for section in ours]
    assert positions == sorted(positions)


def test_every_live_lesson_has_a_view_and_every_view_a_live_lesson() -> None:
    assert {lesson.slug for lesson in LIVE} == set(VIEWS)


@pytest.mark.parametrize("lesson", LIVE, ids=lambda lesson: lesson.slug)
def test_live_lesson_has_page_twin_apis_snippet_and_browser_test(
    lesson, client: TestClient
) -> None:
    page = client.get(lesson.path)
    assert page.status_code == 200 and 'class="plot-data"' in page.text
    assert client.get(f"/api/lessons/{lesson.slug}/view").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for api in lesson.apis:
        method, path = api.split(" ", 1)
        assert method.lower() in paths[path], api
    view = VIEWS[lesson.slug]
    namespace: dict[str, object] = {}
    exec(
        compile(view.snippet(view.parse({}, client.app.state.settings)), "snippet", "exec"),
        namespace,
    )
    browser_tests = "\n".join(p.read_text() for p in (ROOT / "tests" / "browser").glob("test_*.py"))
    assert lesson.path in browser_tests, f"no browser test opens {lesson.path}"
