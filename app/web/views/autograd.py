"""The gradient-calculation page: learner programs run in the sandbox's worker processes.

Programs go through the app's program gate as the requesting client. The learner's program gets
a quarter of max_answer_bytes for its graph and backward steps (``GRAPH_SHARE``): the page draws
each backward step and the graph's values as HTML and figures around them, so the page as a
whole stays within the budget too.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import textwrap
import threading
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Literal

from app.config import Settings
from app.lessons import autograd
from app.sandbox import SandboxLimits, SandboxRefused, run_program_isolated
from app.sandbox import graph as sandbox_graph
from app.sandbox.isolation import SandboxBusy
from app.viz import autograd as autograd_figures
from app.web.deps import limits_from
from app.web.forms import params_from_query
from app.web.routes import programs
from app.web.views.base import LessonView, PageContext, source

# The learner's program's answer gets this share of max_answer_bytes (the page around it: the
# story of every backward step, the graph figure, the lesson's other sections).
GRAPH_SHARE = 4


def refused(exc: SandboxRefused, kind: str) -> dict[str, Any]:
    """A program the sandbox would not run, as an empty result whose error says why."""
    error = {"line": exc.line, "message": exc.reason}
    if kind == "run":
        return {"steps": [], "error": error, "refused": True}
    return {
        "nodes": [], "edges": [], "backward_steps": [], "variables": {}, "error": error,
        "refused": True, "truncated": False, "stdout": "",
    }  # fmt: skip


# The page's own fixed programs' results, by (code, kind, backward, limits): they never change.
_FIXED: dict[tuple[Any, ...], dict[str, Any]] = {}
_FIXED_SIZE = 64
_fixed_lock = threading.Lock()


def _lesson_program(
    code: str,
    kind: Literal["run", "graph"],
    backward: str | None,
    limits: SandboxLimits,
    context: PageContext,
) -> dict[str, Any]:
    """A fixed program's result, run once (through the gate only when it is not known yet)."""
    key = (code, kind, backward, limits)
    with _fixed_lock:
        known = _FIXED.get(key)
    if known is None:
        known = context.run_program(run_program_isolated, code, limits, kind, backward)
        with _fixed_lock:
            if len(_FIXED) >= _FIXED_SIZE:
                _FIXED.clear()
            _FIXED[key] = known
    return copy.deepcopy(known)


def runner(settings: Settings, context: PageContext) -> autograd.Runner:
    """Run programs in the sandbox's workers; the page's own fixed programs are run once."""
    full = programs.sandbox_limits(settings)
    limits = dataclasses.replace(full, max_answer_bytes=full.max_answer_bytes // GRAPH_SHARE)
    programs.ensure_pool(settings)

    def run(code: str, kind: Literal["run", "graph"], backward: str | None) -> dict[str, Any]:
        try:
            if autograd.is_lesson_program(code):
                return _lesson_program(code, kind, backward, limits, context)
            return context.run_program(run_program_isolated, code, limits, kind, backward)
        except SandboxBusy:
            raise  # 429: try again in a moment
        except SandboxRefused as exc:  # shown beside the editor, so the learner can fix it
            return refused(exc, kind)

    return run


def _parse(query: Mapping[str, str], settings: Settings) -> autograd.AutogradParams:
    return params_from_query(autograd.AutogradParams(), query, {})


def _form(params: autograd.AutogradParams) -> dict[str, Any]:
    form = asdict(params)
    # The query string of this view without the replay step: the replay's links add it.
    state = {k: v for k, v in form.items() if k != "step" and v is not None}
    if not params.code.strip():
        state.pop("code")
    form["state"] = state
    form["examples"] = [(name, example.title) for name, example in autograd.EXAMPLES.items()]
    return form


VIEW = LessonView(
    slug="autograd",
    parse=_parse,
    explore=lambda params, settings, context: autograd.explore(
        params,
        limits_from(settings, autograd.AutogradLimits, "autograd_"),
        runner(settings, context),
    ),
    figures=autograd_figures.figures,
    code={
        "graph": "\n\n".join(
            [
                textwrap.dedent(inspect.getsource(sandbox_graph._GraphBuilder.walk)).rstrip(),
                source(sandbox_graph._run_backward, autograd.backward_story),
            ]
        ),
        "chain": source(autograd.chain_rule, autograd.notes_z, autograd.finite_difference),
        "accumulation": source(autograd.grad_after_each_statement),
        "no_grad": source(autograd.no_grad_comparison, autograd.loose_tensors),
        "descent": source(autograd.gradient_descent),
    },
    snippet=autograd.snippet,
    form=_form,
    uses_context=True,
)
