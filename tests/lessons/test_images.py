"""Opening pictures from strangers: every format, every mode, and every way a file can be bad."""

from __future__ import annotations

import gc
import io
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps

from app.lessons.errors import LessonInputError
from app.lessons.images import (
    SAMPLES,
    ImageTooLarge,
    UnsupportedImage,
    display_levels,
    open_image,
    sample_image,
    sample_png,
)

LIMIT = 4096 * 4096


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def rgb(width: int = 6, height: int = 4) -> Image.Image:
    data = np.arange(width * height * 3, dtype=np.uint8).reshape(height, width, 3) * 5
    return Image.fromarray(data, "RGB")


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "GIF", "WEBP", "JPEG"])
def test_every_supported_format_opens_as_rgb(fmt: str) -> None:
    options = {"lossless": True} if fmt == "WEBP" else {}
    opened = open_image(encode(rgb(), fmt, **options), LIMIT)
    assert opened.image.mode == "RGB" and opened.image.size == (6, 4)
    assert opened.format == fmt
    if fmt in ("PNG", "BMP", "WEBP"):  # lossless: the pixels come back exactly
        assert np.array_equal(np.asarray(opened.image), np.asarray(rgb()))


def test_the_format_is_sniffed_from_the_bytes_not_the_name() -> None:
    jpeg = encode(rgb(), "JPEG")
    assert open_image(jpeg, LIMIT).format == "JPEG"  # whatever the file was called


@pytest.mark.parametrize(
    "data",
    [
        b"hello, I am a text file called cat.png\n",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        b"GIF89",  # too short to be anything
    ],
)
def test_a_file_that_is_not_a_supported_picture_is_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedImage, match="PNG, JPEG, GIF, WebP or BMP"):
        open_image(data, LIMIT)


def test_a_tiff_is_a_picture_but_not_one_we_accept() -> None:
    with pytest.raises(UnsupportedImage):
        open_image(encode(rgb(), "TIFF"), LIMIT)


def test_an_empty_file_is_refused_by_name() -> None:
    with pytest.raises(LessonInputError, match="empty"):
        open_image(b"", LIMIT)


def test_a_truncated_file_is_refused_as_corrupt() -> None:
    data = encode(rgb(64, 64), "PNG")
    with pytest.raises(LessonInputError, match="truncated or corrupt"):
        open_image(data[: len(data) // 2], LIMIT)


def test_too_many_pixels_are_refused_before_decoding_and_name_the_limit() -> None:
    big = encode(Image.new("RGB", (300, 300)), "PNG")
    with pytest.raises(ImageTooLarge, match=r"300×300 = 90000 pixels.*10000.*max_image_pixels"):
        open_image(big, 10_000)


def test_a_decompression_bomb_is_refused_quickly() -> None:
    # 20000 x 20000 pixels of one colour: a few hundred KB of PNG, 1.2 GB once decoded
    bomb = encode(Image.new("L", (20000, 20000)), "PNG", optimize=True)
    assert len(bomb) < 2_000_000
    started = time.monotonic()
    with pytest.raises(ImageTooLarge):
        open_image(bomb, LIMIT)
    assert time.monotonic() - started < 1.0


def test_exif_orientation_is_applied() -> None:
    image = rgb(6, 4)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    opened = open_image(encode(image, "JPEG", exif=exif.tobytes()), LIMIT)
    assert opened.image.size == (4, 6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_in_place_gives_the_pixels_of_a_transposed_copy(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(rgb(6, 4), "PNG", exif=exif.tobytes())
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))  # a copy, as before
    opened = open_image(data, LIMIT)
    assert np.array_equal(np.asarray(opened.image), np.asarray(expected.convert("RGB")))


def open_files() -> int:
    """Pillow file objects alive now (each keeps its decoder, and libwebp's keeps two frames)."""
    gc.collect()
    return sum(issubclass(type(o), ImageFile.ImageFile) for o in gc.get_objects())


@pytest.mark.parametrize("fmt", ["WEBP", "PNG", "GIF", "JPEG"])
def test_only_the_rgb_picture_outlives_open_image_not_the_file_or_its_decoder(fmt: str) -> None:
    data = encode(rgb(), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    before = open_files()
    opened = open_image(data, LIMIT)
    assert open_files() == before
    assert type(opened.image) is Image.Image and opened.image.size == (6, 4)


def test_palette_with_transparency_is_laid_on_white() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putdata([0, 1])
    opened = open_image(encode(image, "PNG", transparency=1), LIMIT)
    assert np.asarray(opened.image).tolist() == [[[255, 0, 0], [255, 255, 255]]]
    assert opened.original_mode == "P"


def test_alpha_is_composited_on_white() -> None:
    image = Image.new("RGBA", (1, 1), (0, 0, 0, 128))
    pixel = np.asarray(open_image(encode(image, "PNG"), LIMIT).image)[0, 0]
    assert np.allclose(pixel, [127, 127, 127], atol=1)


def test_sixteen_bit_greyscale_is_stretched_to_eight_bits() -> None:
    data = np.array([[0, 1000, 2000]], dtype=np.uint16)
    image = Image.fromarray(data)  # mode I;16
    opened = open_image(encode(image, "PNG"), LIMIT)
    assert np.asarray(opened.image)[0, :, 0].tolist() == [0, 127, 255]


def test_cmyk_becomes_rgb() -> None:
    image = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure red in CMYK
    opened = open_image(encode(image, "JPEG"), LIMIT)
    assert opened.image.mode == "RGB"
    r, g, b = np.asarray(opened.image)[0, 0]
    assert r > 200 and g < 60 and b < 60


def test_greyscale_becomes_three_equal_channels() -> None:
    image = Image.fromarray(np.array([[10, 200]], dtype=np.uint8), "L")
    pixels = np.asarray(open_image(encode(image, "PNG"), LIMIT).image)
    assert pixels.tolist() == [[[10, 10, 10], [200, 200, 200]]]


def test_an_animation_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    opened = open_image(buffer.getvalue(), LIMIT)
    assert opened.frames == 2
    assert tuple(np.asarray(opened.image)[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_samples_are_drawn_here_and_open_like_uploads(name: str) -> None:
    opened = open_image(sample_png(name), LIMIT)
    assert np.array_equal(np.asarray(opened.image), np.asarray(sample_image(name)))


def test_the_tiny_sample_is_the_notes_five_by_five_picture() -> None:
    assert np.asarray(sample_image("tiny")).shape == (5, 5, 3)  # 75 input features


def test_an_unknown_sample_is_refused() -> None:
    with pytest.raises(LessonInputError, match="Unknown sample"):
        sample_image("cat")


# ---- tensors shown as pictures: one scaling for the CNN maps and the Transforms previews ------


def numpy_levels(x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
    """(x - lo) / (hi - lo) on 0..255, rounded half to even as torch rounds; a flat one is 128."""
    span = np.broadcast_to(np.asarray(hi, dtype=np.float64) - lo, x.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(span > 0, (x - lo) / span, 0.5)
    return np.clip(np.round(scaled * 255), 0, 255).astype(np.uint8)


def test_display_levels_min_max_scale_each_channel_on_its_own() -> None:
    rng = np.random.default_rng(4)
    x = np.stack([rng.normal(0, 3, (5, 7)), rng.uniform(10, 20, (5, 7)), np.full((5, 7), 2.5)])
    levels = display_levels(torch.from_numpy(x))
    lo, hi = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    assert levels.dtype == torch.uint8 and tuple(levels.shape) == (3, 5, 7)
    np.testing.assert_array_equal(levels.numpy(), numpy_levels(x, lo, hi))
    assert levels[0].min() == 0 and levels[0].max() == 255  # the smallest dark, the largest bright
    assert (levels[2] == 128).all()  # a flat channel is the middle level, not 0 / 0


def test_display_levels_on_a_known_scale_keep_its_values() -> None:
    x = np.array([[[0.0, 0.2, 0.5], [0.9, 1.0, 0.3]], [[0.1] * 3, [0.1] * 3]])  # in [0, 1]
    levels = display_levels(torch.from_numpy(x), (0.0, 1.0))
    np.testing.assert_array_equal(levels.numpy(), numpy_levels(x, 0.0, 1.0))  # x * 255
    assert levels[1].tolist() == [[26] * 3] * 2  # flat, yet on the scale: 0.1 * 255, not 128
    pixels = np.array([[[0.0, 255.0], [51.0, 300.0]]])  # 0..255, one value past the end
    levels = display_levels(torch.from_numpy(pixels), (0.0, 255.0))
    assert levels.tolist() == [[[0, 255], [51, 255]]]


def test_display_levels_take_the_range_before_the_preview_is_shrunk() -> None:
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4)  # 0..15
    halves = x.reshape(1, 2, 2, 2, 2).mean(axis=(2, 4))  # 2×2 block means: 2.5 .. 12.5

    def shrink(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(t[None], 2)[0]

    levels = display_levels(torch.from_numpy(x), None, shrink)
    np.testing.assert_array_equal(levels.numpy(), numpy_levels(halves, 0.0, 15.0))
    assert levels.min() > 0 and levels.max() < 255  # the full map's 0 and 15 are the ends
