"""The CNN lesson's API: the sliding window, pooling, and filters on a picture.

The picture route is ``async`` because the upload is read as it streams in; the torch work then
runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.lessons import cnn
from app.viz import cnn as cnn_figures
from app.web.deps import SettingsDep, limits_from
from app.web.schemas import error_responses
from app.web.schemas_cnn import (
    ConvolveRequest,
    ConvolveResponse,
    ImageResponse,
    PoolRequest,
    PoolResponse,
)
from app.web.templating import render
from app.web.uploads import image_from_request

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
    settings: Settings,
    file: UploadFile | None,
    sample: str | None,
    kernel: str,
    stride: int,
    padding: int,
    pool: str,
    pool_size: int,
) -> dict[str, Any]:
    opened = await image_from_request(file, sample, settings)
    return await run_in_threadpool(
        cnn.picture_features,
        opened.image,
        kernel,
        stride,
        padding,
        pool,
        pool_size,
        limits_from(settings, cnn.CnnLimits),
        settings.cnn_preview_side,
    )


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


@router.post("/api/cnn/image", responses=error_responses(415))
async def image(
    settings: SettingsDep,
    file: FileField = None,
    sample: SampleField = None,
    kernel: KernelField = "edge",
    stride: Annotated[int, Form(description="1 to max_stride")] = 1,
    padding: Annotated[int, Form(description="0 to max_padding")] = 0,
    pool: PoolField = "max",
    pool_size: Annotated[int, Form(description="1 to max_pool_size; stride = size")] = 2,
) -> ImageResponse:
    """R, G and B each through its own filter (conv2d with groups=3), then pooling."""
    result = await _picture(settings, file, sample, kernel, stride, padding, pool, pool_size)
    return ImageResponse.model_validate(result)


@router.post("/lessons/cnn/image", response_class=HTMLResponse, include_in_schema=False)
async def image_partial(
    request: Request,
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
    result = await _picture(settings, file, sample, kernel, stride, padding, pool, pool_size)
    figure = cnn_figures.image_counts_figure(result)
    return render(request, "lessons/_cnn_image.html", {"image": result, "image_figure": figure})
