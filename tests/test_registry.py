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


# ---- one module name per lesson, in every layer ----------------------------------------------

ALL = (*LESSONS, *SUBPAGES)
NAMES = {lesson.slug.replace("-", "_") for lesson in ALL}

# Where each lesson's pieces live, by its name (the slug with underscores).
SOURCES = (
    "app/lessons/{}.py",  # the compute, with torch
    "app/viz/{}.py",  # the Plotly figures, from the compute's plain numbers
    "app/web/views/{}.py",  # the page's LessonView
    "static/js/{}.js",  # the page's own script
    "templates/lessons/{}.html",  # the page
    "templates/lessons/_{}.html",  # the part of it that changes with the controls
)
TESTS = (
    "tests/lessons/test_{}.py",
    "tests/viz/test_{}.py",
    "tests/web/test_{}.py",
    "tests/browser/test_{}.py",
)

# Lessons whose page needs no script of its own yet: the activations page's arrow keys are still
# bound in lesson.js (issue 12 moves per-lesson key bindings into each lesson's script).
NO_SCRIPT_YET = {"activations"}

# The modules of each layer that belong to no one lesson.
SHARED: dict[str, set[str]] = {
    "app/lessons": {"__init__", "errors", "images", "registry", "runtime"},
    "app/viz": {"__init__", "common"},
    "app/web/views": {"__init__", "base"},
    "static/js": {"app", "dom", "follow", "lesson", "run", "runs", "values"},
}


@pytest.mark.parametrize("lesson", ALL, ids=lambda lesson: lesson.slug)
def test_every_lesson_has_one_module_name_in_every_layer(lesson) -> None:
    name = lesson.slug.replace("-", "_")
    missing = [
        pattern.format(name)
        for pattern in (*SOURCES, *TESTS)
        if not (ROOT / pattern.format(name)).is_file()
        and not (name in NO_SCRIPT_YET and pattern.startswith("static/js/"))
    ]
    assert not missing, f"lesson {lesson.slug!r} ({name}) lacks: {', '.join(missing)}"


@pytest.mark.parametrize("folder", sorted(SHARED))
def test_every_module_is_a_lesson_or_shared(folder: str) -> None:
    suffix = ".js" if folder.startswith("static") else ".py"
    stems = {path.stem for path in (ROOT / folder).glob(f"*{suffix}")}
    strays = sorted(stems - NAMES - SHARED[folder])
    assert not strays, (
        f"{folder} has modules that are neither a lesson nor shared: "
        f"{', '.join(f'{folder}/{stem}{suffix}' for stem in strays)}; rename them to their "
        f"lesson's name ({', '.join(sorted(NAMES))}) or add them to SHARED"
    )
    gone = sorted(SHARED[folder] - stems)
    assert not gone, f"SHARED lists modules {folder} no longer has: {', '.join(gone)}"
