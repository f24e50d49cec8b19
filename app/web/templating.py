"""Jinja2 templates with the helpers every page uses: static URLs, the lesson list, code blocks."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from starlette.responses import Response

from app.config import ROOT
from app.lessons.registry import LESSONS
from app.web.assets import AssetStore

_FORMATTER = HtmlFormatter(cssclass="code", wrapcode=True)
_LEXER = PythonLexer()


# Highlighting is the costliest part of a render (about half of a lesson partial's time under
# load, measured by bench/loadtest.py), and most pages show the same sources on every request:
# the lessons' own functions, and snippets that change with a few slider values. Bounded: a
# learner's own program in the query string is cached too, up to this many sources of at most
# CODE_CACHE_CHARS each (about 15 MB at the worst, a few MB in practice).
CODE_CACHE_SIZE = 256
CODE_CACHE_CHARS = 20_000


@lru_cache(maxsize=CODE_CACHE_SIZE)
def _highlighted(source: str) -> Markup:
    return Markup(highlight(source, _LEXER, _FORMATTER))


def code_block(source: str) -> Markup:
    """Python source as highlighted HTML (Pygments escapes it)."""
    if len(source) > CODE_CACHE_CHARS:
        return Markup(highlight(source, _LEXER, _FORMATTER))
    return _highlighted(source)


def fmt(value: float | int, digits: int = 4) -> str:
    """A number for people: fixed digits, scientific when tiny or huge, nan and inf spelled out."""
    number = float(value)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number != 0 and (abs(number) >= 1e6 or abs(number) < 10.0**-digits):
        return f"{number:.{max(digits - 1, 1)}e}"
    text = f"{number:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text and digits > 2 else text


def figure_json(figure: dict[str, Any]) -> Markup:
    """A Plotly figure as JSON that is safe inside ``<script type="application/json">``."""
    text = json.dumps(figure, separators=(",", ":"), allow_nan=False)  # viz already nulls NaN
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def make_templates(assets: AssetStore) -> Jinja2Templates:
    """The app's template environment, bound to its asset store."""
    templates = Jinja2Templates(directory=str(ROOT / "templates"))
    env = templates.env
    env.globals.update(static=assets.url, lessons=LESSONS, fmt=fmt, finite=math.isfinite)
    env.filters.update(code=code_block, figure_json=figure_json)
    env.trim_blocks = True
    env.lstrip_blocks = True
    return templates


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """Render ``name`` with ``context`` through the app's templates."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=status_code)
