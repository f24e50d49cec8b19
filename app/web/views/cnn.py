"""The CNN page: the sliding window, filters on a picture, pooling, and nn.Conv2d.

The URL holds every control; matrices are written row by row, ``1,2,3; 4,5,6``. An uploaded
picture cannot live in a URL: the page's script sends it to POST /lessons/cnn/image (decoded and
filtered in a picture worker process, like every upload) and a reload shows the sample named in
the URL. The page itself is computed here, in the server: it only ever filters the project's own
sample pictures (96 px at most, drawn once and cached), never an upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.lessons import cnn
from app.lessons.errors import LessonInputError, check_limit
from app.lessons.images import SAMPLES, display_levels
from app.viz import cnn as cnn_figures
from app.web.deps import limits_from
from app.web.forms import params_from_query, parse_float, parse_int
from app.web.views.base import LessonView, source


def parse_matrix(name: str, text: str, limit: int, limit_name: str) -> cnn.Matrix:
    """``"1,2,3; 4,5,6"`` (rows split by ``;`` or new lines) -> ((1, 2, 3), (4, 5, 6))."""
    rows = [r for r in text.replace("\n", ";").split(";") if r.strip()]
    if not rows:
        raise LessonInputError(f"{name} is empty: type rows such as '1, 2, 3; 4, 5, 6'.")
    check_limit(f"The number of rows of {name}", limit_name, limit, len(rows))
    matrix = []
    for row in rows:
        cells = [c for c in row.replace(",", " ").split() if c]
        check_limit(f"The number of columns of {name}", limit_name, limit, len(cells))
        matrix.append(tuple(parse_float(name, c) for c in cells))
    if len({len(r) for r in matrix}) > 1:
        raise LessonInputError(
            f"{name} is ragged: its rows have {', '.join(str(len(r)) for r in matrix)} numbers; "
            "every row needs the same number."
        )
    return tuple(matrix)


def format_matrix(matrix: cnn.Matrix) -> str:
    """The inverse of ``parse_matrix``, for the form and the URL."""
    return "; ".join(", ".join(f"{v:g}" for v in row) for row in matrix)


def kernel_text(spec: str) -> str:
    """The filter's values as the learner may edit them: a preset's numbers, or the typed JSON."""
    if spec in cnn.PRESETS:
        rows = cnn.PRESETS[spec][1]
        return "[" + ",\n ".join("[" + ", ".join(f"{v:.4g}" for v in r) + "]" for r in rows) + "]"
    return spec


def _parse(query: Mapping[str, str], settings: Settings) -> cnn.CnnParams:
    side, kernel = settings.max_matrix_side, settings.max_kernel_size
    special = {
        "matrix": lambda t: parse_matrix("matrix", t, side, "max_matrix_side"),
        "kernel": lambda t: parse_matrix("kernel", t, kernel, "max_kernel_size"),
        "fmap": lambda t: parse_matrix("fmap", t, side, "max_matrix_side"),
        "pool_stride": lambda t: parse_int("pool_stride", t) if t.strip() else None,
    }
    params = params_from_query(cnn.CnnParams(), query, special)
    if params.sample not in SAMPLES:
        raise LessonInputError(
            f"Unknown sample {params.sample!r}: choose one of {', '.join(SAMPLES)}."
        )
    return params


def _explore(params: cnn.CnnParams, settings: Settings) -> dict[str, Any]:
    limits = limits_from(settings, cnn.CnnLimits)
    result = cnn.explore(params, limits, settings.cnn_preview_side)
    result["limits"] = asdict(limits)
    return result


def _form(params: cnn.CnnParams) -> dict[str, Any]:
    form = asdict(params)
    form.update(
        matrix=format_matrix(params.matrix),
        kernel=format_matrix(params.kernel),
        fmap=format_matrix(params.fmap),
        pool_stride="" if params.pool_stride is None else params.pool_stride,
        image_kernel_text=kernel_text(params.image_kernel),
        image_preset=params.image_kernel if params.image_kernel in cnn.PRESETS else "typed",
        presets={name: title for name, (title, _) in cnn.PRESETS.items()},
        preset_texts={name: kernel_text(name) for name in cnn.PRESETS},
        samples={name: title for name, (title, _) in SAMPLES.items()},
    )
    return form


VIEW = LessonView(
    slug="cnn",
    parse=_parse,
    explore=_explore,
    figures=cnn_figures.figures,
    code={
        "window": source(cnn.convolve, cnn.sliding_steps, cnn.output_size),
        "image": source(cnn.picture_tensor, cnn.image_features, cnn.map_pngs, display_levels),
        "pool": source(cnn.pool2d),
        "layer": source(cnn.conv_layer),
    },
    snippet=cnn.snippet,
    form=_form,
)
