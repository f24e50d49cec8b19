"""Pictures from strangers, opened safely, sample pictures the project draws itself, and the one
way a tensor's values become a picture's levels.

Every image endpoint goes through ``open_image``: the format is sniffed from the bytes (never the
name or the declared type), the pixel count is checked against the limit before any pixel is
decoded (Pillow's decompression-bomb guard is the second wall, set to the same limit), EXIF
orientation is applied, and every mode (palette, alpha, 16-bit, CMYK, greyscale) becomes RGB.
"""

from __future__ import annotations

import base64
import io
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from app.lessons.errors import LessonError, LessonInputError

FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
FORMAT_NAMES = "PNG, JPEG, GIF, WebP or BMP"


class UnsupportedImage(LessonError):
    """The bytes are not an image in a supported format (HTTP 415)."""


class ImageTooLarge(LessonError):
    """The picture has more pixels than the limit allows (HTTP 413)."""


@dataclass(frozen=True)
class OpenedImage:
    """An uploaded picture as RGB, with what it was before conversion."""

    image: Image.Image  # RGB, upright
    format: str
    original_mode: str
    frames: int


def guard_pixels(limit: int) -> None:
    """Point Pillow's decompression-bomb guard at our limit (it raises above twice that)."""
    Image.MAX_IMAGE_PIXELS = limit


def open_image(data: bytes, max_pixels: int) -> OpenedImage:
    """Decode an uploaded file into an upright RGB image, or raise a learner-readable error."""
    if not data:
        raise LessonInputError("The file is empty (0 bytes): choose a picture to upload.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(_too_many(width, height, max_pixels))
            frames = getattr(image, "n_frames", 1)
            image.seek(0)  # an animation gives its first frame
            image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        if isinstance(exc, Image.DecompressionBombError):
            raise ImageTooLarge(_bomb(exc, max_pixels)) from None
        raise UnsupportedImage(
            f"This file is not a picture we can read: upload a {FORMAT_NAMES} image."
        ) from None
    except Image.DecompressionBombWarning as exc:  # raised inside Image.open: no size read yet
        raise ImageTooLarge(_bomb(exc, max_pixels)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise LessonInputError(
            f"The {image.format if 'image' in locals() else ''} file is truncated or corrupt "
            f"and cannot be decoded ({exc})."
        ) from None
    original_mode = image.mode
    # In place: a copy of a 12-megapixel photo is 36 MB more for the worker to hold.
    ImageOps.exif_transpose(image, in_place=True)
    return OpenedImage(to_rgb(image), image.format or "?", original_mode, frames)


def _bomb(exc: Exception, limit: int) -> str:
    """Pillow's guard refused the picture while opening it; its message holds the pixel count."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{found.group(1)} pixels" if found else "too many pixels"
    return (
        f"The image has {size}, over the limit of {limit} pixels (setting max_image_pixels): "
        "resize it first."
    )


def _too_many(width: int, height: int, limit: int) -> str:
    return (
        f"The image is {width}×{height} = {width * height} pixels, over the limit of {limit} "
        "pixels (setting max_image_pixels): resize it first."
    )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB; transparency is laid on white, as a page shows it."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: stretch the range that is used onto 0..255
        extrema = image.getextrema()  # (min, max) for a one-band image
        lo, hi = float(extrema[0]), float(extrema[1])  # type: ignore[arg-type]
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        image = image.point(lambda v: (v - lo) * scale).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    # L, 1, CMYK, YCbCr, LAB, HSV, RGB. An RGB picture is copied too, on purpose: the copy lets
    # the opened file go, and with it the decoder's own buffers (libwebp keeps two frames).
    return image.convert("RGB")


# ---- sample pictures, drawn here so every page works with no upload and no download -------------


def _flower(size: int = 96) -> Image.Image:
    """The notes' purple flower: neighbouring pixels are alike, as convolutions assume."""
    image = Image.new("RGB", (size, size), (214, 236, 208))
    draw = ImageDraw.Draw(image)
    c = size / 2
    draw.rectangle([c - 2, c, c + 2, size], fill=(60, 130, 60))
    for k in range(8):
        angle = k * math.pi / 4
        x, y = c + 0.28 * size * math.cos(angle), c + 0.28 * size * math.sin(angle)
        r = 0.17 * size
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(128, 64, 170), outline=(90, 40, 130))
    draw.ellipse(
        [c - 0.12 * size, c - 0.12 * size, c + 0.12 * size, c + 0.12 * size], fill=(245, 200, 40)
    )
    return image


def _shapes(size: int = 96) -> Image.Image:
    """Edges in every direction: a square, a circle and a triangle."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    s = size
    draw.rectangle([0.08 * s, 0.1 * s, 0.42 * s, 0.44 * s], fill=(220, 50, 47))
    draw.ellipse([0.55 * s, 0.08 * s, 0.92 * s, 0.45 * s], fill=(38, 139, 210))
    draw.polygon(
        [(0.5 * s, 0.55 * s), (0.1 * s, 0.93 * s), (0.9 * s, 0.93 * s)], fill=(133, 153, 0)
    )
    return image


def _checkerboard(size: int = 64, square: int = 8) -> Image.Image:
    """Sharp horizontal and vertical edges: the Sobel filters' favourite."""
    image = Image.new("RGB", (size, size))
    pixels = [
        (255, 255, 255) if ((x // square) + (y // square)) % 2 == 0 else (20, 20, 20)
        for y in range(size)
        for x in range(size)
    ]
    image.putdata(pixels)
    return image


def _gradient(size: int = 64) -> Image.Image:
    """Red rises left to right, green top to bottom, blue is constant: one channel at a time."""
    image = Image.new("RGB", (size, size))
    step = 255 / (size - 1)
    image.putdata(
        [(round(x * step), round(y * step), 128) for y in range(size) for x in range(size)]
    )
    return image


def _tiny(size: int = 5) -> Image.Image:
    """The notes' 5x5 RGB picture: 75 input features."""
    image = Image.new("RGB", (size, size))
    image.putdata(
        [((37 * i) % 256, (91 * i + 40) % 256, (53 * i + 200) % 256) for i in range(size * size)]
    )
    return image


SAMPLES = {
    "flower": ("A purple flower", _flower),
    "shapes": ("Square, circle, triangle", _shapes),
    "checkerboard": ("Checkerboard", _checkerboard),
    "gradient": ("Colour gradient", _gradient),
    "tiny": ("The notes' 5×5 picture", _tiny),
}


@lru_cache(maxsize=len(SAMPLES))
def sample_image(name: str) -> Image.Image:
    """One of the project's own sample pictures, by name."""
    if name not in SAMPLES:
        raise LessonInputError(f"Unknown sample {name!r}: choose one of {', '.join(SAMPLES)}.")
    return SAMPLES[name][1]()


def sample_png(name: str) -> bytes:
    """A sample picture as PNG bytes, exactly as if a learner had uploaded it."""
    buffer = io.BytesIO()
    sample_image(name).save(buffer, "PNG")
    return buffer.getvalue()


def png_data_url(image: Image.Image) -> str:
    """``image`` as a PNG data URL; speed over size (compress level 1): it is shown, not stored."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---- tensors shown as pictures ---------------------------------------------------------------


def display_levels(
    values: torch.Tensor,
    scale: tuple[float, float] | None = None,
    shrink: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """(C, H, W) values as (C, h, w) uint8 levels 0..255: how every preview draws a tensor.

    With ``scale`` = (lo, hi), a known range (0..1 for ToTensor's output, 0..255 for pixels), lo
    is level 0 and hi 255 on every channel. Without it each channel is min-max scaled on its own:
    its smallest value 0, its largest 255, and a flat channel (one value) mid-level 128. The range
    is that of ``values`` before ``shrink`` makes the preview smaller, so a level means the same
    value in the preview as in the whole tensor.
    """
    if scale is None:
        row_low, row_high = torch.aminmax(values, dim=2)  # (C, H): one pass over the values
        low = row_low.amin(dim=1).view(-1, 1, 1)  # (C, 1, 1): each channel's own range
        high = row_high.amax(dim=1).view(-1, 1, 1)
    else:
        low = torch.full((1, 1, 1), scale[0], dtype=values.dtype)
        high = torch.full((1, 1, 1), scale[1], dtype=values.dtype)
    if shrink is not None:
        values = shrink(values)
    span = high - low
    scaled = torch.where(span > 0, (values - low) / span.clamp_min(1e-30), 0.5)  # 0..1
    return (scaled * 255).round().clamp(0, 255).to(torch.uint8)
