"""Every lesson steps in the playground and goes home as a notebook (issue 14, items 4 and 5).

For each lesson of the registry, at its default params and at the other set
``tests/lessons/test_snippets.py`` uses: the lesson's program (``LessonView.program``: its
snippet, or the Transforms lesson's playground program) runs in the sandbox, in this process
(``run_program`` under the app's limits but its clock, ``steps="none"``), to its end with no
error, and prints exactly what plain Python prints for it. Plain Python is one fresh
``sys.executable`` for every program (``tests/sandbox/corpus_runner.py``: each in a temporary
folder of its own, from the sandbox's seed, one torch thread), started first so that it runs
beside the sandbox runs. The Transforms program needs
torchvision, which this machine's CPU PyTorch cannot load, so it must print what the lesson's
snippet prints in plain Python: the snippet whose numbers test_snippets checks against the page.

The page's "Step through it" link decodes to exactly that program, and its "Download notebook"
link (GET /api/lessons/{slug}/notebook) answers a notebook nbformat accepts, whose code cells are
the program and whose outputs are what plain Python printed.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import nbformat
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.config import Settings
from app.lessons.images import sample_image
from app.lessons.registry import LESSONS, SUBPAGES
from app.lessons.transform_classes import PICTURES
from app.main import create_app
from app.sandbox import run_program
from app.sandbox.notebook import SETUP
from app.web.code_url import decode_code
from app.web.routes.programs import sandbox_limits, warm_sandbox
from app.web.views import VIEWS
from tests.lessons.test_snippets import BY_SLUG, program_output

RUNNER = Path(__file__).resolve().parents[1] / "sandbox" / "corpus_runner.py"
PLAIN_TIMEOUT_S = 240  # every program once in plain Python: about 25 s on two cores
# The in-process runs check every limit of the app but its clock (program_max_seconds, 5 s): the
# heaviest programs (tracking, transfer learning) take 2-3 s of it on an idle machine, and this
# file runs beside plain Python and whatever else the test run does. The notebook tests run at
# defaults in a sandbox worker under the app's own clock.
CLOCK_S = 60.0
SLUGS = [lesson.slug for lesson in (*LESSONS, *SUBPAGES)]
# The Tensors page steps through its own editor's program and has its own Download notebook: the
# snippet's links would show the example, not what the learner typed.
NO_LINKS = {"tensors"}
# Lessons whose program needs a library this machine cannot load: plain Python runs the snippet.
PLAIN_SNIPPET = {"transforms"}

Case = tuple[str, str]  # (slug, "default" or "other")
CASES = [(slug, which) for slug in SLUGS for which in ("default", "other")]


def query_of(case: Case) -> dict[str, str]:
    slug, which = case
    return {} if which == "default" else BY_SLUG[slug].other


def program(settings: Settings, case: Case) -> str:
    view = VIEWS[case[0]]
    return view.program(view.parse(query_of(case), settings))


def plain_program(settings: Settings, case: Case) -> str:
    """What plain Python runs for the case: the program, or the snippet (``PLAIN_SNIPPET``)."""
    if case[0] not in PLAIN_SNIPPET:
        return program(settings, case)
    view = VIEWS[case[0]]
    return view.snippet(view.parse(query_of(case), settings))


def nonblank(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- plain Python, in the background ------------------------------------------------------------


@dataclass
class Plain:
    """The corpus runner over every case's program, started at once; ``stdout`` waits for it."""

    process: subprocess.Popen[str]
    out: Path
    names: dict[Case, str]
    results: dict[str, Any] = field(default_factory=dict)

    def stdout(self, case: Case) -> str:
        if not self.results:
            _, stderr = self.process.communicate(timeout=PLAIN_TIMEOUT_S)
            assert self.process.returncode == 0, stderr[-3000:]
            self.results.update(json.loads(self.out.read_text()))
        result = self.results[self.names[case]]
        assert result["error"] is None, f"{case} failed in plain Python: {result['error']}"
        return str(result["stdout"])


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"), warm_lessons=False)


@pytest.fixture(scope="module")
def plain(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plain]:
    folder = tmp_path_factory.mktemp("programs")
    names: dict[Case, str] = {}
    for case in CASES:
        names[case] = f"{case[0].replace('-', '_')}_{case[1]}.py"
        (folder / names[case]).write_text(plain_program(settings, case))
    out = folder / "results.json"
    scripts = [str(folder / name) for name in names.values()]
    process = subprocess.Popen(
        [sys.executable, str(RUNNER), "--out", str(out), *scripts],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(settings.torch_threads)},
    )
    warm_sandbox(settings)  # the notebooks' workers start meanwhile too
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.torch_threads)  # the sandbox worker's one thread
    try:
        yield Plain(process, out, names)
    finally:
        torch.set_num_threads(threads)
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def app_client(settings: Settings, plain: Plain) -> Iterator[TestClient]:
    """The app; it asks for ``plain`` first so that plain Python runs while the pages render."""
    with TestClient(create_app(settings)) as client:
        yield client


def test_every_lesson_of_the_registry_has_its_cases() -> None:
    assert set(SLUGS) == set(VIEWS) == set(BY_SLUG)
    assert all(BY_SLUG[slug].other for slug in SLUGS), "each lesson needs a second set of params"


# -- the page's links -----------------------------------------------------------------------------


def link(page: str, element_id: str) -> str:
    found = re.search(rf'<a [^>]*id="{element_id}" href="([^"]*)"', page)
    assert found, f"no #{element_id} link on the page"
    return html.unescape(found.group(1))


def check_links(page: str, settings: Settings, case: Case) -> None:
    slug = case[0]
    url = urlsplit(link(page, "lesson-step-through"))
    assert url.path == "/playground"
    values = parse_qs(url.query)
    assert values["from"] == [slug]
    assert decode_code(values["code"][0], settings.program_max_code_chars) == program(
        settings, case
    )
    notebook = urlsplit(link(page, "lesson-notebook"))
    assert notebook.path == f"/api/lessons/{slug}/notebook"
    assert {k: v[0] for k, v in parse_qs(notebook.query).items()} == query_of(case)


@pytest.mark.parametrize("slug", [s for s in SLUGS if s not in NO_LINKS])
def test_the_pages_links_open_its_program_in_the_playground_and_as_a_notebook(
    slug: str, settings: Settings, app_client: TestClient
) -> None:
    page = app_client.get(f"/lessons/{slug}")
    assert page.status_code == 200, page.text[:500]
    check_links(page.text, settings, (slug, "default"))


# One lesson per template that holds the links (_snippet.html, and the partials that include
# _program_links.html themselves), at its other params: the part the controls re-render.
@pytest.mark.parametrize("slug", ["softmax-cross-entropy", "tracking", "cnn-feature-maps"])
def test_the_partial_carries_the_links_of_the_new_values(
    slug: str, settings: Settings, app_client: TestClient
) -> None:
    partial = app_client.get(f"/lessons/{slug}/partial", params=BY_SLUG[slug].other)
    assert partial.status_code == 200, partial.text[:500]
    check_links(partial.text, settings, (slug, "other"))


def test_the_tensors_page_links_its_program_to_the_playground_and_keeps_its_notebook(
    settings: Settings, app_client: TestClient
) -> None:
    # Its own Run row has Download notebook (of the editor's code); the page's script points the
    # link at the editor's program and step as the learner steps (tensors.js pointPlayground).
    page = app_client.get("/lessons/tensors")
    url = urlsplit(link(page.text, "lesson-step-through"))
    values = parse_qs(url.query)
    assert url.path == "/playground" and values["from"] == ["tensors"]
    code = decode_code(values["code"][0], settings.program_max_code_chars)
    assert code == program(settings, ("tensors", "default"))
    assert 'id="download-notebook"' in page.text and 'id="lesson-notebook"' not in page.text


# -- the program in the sandbox -------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[f"{s}-{w}" for s, w in CASES])
def test_the_lessons_program_runs_to_its_end_in_the_sandbox_as_in_plain_python(
    case: Case, settings: Settings, plain: Plain
) -> None:
    code = program(settings, case)
    limits = replace(sandbox_limits(settings), max_seconds=CLOCK_S)
    answer = run_program(code, limits, steps="none")
    assert answer["error"] is None, f"{answer['error']}\n--- the program:\n{code}"
    assert not answer["truncated"]
    assert program_output(answer) == plain.stdout(case)


# -- the notebook ---------------------------------------------------------------------------------


def program_cells(notebook: Any) -> list[Any]:
    """The code cells after the setup cell (and the shipped data files' cell, if any)."""
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert cells[0].source == SETUP.rstrip("\n")
    cells = cells[1:]
    if cells and cells[0].source.startswith("# The sandbox ships these data files"):
        cells = cells[1:]
    return cells


@pytest.mark.parametrize("slug", SLUGS)
def test_the_lessons_notebook_holds_its_program_and_what_it_printed(
    slug: str, settings: Settings, app_client: TestClient, plain: Plain
) -> None:
    r = app_client.get(f"/api/lessons/{slug}/notebook")
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("application/x-ipynb+json")
    assert r.headers["content-disposition"] == f'attachment; filename="{slug}.ipynb"'
    notebook = nbformat.reads(r.text, as_version=4)
    nbformat.validate(notebook)
    cells = program_cells(notebook)
    code = program(settings, (slug, "default"))
    assert nonblank("\n".join(cell.source for cell in cells)) == nonblank(code)
    outputs = [output for cell in cells for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.text for o in outputs if o.output_type == "stream")
    assert printed == plain.stdout((slug, "default"))


def test_the_transforms_notebook_writes_the_pictures_its_program_reads(
    app_client: TestClient, tmp_path: Path
) -> None:
    notebook = nbformat.reads(app_client.get("/api/lessons/transforms/notebook").text, 4)
    data = next(c for c in notebook.cells if c.source.startswith("# The sandbox ships these"))
    done = subprocess.run([sys.executable, "-c", data.source], cwd=tmp_path, capture_output=True)
    assert done.returncode == 0, done.stderr
    for name, _ in PICTURES:
        written = np.load(tmp_path / "data" / "pictures" / f"{name}.npy")
        assert np.array_equal(written, np.asarray(sample_image(name)))


def test_an_unknown_lesson_is_a_404_and_a_bad_query_the_lessons_own_422(
    app_client: TestClient,
) -> None:
    missing = app_client.get("/api/lessons/no-such-lesson/notebook")
    assert missing.status_code == 404
    assert "no-such-lesson" in missing.json()["detail"]
    bad: Mapping[str, str] = {"stride": "abc"}
    refused = app_client.get("/api/lessons/cnn/notebook", params=bad)
    twin = app_client.get("/api/lessons/cnn/view", params=bad)
    assert refused.status_code == twin.status_code == 422
    assert refused.json()["detail"] == twin.json()["detail"]
    assert "stride" in refused.json()["detail"]
