"""The Transforms lesson's API: ``POST /api/transforms/apply``, a pipeline of transforms on an
uploaded picture, stage by stage (API.md "Data and transforms").

The route is ``async``: the pipeline is checked first, then the request passes the picture gate
(``app.state.picture_gate``: 429 when full), the gate's thread reads the upload (with the byte
limit) and a picture worker process decodes the picture and runs the pipeline
(``app.workers.pictures``), never the server.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from pydantic import BaseModel, Field

from app.lessons.errors import LessonInputError
from app.lessons.transform_pipeline import Step, TransformLimits, check_pipeline
from app.web.admission import client_key
from app.web.deps import PictureGateDep, SettingsDep, limits_from
from app.web.schemas import error_responses
from app.web.uploads import picture_reader
from app.workers import pictures

router = APIRouter(tags=["transforms"])


def transform_limits(settings: SettingsDep) -> TransformLimits:
    """The Transforms lesson's limits, from the settings of the same names."""
    return limits_from(settings, TransformLimits)


TransformLimitsDep = Annotated[TransformLimits, Depends(transform_limits)]

EXAMPLE_PIPELINE = (
    '[{"name": "resize", "size": [64, 64]}, {"name": "grayscale"}, '
    '{"name": "rotate", "degrees": 30}, {"name": "to_tensor"}, '
    '{"name": "normalize", "mean": [0.5], "std": [0.5]}]'
)


class Histogram(BaseModel):
    channels: list[str] = Field(description="channel names: R, G, B, or L for one channel")
    edges: list[float] = Field(description="bin edges, shared by every channel")
    counts: list[list[int]] = Field(description="values per bin, one list per channel")


class Stage(BaseModel):
    """What one transform returned."""

    name: str = Field(description="the transform's name in the pipeline, or 'input'")
    call: str = Field(description="the transform as code, e.g. 'Resize((64, 64))'")
    kind: Literal["image", "tensor"] = Field(description="a PIL image or a torch tensor")
    shape: list[int] = Field(
        description="an image: [H, W, C] (C = 1 for grayscale), as np.asarray gives; "
        "a tensor: its own shape, [C, H, W] after to_tensor"
    )
    layout: Literal["HWC", "CHW"] = Field(description="what the axes of shape are")
    dtype: str = Field(description="uint8 for an image, float32 for a tensor from to_tensor")
    mode: str | None = Field(description="an image's Pillow mode (RGB or L); null for a tensor")
    min: float = Field(description="the smallest value")
    max: float = Field(description="the largest value")
    preview: str = Field(description="a PNG data URL of the stage, as `display` describes")
    preview_size: list[int] = Field(description="[height, width] of the preview in pixels")
    display: str = Field(description="how the values were turned into the preview's pixels")
    histogram: Histogram


class TransformsResponse(BaseModel):
    stages: list[Stage] = Field(description="one per transform, in pipeline order")
    input: Stage = Field(description="the picture before the first transform")
    compose: str = Field(description="the pipeline as code: Compose([...])")
    pipeline: list[dict[str, Any]] = Field(description="the pipeline as it was understood")


def parse_pipeline_json(text: str, limits: TransformLimits) -> list[Step]:
    """The form field's JSON, validated; bad JSON is a 422 that says where it broke."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise LessonInputError(
            f"pipeline is not valid JSON ({error.msg} at character {error.pos}): send a list "
            'such as [{"name": "grayscale"}, {"name": "to_tensor"}].'
        ) from None
    except RecursionError:
        raise LessonInputError(
            "pipeline is nested too deeply to be a list of transforms."
        ) from None
    return check_pipeline(raw, limits)


@router.post("/api/transforms/apply", responses=error_responses(415, 429))
async def apply(
    request: Request,
    gate: PictureGateDep,
    settings: SettingsDep,
    limits: TransformLimitsDep,
    pipeline: Annotated[
        str,
        Form(description=f"a JSON list of transforms, such as {EXAMPLE_PIPELINE}"),
    ],
    file: Annotated[
        UploadFile | None,
        File(description="PNG, JPEG, GIF, WebP or BMP, at most max_upload_bytes"),
    ] = None,
    sample: Annotated[
        str | None,
        Form(description="a sample's name (GET /api/images/samples) instead of a file"),
    ] = None,
) -> TransformsResponse:
    """Run the pipeline (one Compose) on the picture and describe every stage.

    Transforms: resize {size}, center_crop {size}, random_crop {size, seed}, rotate {degrees},
    horizontal_flip, grayscale, to_tensor, normalize {mean, std}, multiply {factor}; a size is
    a whole number (resize: the shorter side) or [height, width]. Image transforms come before
    to_tensor and tensor transforms after it; the wrong order is a 422 that says so.

    The picture is decoded and transformed in a worker process with its own memory and time
    limits (picture_max_memory_bytes: 413; picture_max_seconds: 422); 429 with Retry-After when
    the picture workers are full (picture_max_waiting, picture_max_per_client,
    picture_queue_seconds).
    """
    steps = parse_pipeline_json(pipeline, limits)
    read = picture_reader(file, sample, settings)
    result = await gate.run(
        client_key(request),
        pictures.transforms_apply,
        read,
        steps,
        limits,
        settings.transform_preview_side,
        settings,
    )
    return TransformsResponse(
        stages=result["stages"],
        input=result["input"],
        compose=result["compose"],
        pipeline=[step.as_json() for step in steps],
    )
