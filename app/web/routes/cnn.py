"""The CNN lesson's API: the sliding window, pooling, and filters on a picture.

The picture routes are ``async``: they pass the picture gate (``app.state.picture_gate``: a
bounded line, a share per client, 429 past them), then the gate's thread reads the upload and a
picture worker process decodes and filters it (``app.workers.pictures``), never the server.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from app.config import Settings
from app.lessons import cnn
from app.viz import cnn as cnn_figures
from app.web.admission import Gate, client_key
from app.web.deps import PictureGateDep, SettingsDep, limits_from
from app.web.schemas import error_responses
from app.web.schemas_cnn import (
    ConvolveRequest,
    ConvolveResponse,
    ImageResponse,
    PoolRequest,
    PoolResponse,
)
from app.web.templating import render
from app.web.uploads import picture_reader
from app.workers import pictures

router = APIRouter(tags=["cnn"])


def cnn_limits(settings: SettingsDep) -> cnn.CnnLimits:
    """The CNN lesson's limits, from the settings of the same names."""
    return limits_from(settings, cnn.CnnLimits)


CnnLimitsDep = Annotated[cnn.CnnLimits, Depends(cnn_limits)]


@router.post("/api/cnn/convolve")
def convolve(body: ConvolveRequest, limits: CnnLimitsDep) -> ConvolveResponse:
    """F.conv2d (cross-correlation) of a small matrix, with every sliding-window step."""
    result = cnn.convolution(
        body.input, body.kernel, body.stride, body.padding, body.dilation, limits
    )
    return ConvolveResponse.model_validate(result)


@router.post("/api/cnn/pool")
def pool(body: PoolRequest, limits: CnnLimitsDep) -> PoolResponse:
    """Max, min or average pooling of a small matrix."""
    return PoolResponse.model_validate(
        cnn.pooling(body.input, body.kind, body.size, body.stride, limits)
    )


async def _picture(
    request: Request,
    gate: Gate,
    settings: Settings,
    file: UploadFile | None,
    sample: str | None,
    kernel: str,
    stride: int,
    padding: int,
    pool: str,
    pool_size: int,
) -> dict[str, Any]:
    """cnn.picture_features on the picture, in a picture worker once the gate admits it."""
    read = picture_reader(file, sample, settings)
    params = pictures.CnnImageParams(
        kernel,
        stride,
        padding,
        pool,
        pool_size,
        limits_from(settings, cnn.CnnLimits),
        settings.cnn_preview_side,
    )
    return await gate.run(client_key(request), pictures.cnn_image, read, params, settings)


FileField = Annotated[
    UploadFile | None, File(description="PNG, JPEG, GIF, WebP or BMP, at most max_upload_bytes")
]
SampleField = Annotated[
    str | None, Form(description="a sample's name (GET /api/images/samples) instead of a file")
]
KernelField = Annotated[
    str,
    Form(
        description="a preset (identity, edge, blur, sharpen, emboss, sobel_x, sobel_y) or a "
        "JSON k×k list (every channel) or 3×k×k list (one filter per channel)"
    ),
]
PoolField = Annotated[str, Form(description="max, min or avg")]


@router.post("/api/cnn/image", responses=error_responses(415, 429))
async def image(
    request: Request,
    gate: PictureGateDep,
    settings: SettingsDep,
    file: FileField = None,
    sample: SampleField = None,
    kernel: KernelField = "edge",
    stride: Annotated[int, Form(description="1 to max_stride")] = 1,
    padding: Annotated[int, Form(description="0 to max_padding")] = 0,
    pool: PoolField = "max",
    pool_size: Annotated[int, Form(description="1 to max_pool_size; stride = size")] = 2,
) -> ImageResponse:
    """R, G and B each through its own filter (conv2d with groups=3), then pooling.

    The picture is decoded and filtered in a worker process with its own memory and time limits
    (picture_max_memory_bytes: 413; picture_max_seconds: 422); 429 with Retry-After when the
    picture workers are full (picture_max_waiting, picture_max_per_client,
    picture_queue_seconds)."""
    result = await _picture(
        request, gate, settings, file, sample, kernel, stride, padding, pool, pool_size
    )
    return ImageResponse.model_validate(result)


@router.post("/lessons/cnn/image", response_class=HTMLResponse, include_in_schema=False)
async def image_partial(
    request: Request,
    gate: PictureGateDep,
    settings: SettingsDep,
    file: FileField = None,
    sample: SampleField = None,
    kernel: KernelField = "edge",
    stride: Annotated[int, Form()] = 1,
    padding: Annotated[int, Form()] = 0,
    pool: PoolField = "max",
    pool_size: Annotated[int, Form()] = 2,
) -> Response:
    """The lesson page's picture panel for an uploaded picture: the same markup as the page."""
    result = await _picture(
        request, gate, settings, file, sample, kernel, stride, padding, pool, pool_size
    )
    figure = cnn_figures.image_counts_figure(result)
    return render(request, "lessons/_cnn_image.html", {"image": result, "image_figure": figure})


def warm_pictures(settings: Settings) -> None:
    """Start the picture worker processes in the background at app start (picture_prewarm), so
    the first picture of the CNN and Transforms lessons does not wait for one."""
    pictures.warm(settings)
