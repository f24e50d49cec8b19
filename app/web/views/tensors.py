"""The Tensor basics page: a step-through runner for the notes' examples and the learner's code.

The page handler runs the program in the sandbox's worker pool (through the app's program gate,
as the requesting client), so the first view shows the values before any JavaScript runs; the
browser then steps through the embedded trace by itself and sends edited code to
POST /api/tensors/run.

The page obeys max_answer_bytes like the API: the trace it embeds (what each step changed, steps
"changes") gets a quarter of it, the value cards the server renders for the step shown another
quarter, by a bound on their HTML worked out from each Value; what does not fit is left to the
page's script, which rebuilds every step's variables from the trace.
"""

from __future__ import annotations

import dataclasses
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
from app.web.views.base import LessonView, PageContext, source

# Longest learner program kept in the page's URL (characters once URL-encoded); longer code still
# runs, but a shared link then opens the example. Browsers and proxies cut URLs near 8 KB.
MAX_URL_CODE_CHARS = 6_000
# The page's trace, and the cards rendered on the server, each get this share of max_answer_bytes
# (the rest is the page around them: its code, listing, links and the other half's margin).
TRACE_SHARE = 4
CARDS_SHARE = 4
# Names a card lists after "shares memory with" (one tensor can have thousands of names).
SHARED_NAMES_SHOWN = 8


def trace_bytes(settings: Settings) -> int:
    """The bytes of JSON the page's trace may hold."""
    return settings.max_answer_bytes // TRACE_SHARE


def runner(settings: Settings, context: PageContext) -> tensors.Runner:
    """The sandbox as the lesson wants it: code in, trace out, a refusal as data (shown inline)."""
    limits = dataclasses.replace(
        programs.sandbox_limits(settings), max_answer_bytes=trace_bytes(settings)
    )

    def isolated(code: str) -> dict[str, Any]:
        programs.ensure_pool(settings)
        return run_program_isolated(code, limits, "run", None, "changes")

    def run(code: str) -> dict[str, Any]:
        try:
            return context.run_program(isolated, code)
        except SandboxBusy:
            raise  # 429 page: nothing about the program to show
        except SandboxRefused as refused:
            return {"steps": [], "error": None, "refused": {"line": refused.line,
                                                           "message": str(refused)}}  # fmt: skip

    return run


# ---- the cards the server renders ------------------------------------------------------------

# Upper bounds on the HTML of templates/lessons/_tensors.html's card macro, in bytes.
CARD_HEAD_BYTES = 1_500  # the card's div, its head and badges, without names
CELL_BYTES = 32  # <td>, the number as cell() writes it (an int64 has 20 digits), </td>
ROW_BYTES = 240  # a <tr> or a slice (its divs, label and table) around the cells
ITEM_BYTES = 16  # what describe() writes around one value of a container (", ", brackets)
# What HTML escaping adds for each of these characters (&lt; &gt; &amp; &#34; &#39;).
_ESCAPE_EXTRA = {"<": 3, ">": 3, "&": 4, '"': 4, "'": 4}


def _grid_bytes(values: Any) -> int:
    """A bound on the HTML of the grid (rows, slices, cells) for a nested list of values."""
    if not isinstance(values, list):
        return CELL_BYTES + ROW_BYTES
    total = ROW_BYTES
    stack = list(values)
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            total += ROW_BYTES
            stack.extend(item)
        else:
            total += CELL_BYTES
    return total


def escaped_bytes(text: str) -> int:
    """The length of ``text`` once HTML-escaped (UTF-8 bytes)."""
    extra = sum(text.count(char) * more for char, more in _ESCAPE_EXTRA.items())
    return len(text.encode()) + extra


def _text_bytes(value: Any) -> int:
    """A bound on the HTML of a non-tensor Value's text (describe() in the template writes at
    most its strings and numbers, escaped, with a few characters around each)."""
    if isinstance(value, dict):
        return sum(_text_bytes(v) for v in value.values())
    if isinstance(value, list):
        return sum(_text_bytes(v) for v in value) + ITEM_BYTES
    return escaped_bytes(str(value)) + ITEM_BYTES


def card_bytes(name: str, value: Mapping[str, Any], longest_name: int) -> int:
    """A bound on the HTML of one variable's card (``longest_name``: the longest name it may list
    as sharing its memory)."""
    total = CARD_HEAD_BYTES + 4 * len(name) + SHARED_NAMES_SHOWN * (longest_name + 2)
    if value.get("kind") in tensors.ARRAY_KINDS:
        for values in (value.get("values"), value.get("grad")):
            if values is not None:
                total += _grid_bytes(values)
        return total
    return total + _text_bytes(value)


def cards(variables: Mapping[str, Mapping[str, Any]], budget: int) -> list[str]:
    """The variables whose cards the server renders: in order, while their HTML fits."""
    longest = max((len(name) for name in variables), default=0)
    shown: list[str] = []
    for name, value in variables.items():
        budget -= card_bytes(name, value, longest)
        if budget < 0:
            break
        shown.append(name)
    return shown


def explore(
    params: tensors.TensorParams, settings: Settings, context: PageContext
) -> dict[str, Any]:
    """The lesson's view of the step shown, with the cards the page renders on the server."""
    result = tensors.explore(params, runner(settings, context))
    result["cards"] = cards(result["variables"], settings.max_answer_bytes // CARDS_SHARE)
    result["trace_bytes"] = trace_bytes(settings)
    return result


def _parse(query: Mapping[str, str], settings: Settings) -> tensors.TensorParams:
    params = params_from_query(tensors.TensorParams(), query, {})
    tensors.check_example(params.example)
    return params


def _form(params: tensors.TensorParams) -> dict[str, Any]:
    form = asdict(params)
    form["program"] = tensors.program(params)
    form["examples"] = {name: asdict(example) for name, example in tensors.EXAMPLES.items()}
    form["max_url_code_chars"] = MAX_URL_CODE_CHARS
    form["shared_names_shown"] = SHARED_NAMES_SHOWN
    return form


VIEW = LessonView(
    slug="tensors",
    parse=_parse,
    explore=explore,
    figures=tensor_figures.figures,
    code={
        "step": source(
            tensors.step_view,
            tensors.variables_around,
            tensors.apply_step,
            tensors.changed_variables,
            tensors.shared_storage,
            tensors.heatmap_variable,
        ),
    },
    snippet=tensors.snippet,
    form=_form,
    uses_context=True,
)
