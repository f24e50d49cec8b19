"""Request and response models of the CNN lesson's API (API.md "Convolution and pooling")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.web.schemas import JsonBody

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
