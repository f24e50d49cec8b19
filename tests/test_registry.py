"""Registry completeness: every live lesson has a page, a JSON twin, its APIs, a snippet that
runs, and a browser test; every lesson of the notes is in the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.lessons.registry import LESSONS, SUBPAGES
from app.main import create_app
from app.web.views import VIEWS

ROOT = Path(__file__).resolve().parent.parent
NOTES = Path(__file__).resolve().parents[2] / "shared" / "curriculum-notes.md"
ALL = (*LESSONS, *SUBPAGES)  # every page: the eleven lessons and their deeper pages


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


def test_every_lesson_has_a_view_and_every_view_a_lesson() -> None:
    assert {lesson.slug for lesson in ALL} == set(VIEWS)


@pytest.mark.parametrize("lesson", ALL, ids=lambda lesson: lesson.slug)
def test_lesson_has_page_twin_apis_snippet_and_browser_test(
    lesson, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # snippets save their files (model_params.pth, runs/) beside them
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

# The modules of each layer that belong to no one lesson.
SHARED: dict[str, set[str]] = {
    "app/lessons": {
        "__init__",
        "errors",
        "images",
        "registry",
        "runtime",
        "stage_previews",
        "transform_classes",
        "transform_pipeline",
    },
    "app/viz": {"__init__", "common"},
    "app/web/views": {"__init__", "base"},
    "static/js": {
        "app",
        "classes",
        "dom",
        "follow",
        "frames",
        "lesson",
        "me",
        "playground",
        "program",
        "run",
        "runs",
        "values",
    },
}


@pytest.mark.parametrize("lesson", ALL, ids=lambda lesson: lesson.slug)
def test_every_lesson_has_one_module_name_in_every_layer(lesson) -> None:
    name = lesson.slug.replace("-", "_")
    missing = [
        pattern.format(name)
        for pattern in (*SOURCES, *TESTS)
        if not (ROOT / pattern.format(name)).is_file()
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


# ---- a lesson's web module owns its routes ------------------------------------------------------

# API tags that name their lesson by another word (the tags stay as API.md's clients know them).
LESSON_TAGS = {
    "softmax": "softmax_cross_entropy",
    "data": "datasets",
    "checkpoints": "saving_loading",
}
# Where the routes of no one lesson are defined: meta, the lesson pages and their JSON twin, the
# sample pictures, the runs, the learner (/me), the classes.
SHARED_ROUTES = {
    f"app.web.routes.{name}"
    for name in (
        "api",
        "classes",
        "images",
        "me",
        "notebook",
        "pages",
        "playground",
        "runs",
        "run_pages",
    )
}


def route_owner(path: str, tags: list[str]) -> str | None:
    """The lesson a route belongs to: the one its path (``/api/<name>/...``,
    ``/lessons/<name>/...``) or one of its tags names, or None."""
    first, *rest = path.strip("/").split("/")
    named = [rest[0].replace("-", "_")] if first in ("api", "lessons") and rest else []
    named += [LESSON_TAGS.get(tag, tag) for tag in tags]
    owners = {name for name in named if name in NAMES}
    assert len(owners) <= 1, f"{path} names more than one lesson: {sorted(owners)}"
    return owners.pop() if owners else None


def test_a_lessons_routes_are_defined_in_its_web_module_and_api_py_holds_only_meta(
    settings,
) -> None:
    from fastapi import routing

    app = create_app(settings)
    # FastAPI >= 0.165 includes routers lazily: iter_route_contexts yields their routes.
    walk = getattr(routing, "iter_route_contexts", None)
    routes = list(walk(app.routes) if walk else app.routes)
    misplaced = []
    for route in routes:
        path, module = route.path, route.endpoint.__module__
        tags = list(getattr(route, "tags", None) or [])
        owner = route_owner(path, tags)
        if owner is not None:
            home = f"app.web.routes.lessons.{owner}"
        elif path.startswith("/api/") or module.startswith("app.web.routes.lessons."):
            home = "one of " + ", ".join(sorted(SHARED_ROUTES))
            if module in SHARED_ROUTES:
                continue
        else:
            continue  # pages, static files, /docs, /openapi.json
        if module != home:
            misplaced.append(f"{path} ({', '.join(tags)}) is in {module}, not {home}")
    assert not misplaced, "routes outside their lesson's web module:\n" + "\n".join(misplaced)
    owned = {route_owner(r.path, list(getattr(r, "tags", None) or [])) for r in routes} - {None}
    assert owned >= {"tensors", "autograd", "softmax_cross_entropy", "activations", "cnn"}
    meta = [r for r in routes if r.endpoint.__module__ == "app.web.routes.api"]
    assert meta and all(r.tags == ["meta"] for r in meta), [(r.path, r.tags) for r in meta]
    modules = {p.stem for p in (ROOT / "app/web/routes/lessons").glob("*.py")} - {"__init__"}
    assert modules <= NAMES, f"app/web/routes/lessons has non-lesson modules: {modules - NAMES}"
