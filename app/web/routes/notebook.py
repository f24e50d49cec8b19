"""``POST /api/notebook``: any program as a Jupyter notebook to take home (issue 14, item 5), and
``GET /api/lessons/{slug}/notebook``: a lesson's own program at the page's values, the same way.

The program runs in a sandbox worker like any other (through the program gate, under the same
limits), and the worker writes the notebook (``app.sandbox.notebook``): the web process only
hands the bytes on, as a download.
"""

from __future__ import annotations

import re

from fastapi import Request, Response
from pydantic import Field
from starlette.exceptions import HTTPException

from app.lessons.registry import BY_SLUG
from app.web.deps import ProgramGateDep, SettingsDep
from app.web.routes.programs import admitted, program_router
from app.web.schemas import EXAMPLE_PROGRAM, JsonBody, error_responses
from app.web.views import VIEWS

router = program_router()

MEDIA_TYPE = "application/x-ipynb+json"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class NotebookRequest(JsonBody):
    code: str = Field(
        description="the program, as POST /api/tensors/run takes it",
        examples=[EXAMPLE_PROGRAM],
    )
    title: str | None = Field(
        default=None,
        max_length=80,
        description="the notebook's title (its first cell) and file name; default 'program'",
    )


def file_name(title: str | None) -> str:
    """A safe file name for the download: the title's letters, digits, '-' and '_'."""
    stem = _UNSAFE.sub("-", title or "").strip("-")[:60]
    return f"{stem or 'program'}.ipynb"


@router.post(
    "/api/notebook",
    response_class=Response,
    responses={200: {"content": {MEDIA_TYPE: {}}, "description": "an nbformat 4 notebook"}},
)
async def notebook(
    body: NotebookRequest, request: Request, settings: SettingsDep, gate: ProgramGateDep
) -> Response:
    """Run the program and answer it as a notebook that runs unchanged in plain Python: a setup
    cell (the sandbox's pre-bound imports and its seed, and any shipped data file it reads),
    then its code in cells (at ``# %%`` markers, else at blank lines between top-level
    statements), each with what it printed, the figures it drew and its error. A program the
    sandbox refuses is a 422 naming the line and the reason, as for POST /api/tensors/run."""
    title = (body.title or "").strip() or "program"
    answer = await admitted(request, gate, settings, "notebook", body.code, title, "none")
    return Response(
        content=answer,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{file_name(body.title)}"'},
    )


@router.get(
    "/api/lessons/{slug}/notebook",
    response_class=Response,
    responses={
        200: {"content": {MEDIA_TYPE: {}}, "description": "an nbformat 4 notebook"},
        **error_responses(404, 422),
    },
)
async def lesson_notebook(
    slug: str, request: Request, settings: SettingsDep, gate: ProgramGateDep
) -> Response:
    """The lesson's "try it yourself" program at the values the query gives (the page's own
    query string, as its "Download notebook" link carries it) as a notebook, run and written as
    POST /api/notebook does, named after the lesson (``<slug>.ipynb``). An unknown lesson is a
    404; a query the lesson's page refuses is its 422."""
    lesson, view = BY_SLUG.get(slug), VIEWS.get(slug)
    if lesson is None or view is None:
        raise HTTPException(404, f"There is no lesson called {slug[:80]!r}.")
    code = view.program(view.parse(request.query_params, settings))
    answer = await admitted(request, gate, settings, "notebook", code, lesson.title, "none")
    return Response(
        content=answer,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{file_name(slug)}"'},
    )
