"""The Transforms page: a pipeline the learner assembles, every stage shown side by side.

The server renders the first view from the URL (``p`` the pipeline, ``sample``, ``stage``); the
page's script then edits the pipeline in the browser, sends it to POST /api/transforms/apply with
the sample or the learner's upload, and draws the stages it gets back. The partial refreshes the
parts that depend on the pipeline alone: the classes' source, the dataset grid and the snippet.
The page is computed here, in the server: it only ever transforms the project's own sample
pictures (96 px at most, drawn once and cached; max_resize_side once resized); an upload goes
to the API, whose picture worker processes decode and transform it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from app.config import Settings
from app.lessons import transform_classes, transforms
from app.lessons.images import SAMPLES, display_levels
from app.lessons.stage_previews import tensor_for_display
from app.lessons.transform_pipeline import (
    PARAMETERS,
    TRANSFORMS,
    TransformLimits,
    check_pipeline,
    pipeline_from_url,
)
from app.viz import transforms as transform_figures
from app.web.deps import limits_from
from app.web.forms import params_from_query
from app.web.views.base import LessonView, source

# What the palette offers: what each transform works on, and the values a new one starts with.
# (name, works on, {parameter: default})
PALETTE: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("resize", "image", {"size": [32, 32]}),
    ("center_crop", "image", {"size": [48, 48]}),
    ("random_crop", "image", {"size": [48, 48], "seed": 0}),
    ("rotate", "image", {"degrees": 45}),
    ("horizontal_flip", "image or tensor", {}),
    ("grayscale", "image", {}),
    ("to_tensor", "image → tensor", {}),
    ("normalize", "tensor", {"mean": [0.5], "std": [0.5]}),
    ("multiply", "tensor", {"factor": 2}),
)


def limits(settings: Settings) -> TransformLimits:
    """The lesson's limits, from the settings of the same names."""
    return limits_from(settings, TransformLimits)


def palette() -> list[dict[str, Any]]:
    """Each transform the page offers: its class, what it works on, its defaults, its docstring."""
    out = []
    for name, works_on, defaults in PALETTE:
        cls = TRANSFORMS[name]
        out.append(
            {
                "name": name,
                "title": cls.__name__,
                "works_on": works_on,
                "doc": (inspect.getdoc(cls) or "").splitlines()[0],
                "params": [key for key, _ in PARAMETERS[name]],
                "kinds": dict(PARAMETERS[name]),
                "defaults": defaults,
            }
        )
    return out


def _parse(query: Mapping[str, str], settings: Settings) -> transforms.TransformParams:
    params = params_from_query(transforms.TransformParams(), query, {})
    transforms.check_params(params, limits(settings))
    return params


def _explore(params: transforms.TransformParams, settings: Settings) -> dict[str, Any]:
    return transforms.explore(params, limits(settings), settings.transform_preview_side)


def _form(params: transforms.TransformParams) -> dict[str, Any]:
    form = asdict(params)
    steps = check_pipeline(pipeline_from_url(params.p), None)
    form["pipeline"] = [step.as_json() for step in steps]
    form["palette"] = palette()
    form["samples"] = {name: title for name, (title, _) in SAMPLES.items()}
    return form


CLASSES = (
    transform_classes.Resize,
    transform_classes.CenterCrop,
    transform_classes.RandomCrop,
    transform_classes.Rotate,
    transform_classes.HorizontalFlip,
    transform_classes.Grayscale,
    transform_classes.ToTensor,
    transform_classes.Normalize,
    transform_classes.MultiplyTransform,
)

VIEW = LessonView(
    slug="transforms",
    parse=_parse,
    explore=_explore,
    figures=transform_figures.figures,
    code={
        **{cls.__name__: source(cls) for cls in CLASSES},
        "Compose": source(transform_classes.Compose),
        "PictureDataset": source(transform_classes.PictureDataset),
        "helpers": source(transform_classes.require_image, transform_classes.require_tensor),
        "stages": source(transforms.run_pipeline),
        "display": source(tensor_for_display, display_levels),
    },
    snippet=transforms.snippet,
    form=_form,
    playground=transforms.playground,
)
