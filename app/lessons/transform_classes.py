"""Transforms, as the notes teach them: classes with ``__call__(sample)``, chained by ``Compose``.

Each transform is a small class: its ``__init__`` keeps the settings and its ``__call__`` takes a
sample and returns the transformed one. A PIL image stays a PIL image until ``ToTensor`` turns it
into a float32 ``(C, H, W)`` tensor in [0, 1]; image transforms (resize, crops, rotate, grayscale)
refuse a tensor and tensor transforms (normalize, multiply) refuse an image, with a message that
says where in the pipeline they belong. ``PictureDataset`` applies a transform in ``__getitem__``,
as the notes describe. torchvision is not needed: these are the same ideas, written out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from app.lessons.errors import LessonInputError
from app.lessons.images import sample_image

Sample = Image.Image | torch.Tensor


def code_number(value: float) -> str:
    """A number as code writes it: 30 rather than 30.0, and every digit of 0.485."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


class Transform(Protocol):
    """Anything with ``__call__(sample)``: all a transform needs, as the notes say."""

    def __call__(self, sample: Sample) -> Sample: ...


# ---- the transforms --------------------------------------------------------------------------


def require_image(sample: Sample, transform: str) -> Image.Image:
    """The sample as a PIL image, or a message saying where in the pipeline ``transform`` goes."""
    if isinstance(sample, Image.Image):
        return sample
    raise LessonInputError(
        f"{transform} works on images, but it got a tensor: put it before to_tensor."
    )


def require_tensor(sample: Sample, transform: str) -> torch.Tensor:
    """The sample as a tensor, or a message saying where in the pipeline ``transform`` goes."""
    if isinstance(sample, torch.Tensor):
        return sample
    raise LessonInputError(
        f"{transform} works on tensors, but it got an image: put it after to_tensor."
    )


def pair(size: int | tuple[int, int]) -> tuple[int, int]:
    """``64`` -> ``(64, 64)``; ``(64, 48)`` stays (height, width)."""
    return (size, size) if isinstance(size, int) else (size[0], size[1])


def resized_shape(height: int, width: int, size: int | tuple[int, int]) -> tuple[int, int]:
    """Resize's output (height, width): an int is the shorter side, the aspect ratio kept."""
    if not isinstance(size, int):
        return size[0], size[1]
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def centred_offset(length: int, crop: int) -> int:
    """Where a centred crop starts; negative when the crop is bigger (padded, as torchvision)."""
    return -((crop - length) // 2) if crop > length else int(round((length - crop) / 2.0))


class Resize:
    """Resize to (height, width); an int resizes the shorter side and keeps the aspect ratio."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = size

    def __call__(self, sample: Sample) -> Image.Image:
        image = require_image(sample, "Resize")
        height, width = resized_shape(image.height, image.width, self.size)
        return image.resize((width, height), Image.Resampling.BILINEAR)  # PIL sizes are (W, H)

    def __repr__(self) -> str:
        return f"Resize({self.size!r})"


class CenterCrop:
    """Cut the centre (height, width) window; a crop bigger than the image pads with black."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = size

    def __call__(self, sample: Sample) -> Image.Image:
        image = require_image(sample, "CenterCrop")
        height, width = pair(self.size)
        top = centred_offset(image.height, height)
        left = centred_offset(image.width, width)
        return image.crop((left, top, left + width, top + height))  # outside the image: 0

    def __repr__(self) -> str:
        return f"CenterCrop({self.size!r})"


class RandomCrop:
    """Cut a random (height, width) window; seeded, so the same pipeline replays the same crops."""

    def __init__(self, size: int | tuple[int, int], seed: int = 0) -> None:
        self.size = size
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)  # each call draws the next window

    def __call__(self, sample: Sample) -> Image.Image:
        image = require_image(sample, "RandomCrop")
        height, width = pair(self.size)
        if height > image.height or width > image.width:
            raise LessonInputError(
                f"RandomCrop({height}, {width}) needs a picture at least {height}×{width} "
                f"(H×W), but this one is {image.height}×{image.width}: resize it first."
            )
        top = int(torch.randint(0, image.height - height + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, image.width - width + 1, (1,), generator=self.generator))
        return image.crop((left, top, left + width, top + height))

    def __repr__(self) -> str:
        return f"RandomCrop({self.size!r}, seed={self.seed})"


class Rotate:
    """Rotate counter-clockwise by ``degrees`` about the centre; the corners fill with black."""

    def __init__(self, degrees: float) -> None:
        self.degrees = degrees

    def __call__(self, sample: Sample) -> Image.Image:
        image = require_image(sample, "Rotate")
        return image.rotate(self.degrees, resample=Image.Resampling.BILINEAR, fillcolor=0)

    def __repr__(self) -> str:
        return f"Rotate({code_number(self.degrees)})"


class HorizontalFlip:
    """Mirror left to right; works on an image and on a (C, H, W) tensor alike."""

    def __call__(self, sample: Sample) -> Sample:
        if isinstance(sample, torch.Tensor):
            return torch.flip(sample, dims=[-1])  # (C, H, W): the last axis is the width
        return sample.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def __repr__(self) -> str:
        return "HorizontalFlip()"


class Grayscale:
    """One channel of luma, L = R·299/1000 + G·587/1000 + B·114/1000 (ITU-R 601-2, Pillow's L)."""

    def __call__(self, sample: Sample) -> Image.Image:
        return require_image(sample, "Grayscale").convert("L")

    def __repr__(self) -> str:
        return "Grayscale()"


class ToTensor:
    """A PIL image, (H, W, C) of 0..255, becomes a float32 tensor (C, H, W) of 0..1."""

    def __call__(self, sample: Sample) -> torch.Tensor:
        if isinstance(sample, torch.Tensor):
            raise LessonInputError(
                "ToTensor turns an image into a tensor, but it got a tensor already: "
                "use it once, after the image transforms."
            )
        pixels = np.array(sample, dtype=np.uint8)  # (H, W, C), or (H, W) for one channel
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]  # (H, W, 1)
        # (C, H, W) as float32 in one copy, divided in place: a 12-megapixel photo is 144 MB
        # of float32, and a second one would double what this stage needs
        tensor = torch.from_numpy(pixels).permute(2, 0, 1)
        return tensor.to(torch.float32, memory_format=torch.contiguous_format).div_(255)

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """(x - mean) / std for each channel of a tensor: one mean and std per channel (or one)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = list(mean)
        self.std = list(std)

    def __call__(self, sample: Sample) -> torch.Tensor:
        tensor = require_tensor(sample, "Normalize")
        channels = tensor.shape[0]
        for what, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise LessonInputError(
                    f"Normalize has {len(values)} values for {what}, but the tensor has "
                    f"{channels} channel{'s' if channels != 1 else ''}: give {channels} "
                    "(one per channel) or 1 for all."
                )
        mean = torch.tensor(self.mean).view(-1, 1, 1)  # (C, 1, 1): the same for every pixel
        std = torch.tensor(self.std).view(-1, 1, 1)
        return (tensor - mean).div_(std)  # / std, in place: one new tensor, not two

    def __repr__(self) -> str:
        mean = ", ".join(code_number(v) for v in self.mean)
        std = ", ".join(code_number(v) for v in self.std)
        return f"Normalize(mean=[{mean}], std=[{std}])"


class MultiplyTransform:
    """A custom transform: multiply every value by ``factor``. A class with __call__ is enough."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, sample: Sample) -> torch.Tensor:
        tensor = require_tensor(sample, "MultiplyTransform")
        return tensor * self.factor

    def __repr__(self) -> str:
        return f"MultiplyTransform({code_number(self.factor)})"


class Compose:
    """Several transforms as one: each gets what the one before it returned, in list order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for transform in self.transforms:
            sample = transform(sample)
        return sample

    def stages(self, sample: Sample) -> Iterator[Sample]:
        """What each transform returns, one at a time: the values between the stages."""
        for transform in self.transforms:
            sample = transform(sample)
            yield sample

    def __repr__(self) -> str:
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"


# ---- a Dataset that applies the transform, as the notes describe -----------------------------

CLASSES = ("flower", "shapes", "pattern")
# (sample picture, class): the project's own pictures, so the dataset needs no download
PICTURES = (("flower", "flower"), ("shapes", "shapes"), ("checkerboard", "pattern"),
            ("gradient", "pattern"))  # fmt: skip


class PictureDataset(Dataset[tuple[Sample, int]]):
    """A few labelled pictures; ``__getitem__`` applies the transform before returning them."""

    def __init__(self, transform: Transform | None = None) -> None:
        self.pictures = [sample_image(name) for name, _ in PICTURES]
        self.targets = [CLASSES.index(label) for _, label in PICTURES]
        self.transform = transform  # passed as a keyword: PictureDataset(transform=...)

    def __getitem__(self, index: int) -> tuple[Sample, int]:
        sample: Sample = self.pictures[index]
        if self.transform is not None:
            sample = self.transform(sample)
        return sample, self.targets[index]

    def __len__(self) -> int:
        return len(self.pictures)
