"""What a stage of a transform pipeline holds, as numbers for the page and the API.

``stage_preview`` gives a stage's kind, shape, dtype, value range, a PNG preview and a
per-channel histogram; ``tensor_for_display`` draws a tensor as that preview.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from app.lessons.errors import LessonInputError
from app.lessons.images import display_levels, png_data_url
from app.lessons.transform_classes import Sample

HISTOGRAM_BINS = 32
IMAGE_CHANNELS = {"RGB": ["R", "G", "B"], "L": ["L"]}


def _channels(count: int) -> list[str]:
    return (
        ["R", "G", "B"] if count == 3 else ["L"] if count == 1 else [str(i) for i in range(count)]
    )


def _fit(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) shrunk to fit ``side`` pixels, the aspect ratio kept."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def tensor_for_display(tensor: torch.Tensor, side: int) -> tuple[Image.Image, str]:
    """A (C, H, W) tensor as a picture at most ``side`` pixels wide, and how values became 0..255.

    Values already in [0, 1] are shown as they are (× 255, as ToPILImage does); any other range
    is min-max scaled per channel, so a normalized tensor still looks like its picture.
    """
    x = tensor.detach().float()
    height, width = _fit(x.shape[1], x.shape[2], side)

    def shrink(values: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(
            values[None], size=(height, width), mode="bilinear", antialias=True
        )[0]  # (C, height, width)

    low, high = torch.aminmax(x)  # over the whole tensor, before shrinking
    if low >= 0 and high <= 1:
        scale: tuple[float, float] | None = (0.0, 1.0)
        how = "values × 255 (they are in [0, 1], as ToPILImage shows them)"
    else:
        scale = None
        how = "min-max scaled per channel to 0…255 (the values are outside [0, 1])"
    shrunk = (height, width) != tuple(x.shape[1:])
    levels = display_levels(x, scale, shrink if shrunk else None)  # (C, height, width)
    array = levels.permute(1, 2, 0).numpy()  # (H, W, C)
    if array.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(array), "RGB"), how
    # one channel (or an unusual count): the channels side by side in gray
    tiled = np.concatenate([array[:, :, c] for c in range(array.shape[2])], axis=1)
    return Image.fromarray(np.ascontiguousarray(tiled), "L"), how


def stage_preview(sample: Sample, preview_side: int) -> dict[str, Any]:
    """A stage as numbers: kind, shape, dtype, range, a PNG preview and a per-channel histogram.

    An image's shape is [H, W, C] (height, width, channels: the layout np.asarray gives, with
    C = 1 for grayscale); a tensor's is its own, [C, H, W] after ToTensor.
    """
    if isinstance(sample, Image.Image):
        values = np.asarray(sample)
        if values.ndim == 2:
            values = values[:, :, None]  # (H, W, 1)
        kind, layout, dtype = "image", "HWC", str(values.dtype)
        channels = IMAGE_CHANNELS.get(sample.mode, _channels(values.shape[2]))
        low, high = float(values.min()), float(values.max())
        edges = np.linspace(0, 256, HISTOGRAM_BINS + 1)  # 8 pixel values per bin
        counts = [  # Pillow counts each band's 256 values; 8 of them per bin
            np.asarray(sample.histogram()[256 * c : 256 * (c + 1)])
            .reshape(HISTOGRAM_BINS, -1)
            .sum(1)
            .tolist()
            for c in range(values.shape[2])
        ]
        picture, how = sample, "the picture's own pixels"
        height, width = _fit(sample.height, sample.width, preview_side)
        if (height, width) != (sample.height, sample.width):
            picture = sample.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
        shape = list(values.shape)
        mode: str | None = sample.mode
    else:
        tensor = sample.detach()
        # min and max are nan when any value is, and inf when one is: no mask of the tensor
        low, high = float(tensor.min()), float(tensor.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise LessonInputError(
                "the values overflowed float32 (inf or nan): use a smaller factor or a larger std."
            )
        array = tensor.numpy()
        per_channel = list(array) if array.ndim == 3 else [array]
        kind, layout, dtype = "tensor", "CHW", str(tensor.dtype).removeprefix("torch.")
        channels = _channels(len(per_channel))
        span = (low, high) if high > low else (low - 0.5, high + 0.5)
        bins = HISTOGRAM_BINS if high > low else 1
        edges = np.linspace(span[0], span[1], bins + 1)
        with np.errstate(over="ignore"):
            wide = not np.isfinite(np.float32(span[1]) - np.float32(span[0]))
        # numpy bins float32 values in float32, which fails on a span past float32's largest
        # value (a tiny std): count that one in float64 instead
        bounds = (np.float64(span[0]), np.float64(span[1])) if wide else span
        counts = [np.histogram(c, bins=bins, range=bounds)[0].tolist() for c in per_channel]
        picture, how = tensor_for_display(tensor, preview_side)
        shape = list(tensor.shape)
        mode = None
    height, width = (shape[0], shape[1]) if kind == "image" else (shape[-2], shape[-1])
    if max(height, width) > preview_side:
        how += f", shrunk to fit {preview_side} px"
    return {
        "kind": kind,
        "shape": shape,
        "layout": layout,
        "dtype": dtype,
        "mode": mode,
        "min": low,
        "max": high,
        "preview": png_data_url(picture),  # speed over a few bytes: it is shown, not stored
        "preview_size": [picture.height, picture.width],
        "display": how,
        "histogram": {"channels": channels, "edges": edges.tolist(), "counts": counts},
    }
