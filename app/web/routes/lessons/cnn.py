"""The CNN lesson's API: the sliding window, pooling, and filters on a picture (API.md
"Convolution and pooling"), and the page's picture panel (``POST /lessons/cnn/image``, the HTML
the page's upload form posts to).

The picture routes are ``async``: they pass the picture gate (``app.state.picture_gate``: a
bounded line, a share per client, 429 past them), then the gate's thread reads the upload and a
picture worker process decodes and filters it (``app.workers.pictures``), never the server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.lessons import cnn
from app.lessons.cnn import CnnLimits
from app.viz import cnn as cnn_figures
from app.web.admission import Gate, client_key
from app.web.deps import PictureGateDep, SettingsDep, limits_from
from app.web.schemas import JsonBody, error_responses
from app.web.templating import render
from app.web.uploads import picture_reader
from app.workers import pictures

router = APIRouter(tags=["cnn"])


def cnn_limits(settings: SettingsDep) -> CnnLimits:
    """The CNN lesson's limits, from the settings of the same names."""
    return limits_from(settings, CnnLimits)


CnnLimitsDep = Annotated[CnnLimits, Depends(cnn_limits)]

# Strict: JSON true/false are not numbers here (lax mode would read them as 1 and 0).
Number = Annotated[float, Field(strict=True)]
Nested = list[list[Number]] | list[list[list[Number]]]


class SizeFormula(BaseModel):
    """floor((n + 2p - d(k - 1) - 1) / s) + 1 with this request's numbers."""

    dim: Literal["H", "W"]
    n: int = Field(description="input rows (H) or columns (W), before padding")
    k: int = Field(description="kernel (or pooling window) rows or columns")
    stride: int
    padding: int
    dilation: int
    value: int = Field(description="the output's rows or columns")
    text: str = Field(description="the formula with the numbers filled in")


class ConvolveRequest(JsonBody):
    """A small matrix and a kernel, as F.conv2d takes them without the batch dimensions."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"input": [[1, 2, 3], [4, 5, 6], [7, 8, 9]], "kernel": [[1, 0], [0, 1]]}]
        }
    )

    input: Nested = Field(
        description="H×W rows of numbers, or C×H×W (C channels); at most max_matrix_side rows "
        "and columns and max_conv_channels channels."
    )
    kernel: Nested = Field(
        description="kh×kw, or C×kh×kw (one slice per input channel; a kh×kw kernel is used on "
        "every channel); at most max_kernel_size rows and columns."
    )
    stride: int = Field(default=1, description="steps the window moves, 1 to max_stride")
    padding: int = Field(default=0, description="zeros around the input, 0 to max_padding")
    dilation: int = Field(default=1, description="spacing of the kernel's taps, 1 to max_dilation")


class WindowStep(BaseModel):
    """One position of the sliding window."""

    row: int = Field(description="the output cell this step fills")
    col: int
    top: int = Field(description="the window's first row in the padded input")
    left: int = Field(description="the window's first column in the padded input")
    window: list[Any] = Field(description="the input under the kernel (kh×kw or C×kh×kw)")
    products: list[Any] = Field(description="window × kernel, elementwise")
    sum: float = Field(description="the sum of the products: the output cell")


class ConvolveResponse(BaseModel):
    output: list[list[float]] = Field(description="F.conv2d's output, H'×W'")
    output_shape: list[int]
    steps: list[WindowStep] = Field(description="one per output cell, row by row")
    input_shape: list[int]
    kernel: list[Any] = Field(description="the kernel as used (C×kh×kw for a C-channel input)")
    padded: list[Any] = Field(description="the input with its zero padding")
    stride: int
    padding: int
    dilation: int
    formula: list[SizeFormula] = Field(description="the output-size formula for H and W")


class PoolRequest(JsonBody):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "input": [[1, 3, 2, 0], [4, 2, 1, 5], [0, 1, 7, 2], [3, 2, 1, 0]],
                    "kind": "max",
                    "size": 2,
                }
            ]
        }
    )

    input: Nested = Field(description="H×W (or C×H×W, pooled channel by channel)")
    kind: Literal["max", "min", "avg"] = Field(
        description="max: F.max_pool2d; min: -F.max_pool2d(-x); avg: F.avg_pool2d"
    )
    size: int = Field(description="the window is size×size, 1 to max_pool_size")
    stride: int | None = Field(default=None, description="null: the same as size")


class PoolResponse(BaseModel):
    output: list[Any] = Field(description="H'×W' (C×H'×W' for a C-channel input)")
    output_shape: list[int]
    kind: str
    size: int
    stride: int = Field(description="the stride used (size when the request gave none)")
    formula: list[SizeFormula]


class FeatureCounts(BaseModel):
    input: int = Field(description="3 × H × W")
    conv: int = Field(description="3 × H' × W' after the filters")
    pooled: int = Field(description="3 × H'' × W'' after pooling")


class ChannelMaps(BaseModel):
    """One colour channel, its own filter, and what that filter and pooling made of it."""

    name: Literal["R", "G", "B"]
    input_png: str = Field(description="the channel itself, on its true 0..255 scale")
    kernel: list[list[float]] = Field(description="this channel's filter")
    conv_shape: list[int]
    conv_png: str = Field(
        description="data URL: the map min-max scaled (its smallest value dark purple, its "
        "largest yellow, viridis), shrunk to cnn_preview_side pixels at most"
    )
    conv_range: list[float] = Field(description="[min, max] of the map, before scaling")
    conv_values: list[list[float]] | None = Field(description="the numbers, for small maps only")
    pooled_shape: list[int]
    pooled_png: str = Field(description="data URL, scaled like conv_png")
    pooled_range: list[float]
    pooled_values: list[list[float]] | None


class ImageResponse(BaseModel):
    input_shape: list[int] = Field(description="[3, H, W]")
    channels: list[ChannelMaps] = Field(description="R, G and B")
    feature_counts: FeatureCounts
    kernel_name: str = Field(description="the preset used, or 'typed'")
    kernel: list[list[list[float]]] = Field(description="3×k×k: one filter per channel")
    stride: int
    padding: int
    pool: str
    pool_size: int
    formula: list[SizeFormula] = Field(description="the convolution's output size")
    preview_side: int = Field(description="longest side of a PNG preview (cnn_preview_side)")


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
    limits: CnnLimits,
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
        kernel, stride, padding, pool, pool_size, limits, settings.cnn_preview_side
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
    limits: CnnLimitsDep,
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
        request, gate, settings, limits, file, sample, kernel, stride, padding, pool, pool_size
    )
    return ImageResponse.model_validate(result)


@router.post("/lessons/cnn/image", response_class=HTMLResponse, include_in_schema=False)
async def image_partial(
    request: Request,
    gate: PictureGateDep,
    settings: SettingsDep,
    limits: CnnLimitsDep,
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
        request, gate, settings, limits, file, sample, kernel, stride, padding, pool, pool_size
    )
    figure = cnn_figures.image_counts_figure(result)
    return render(request, "lessons/_cnn_image.html", {"image": result, "image_figure": figure})
