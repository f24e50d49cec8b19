"""A transform pipeline as data: the API's JSON list and the page's compact URL string, validated.

``check_pipeline`` turns the JSON list into ``Step``s (a transform's name and its constructor
arguments) or a message naming the stage and the problem; ``pipeline_from_url`` and
``pipeline_to_url`` read and write the URL string (``resize:64x64,grayscale,to_tensor``), and
``build`` makes the steps one ``Compose`` of fresh transform objects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.lessons.errors import LessonInputError, check_limit
from app.lessons.transform_classes import (
    CenterCrop,
    Compose,
    Grayscale,
    HorizontalFlip,
    MultiplyTransform,
    Normalize,
    RandomCrop,
    Resize,
    Rotate,
    ToTensor,
    Transform,
    code_number,
    pair,
    resized_shape,
)


@dataclass(frozen=True)
class TransformLimits:
    """The bounds a pipeline is checked against (settings of the same names)."""

    max_pipeline_stages: int = 12
    max_resize_side: int = 1024
    max_multiply_factor: float = 1000.0


@dataclass(frozen=True)
class Step:
    """One validated entry of a pipeline: the transform's name and its constructor arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self) -> Transform:
        """A fresh transform object (a RandomCrop starts its seeded draws again)."""
        transform: Transform = TRANSFORMS[self.name](**self.kwargs)
        return transform

    def as_json(self) -> dict[str, Any]:
        """The step as the API's JSON list writes it."""
        return {"name": self.name} | {
            key: list(value) if isinstance(value, tuple | list) else value
            for key, value in self.kwargs.items()
        }


TRANSFORMS: dict[str, type[Any]] = {
    "resize": Resize,
    "center_crop": CenterCrop,
    "random_crop": RandomCrop,
    "rotate": Rotate,
    "horizontal_flip": HorizontalFlip,
    "grayscale": Grayscale,
    "to_tensor": ToTensor,
    "normalize": Normalize,
    "multiply": MultiplyTransform,
}
# Each transform's parameters, in the order the URL string writes them, with the kind of value.
PARAMETERS: dict[str, tuple[tuple[str, str], ...]] = {
    "resize": (("size", "size"),),
    "center_crop": (("size", "size"),),
    "random_crop": (("size", "size"), ("seed", "seed")),
    "rotate": (("degrees", "degrees"),),
    "horizontal_flip": (),
    "grayscale": (),
    "to_tensor": (),
    "normalize": (("mean", "values"), ("std", "positive values")),
    "multiply": (("factor", "factor"),),
}
OPTIONAL = {("random_crop", "seed"): 0}  # a seed the learner may leave out
EXAMPLES = {
    "size": "[64, 64]",
    "seed": "0",
    "degrees": "30",
    "values": "[0.5]",
    "positive values": "[0.5]",
    "factor": "2",
}
MAX_SEED = 2**32 - 1
MAX_CHANNEL_VALUES = 3  # the pictures here have 1 (grayscale) or 3 (RGB) channels
MAX_DEGREES = 360.0


def _show(value: Any) -> str:
    """A learner's value, quoted briefly for a message."""
    return repr(value)[:40]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _iscode_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_size(where: str, value: Any, limits: TransformLimits | None) -> int | tuple[int, int]:
    if _is_int(value):
        sides = [value]
    elif isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_int, value)):
        sides = list(value)
    else:
        raise LessonInputError(
            f"{where}: size must be a whole number or [height, width], such as [64, 64]; "
            f"got {_show(value)}."
        )
    if min(sides) < 1:
        raise LessonInputError(f"{where}: size must be at least 1 pixel; got {_show(value)}.")
    if limits is not None:
        check_limit(f"{where}: the size", "max_resize_side", limits.max_resize_side, max(sides))
    return value if _is_int(value) else (sides[0], sides[1])


def _check_value(
    where: str, kind: str, value: Any, limits: TransformLimits | None
) -> Any:  # the value as the transform's constructor takes it
    if kind == "size":
        return _check_size(where, value, limits)
    if kind == "seed":
        if not _is_int(value) or not 0 <= value <= MAX_SEED:
            raise LessonInputError(
                f"{where}: seed must be a whole number from 0 to {MAX_SEED}; got {_show(value)}."
            )
        return value
    if kind in ("values", "positive values"):
        name = "std" if kind == "positive values" else "mean"
        values = [value] if _iscode_number(value) else value
        if (
            not isinstance(values, list | tuple)
            or not 1 <= len(values) <= MAX_CHANNEL_VALUES
            or not all(_iscode_number(v) and math.isfinite(v) for v in values)
        ):
            raise LessonInputError(
                f"{where}: {name} must be a list of 1 to {MAX_CHANNEL_VALUES} numbers (one per "
                f"channel), such as [0.5] or [0.485, 0.456, 0.406]; got {_show(value)}."
            )
        if kind == "positive values" and min(values) <= 0:
            raise LessonInputError(f"{where}: every std must be above 0; got {_show(value)}.")
        return [float(v) for v in values]
    if not _iscode_number(value) or not math.isfinite(value):
        raise LessonInputError(f"{where}: {kind} must be a number; got {_show(value)}.")
    if kind == "degrees" and abs(value) > MAX_DEGREES:
        raise LessonInputError(
            f"{where}: degrees must be between -360 and 360; got {_show(value)}."
        )
    if kind == "factor" and limits is not None:
        check_limit(
            f"{where}: |factor|", "max_multiply_factor", limits.max_multiply_factor, abs(value)
        )
    return float(value)


def check_pipeline(raw: Any, limits: TransformLimits | None) -> list[Step]:
    """The API's JSON list as validated steps, or a 422 message naming the stage and the problem.

    ``limits`` None checks types and ranges only (the snippet of an already checked pipeline).
    """
    if not isinstance(raw, list):
        raise LessonInputError(
            'pipeline must be a JSON list of transforms, such as [{"name": "grayscale"}, '
            f'{{"name": "to_tensor"}}]; got {_show(raw)}.'
        )
    if limits is not None:
        check_limit(
            "The pipeline's number of stages",
            "max_pipeline_stages",
            limits.max_pipeline_stages,
            len(raw),
        )
    steps = []
    for number, entry in enumerate(raw, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise LessonInputError(
                f'Stage {number}: each transform is an object with a "name", such as '
                f'{{"name": "resize", "size": [64, 64]}}; got {_show(entry)}.'
            )
        name = entry["name"]
        if name not in TRANSFORMS:
            raise LessonInputError(
                f"Stage {number}: there is no transform {name[:40]!r}; the transforms are "
                f"{', '.join(TRANSFORMS)}."
            )
        where = f"Stage {number} ({name})"
        params = dict(PARAMETERS[name])
        unknown = sorted(set(entry) - {"name"} - set(params))
        if unknown:
            takes = f"it takes {', '.join(params)}" if params else "it takes no parameters"
            raise LessonInputError(f"{where}: unknown parameter {unknown[0][:40]!r}; {takes}.")
        kwargs = {}
        for key, kind in params.items():
            if key not in entry:
                if (name, key) in OPTIONAL:
                    kwargs[key] = OPTIONAL[(name, key)]
                    continue
                raise LessonInputError(f"{where}: needs {key}, such as {EXAMPLES[kind]}.")
            kwargs[key] = _check_value(where, kind, entry[key], limits)
        steps.append(Step(name, kwargs))
    return steps


def _url_value(text: str) -> Any:
    """A number from the URL string; other text is kept so the check can name it."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _url_size(text: str) -> Any:
    """``64`` -> 64; ``64x48`` -> [64, 48] (height x width)."""
    if "x" in text:
        return [_url_value(part) for part in text.split("x", 1)]
    return _url_value(text)


def pipeline_from_url(text: str) -> list[dict[str, Any]]:
    """``resize:64x64,grayscale,to_tensor,normalize:0.5:0.5`` -> the API's JSON list.

    Stages are separated by commas, a stage's values by colons; a size is ``H`` or ``HxW`` and
    a list of per-channel values is joined by ``_`` (``normalize:0.485_0.456_0.406:0.229_...``).
    """
    items: list[dict[str, Any]] = []
    for number, token in enumerate((t.strip() for t in text.split(",") if t.strip()), 1):
        name, *args = token.split(":")
        params = PARAMETERS.get(name)
        if params is None:
            items.append({"name": name})  # the check names the unknown transform
            continue
        if len(args) > len(params):
            takes = ":".join(key for key, _ in params) or "no values"
            raise LessonInputError(
                f"Stage {number} ({name}) has {len(args)} values in {token[:40]!r}; "
                f"it takes {takes}."
            )
        item: dict[str, Any] = {"name": name}
        for (key, kind), arg in zip(params, args, strict=False):
            if kind == "size":
                item[key] = _url_size(arg)
            elif kind in ("values", "positive values"):
                item[key] = [_url_value(part) for part in arg.split("_")]
            else:
                item[key] = _url_value(arg)
        items.append(item)
    return items


def _url_arg(kind: str, value: Any) -> str:
    if kind == "size" and isinstance(value, tuple | list):
        return f"{value[0]}x{value[1]}"
    if isinstance(value, tuple | list):
        return "_".join(code_number(v) for v in value)
    return code_number(value)


def pipeline_to_url(steps: Sequence[Step]) -> str:
    """The inverse of ``pipeline_from_url``, for links a teacher can share."""
    tokens = []
    for step in steps:
        args = [_url_arg(kind, step.kwargs[key]) for key, kind in PARAMETERS[step.name]]
        tokens.append(":".join([step.name, *args]))
    return ",".join(tokens)


def build(steps: Sequence[Step]) -> Compose:
    """The pipeline as one Compose of fresh transform objects."""
    return Compose([step.make() for step in steps])


def check_sizes(steps: Sequence[Step], height: int, width: int, limits: TransformLimits) -> None:
    """Refuse a Resize whose output would pass max_resize_side, before any pixel is touched.

    A whole-number size keeps the aspect ratio, so the longer side depends on the picture.
    """
    for number, step in enumerate(steps, 1):
        if step.name == "resize":
            height, width = resized_shape(height, width, step.kwargs["size"])
            check_limit(
                f"Stage {number} (resize) makes a {height}×{width} picture: its longer side",
                "max_resize_side",
                limits.max_resize_side,
                max(height, width),
            )
        elif step.name in ("center_crop", "random_crop"):
            height, width = pair(step.kwargs["size"])
