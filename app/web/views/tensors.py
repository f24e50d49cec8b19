"""The Tensor basics page: a step-through runner for the notes' examples and the learner's code.

The page handler runs the program in the sandbox's worker pool, so the first view shows the
values before any JavaScript runs; the browser then steps through the embedded trace by itself
and sends edited code to POST /api/tensors/run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.lessons import tensors
from app.sandbox import SandboxRefused, run_program_isolated
from app.sandbox.isolation import SandboxBusy
from app.viz import tensors as tensor_figures
from app.web.forms import params_from_query
from app.web.routes import programs
from app.web.views.base import LessonView, source

# Longest learner program kept in the page's URL (characters once URL-encoded); longer code still
# runs, but a shared link then opens the example. Browsers and proxies cut URLs near 8 KB.
MAX_URL_CODE_CHARS = 6_000


def runner(settings: Settings) -> tensors.Runner:
    """The sandbox as the lesson wants it: code in, trace out, a refusal as data (shown inline)."""

    def run(code: str) -> dict[str, Any]:
        programs.ensure_pool(settings)
        try:
            return run_program_isolated(code, programs.sandbox_limits(settings), "run", None)
        except SandboxBusy:
            raise  # 429 page: nothing about the program to show
        except SandboxRefused as refused:
            return {"steps": [], "error": None, "refused": {"line": refused.line,
                                                           "message": str(refused)}}  # fmt: skip

    return run


def _parse(query: Mapping[str, str], settings: Settings) -> tensors.TensorParams:
    params = params_from_query(tensors.TensorParams(), query, {})
    tensors.check_example(params.example)
    return params


def _form(params: tensors.TensorParams) -> dict[str, Any]:
    form = asdict(params)
    form["program"] = tensors.program(params)
    form["examples"] = {name: asdict(example) for name, example in tensors.EXAMPLES.items()}
    form["max_url_code_chars"] = MAX_URL_CODE_CHARS
    return form


VIEW = LessonView(
    slug="tensors",
    parse=_parse,
    explore=lambda params, settings: tensors.explore(params, runner(settings)),
    figures=tensor_figures.figures,
    code={
        "step": source(
            tensors.step_view,
            tensors.changed_variables,
            tensors.shared_storage,
            tensors.heatmap_variable,
        ),
    },
    snippet=tensors.snippet,
    form=_form,
)
