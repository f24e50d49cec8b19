"""Transforms, as the notes teach them: classes with ``__call__(sample)``, chained by ``Compose``.

Each transform is a small class: its ``__init__`` keeps the settings and its ``__call__`` takes a
sample and returns the transformed one. A PIL image stays a PIL image until ``ToTensor`` turns it
into a float32 ``(C, H, W)`` tensor in [0, 1]; image transforms (resize, crops, rotate, grayscale)
refuse a tensor and tensor transforms (normalize, multiply) refuse an image, with a message that
says where in the pipeline they belong. ``PictureDataset`` applies a transform in ``__getitem__``,
as the notes describe. torchvision is not needed: these are the same ideas, written out.

The rest of the module turns a pipeline (the API's JSON list, or the page's compact URL string)
into validated transforms, runs them one stage at a time and describes every stage (kind, shape,
dtype, value range, a PNG preview and a histogram) as plain numbers for the page and the API.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from app.lessons.errors import LessonInputError, check_limit
from app.lessons.images import SAMPLES, png_data_url, sample_image

Sample = Image.Image | torch.Tensor


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
        return f"Rotate({_number(self.degrees)})"


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
        mean = ", ".join(_number(v) for v in self.mean)
        std = ", ".join(_number(v) for v in self.std)
        return f"Normalize(mean=[{mean}], std=[{std}])"


class MultiplyTransform:
    """A custom transform: multiply every value by ``factor``. A class with __call__ is enough."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, sample: Sample) -> torch.Tensor:
        tensor = require_tensor(sample, "MultiplyTransform")
        return tensor * self.factor

    def __repr__(self) -> str:
        return f"MultiplyTransform({_number(self.factor)})"


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


# ---- pipelines: the API's JSON list and the page's URL string, validated -----------------------


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


def _number(value: float) -> str:
    """A number as code writes it: 30 rather than 30.0, and every digit of 0.485."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _show(value: Any) -> str:
    """A learner's value, quoted briefly for a message."""
    return repr(value)[:40]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
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
        values = [value] if _is_number(value) else value
        if (
            not isinstance(values, list | tuple)
            or not 1 <= len(values) <= MAX_CHANNEL_VALUES
            or not all(_is_number(v) and math.isfinite(v) for v in values)
        ):
            raise LessonInputError(
                f"{where}: {name} must be a list of 1 to {MAX_CHANNEL_VALUES} numbers (one per "
                f"channel), such as [0.5] or [0.485, 0.456, 0.406]; got {_show(value)}."
            )
        if kind == "positive values" and min(values) <= 0:
            raise LessonInputError(f"{where}: every std must be above 0; got {_show(value)}.")
        return [float(v) for v in values]
    if not _is_number(value) or not math.isfinite(value):
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
        return "_".join(_number(v) for v in value)
    return _number(value)


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


# ---- describing a stage: what the page and the API show ---------------------------------------

HISTOGRAM_BINS = 32
IMAGE_CHANNELS = {"RGB": ["R", "G", "B"], "L": ["L"]}


def _channels(count: int) -> list[str]:
    return (
        ["R", "G", "B"] if count == 3 else ["L"] if count == 1 else [str(i) for i in range(count)]
    )


def _png(image: Image.Image) -> str:
    return png_data_url(image)  # previews: speed over a few bytes


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
    lo = x.amin(dim=(1, 2), keepdim=True)  # (C, 1, 1), over the whole tensor
    hi = x.amax(dim=(1, 2), keepdim=True)
    height, width = _fit(x.shape[1], x.shape[2], side)
    if (height, width) != tuple(x.shape[1:]):
        x = torch.nn.functional.interpolate(
            x[None], size=(height, width), mode="bilinear", antialias=True
        )[0]  # (C, height, width)
    if lo.min() >= 0 and hi.max() <= 1:
        pixels = x * 255
        how = "values × 255 (they are in [0, 1], as ToPILImage shows them)"
    else:
        span = hi - lo
        scaled = torch.where(span > 0, (x - lo) / span.clamp_min(1e-30), torch.full_like(x, 0.5))
        pixels = scaled * 255
        how = "min-max scaled per channel to 0…255 (the values are outside [0, 1])"
    array = pixels.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
    if array.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(array), "RGB"), how
    # one channel (or an unusual count): the channels side by side in gray
    tiled = np.concatenate([array[:, :, c] for c in range(array.shape[2])], axis=1)
    return Image.fromarray(np.ascontiguousarray(tiled), "L"), how


def describe(sample: Sample, preview_side: int) -> dict[str, Any]:
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
        "preview": _png(picture),
        "preview_size": [picture.height, picture.width],
        "display": how,
        "histogram": {"channels": channels, "edges": edges.tolist(), "counts": counts},
    }


def run_pipeline(
    image: Image.Image,
    steps: Sequence[Step],
    limits: TransformLimits,
    preview_side: int = 256,
    stop_at_error: bool = False,
) -> dict[str, Any]:
    """The input and every stage after it, described; one Compose runs the transforms.

    A transform that refuses its sample (a tensor given to Resize) ends the run: with
    ``stop_at_error`` the message is raised (the API's 422), otherwise it comes back as
    ``error`` with the stages before it (the page shows how far the pipeline got).
    """
    check_sizes(steps, image.height, image.width, limits)
    compose = build(steps)
    result: dict[str, Any] = {
        "input": describe(image, preview_side) | {"name": "input", "call": "the picture"},
        "stages": [],
        "error": None,
        "compose": repr(compose),
    }
    stages = compose.stages(image)
    for number, (step, transform) in enumerate(zip(steps, compose.transforms, strict=True), 1):
        try:
            sample = next(stages)
            described = describe(sample, preview_side)
        except LessonInputError as error:
            message = f"Stage {number} ({step.name}): {error}"
            if stop_at_error:
                raise LessonInputError(message) from None
            result["error"] = {"stage": number, "message": message}
            break
        result["stages"].append({"name": step.name, "call": repr(transform)} | described)
    return result


def dataset_items(
    steps: Sequence[Step], limits: TransformLimits, preview_side: int = 96
) -> list[dict[str, Any]]:
    """``dataset[i]`` for every picture of PictureDataset with the pipeline as its transform."""
    dataset = PictureDataset(transform=build(steps))
    items = []
    for index in range(len(dataset)):
        name, label = PICTURES[index]
        item: dict[str, Any] = {"index": index, "picture": name, "label": label}
        try:
            picture = dataset.pictures[index]
            check_sizes(steps, picture.height, picture.width, limits)
            sample, target = dataset[index]
            item |= {"target": target, **describe(sample, preview_side), "error": None}
        except LessonInputError as error:
            item |= {"target": dataset.targets[index], "error": str(error)}
        item.pop("histogram", None)
        items.append(item)
    return items


# ---- the page --------------------------------------------------------------------------------


# The contract's example pipeline: every kind of stage, ending in a normalized 1-channel tensor.
DEFAULT_PIPELINE = "resize:64x64,grayscale,rotate:30,to_tensor,normalize:0.5:0.5"


@dataclass(frozen=True)
class TransformParams:
    """What the page's URL holds (an uploaded picture cannot be in it)."""

    p: str = DEFAULT_PIPELINE  # the pipeline, as pipeline_from_url reads it
    sample: str = "flower"  # neighbouring pixels alike, so resizing and rotating read clearly
    stage: int = -1  # the stage the histogram shows: 0 the input, 1.. a transform, -1 the last


def check_params(params: TransformParams, limits: TransformLimits) -> list[Step]:
    """The page's pipeline, validated, and its sample and stage checked."""
    if params.sample not in SAMPLES:
        raise LessonInputError(
            f"Unknown sample {params.sample[:40]!r}: choose one of {', '.join(SAMPLES)}."
        )
    return check_pipeline(pipeline_from_url(params.p), limits)


def explore(params: TransformParams, limits: TransformLimits, preview_side: int) -> dict[str, Any]:
    """Everything the page shows: every stage on the sample, and the dataset through it."""
    steps = check_params(params, limits)
    run = run_pipeline(sample_image(params.sample), steps, limits, preview_side)
    shown = len(run["stages"])
    stage = shown if params.stage < 0 else min(params.stage, shown)
    return run | {
        "stage": stage,
        "pipeline": [step.as_json() for step in steps],
        "p": pipeline_to_url(steps),
        "classes": list(dict.fromkeys(TRANSFORMS[step.name].__name__ for step in steps)),
        "dataset": dataset_items(steps, limits),
    }


def torchvision_equivalent(transform: Transform) -> str:
    """The torchvision.transforms call that does the same (``T`` is torchvision.transforms)."""
    if isinstance(transform, Resize | CenterCrop | Normalize | Grayscale | ToTensor):
        return f"T.{transform!r}"
    if isinstance(transform, RandomCrop):
        return f"T.RandomCrop({transform.size!r})"
    if isinstance(transform, Rotate):
        degrees = _number(transform.degrees)
        return f"T.RandomRotation(({degrees}, {degrees}), T.InterpolationMode.BILINEAR)"
    if isinstance(transform, HorizontalFlip):
        return "T.RandomHorizontalFlip(p=1.0)"
    if isinstance(transform, MultiplyTransform):
        return f"T.Lambda(lambda x: x * {_number(transform.factor)})"
    return repr(transform)


def final_kind(steps: Sequence[Step]) -> str:
    """What the pipeline returns, when its order is right: a tensor after to_tensor."""
    return "tensor" if any(step.name == "to_tensor" for step in steps) else "image"


def snippet(params: TransformParams) -> str:
    """The page's pipeline as code that runs from the project folder."""
    steps = check_pipeline(pipeline_from_url(params.p), None)
    compose = build(steps)
    names = list(dict.fromkeys(type(t).__name__ for t in compose.transforms))
    imports = ", ".join(["Compose", *names, "PictureDataset"])
    lines = [
        "# Run it from the project folder: these are the classes this page shows.",
        "from app.lessons.images import sample_image",
        f"from app.lessons.transforms import {imports}",
        "",
        "transform = Compose([",
        *[f"    {t!r}," for t in compose.transforms],
        "])",
        f"image = sample_image({params.sample!r})  # or Image.open(path).convert('RGB')",
        "x = transform(image)  # each transform gets what the one before returned",
    ]
    if final_kind(steps) == "tensor":
        lines.append("print(x.shape, x.dtype, x.min().item(), x.max().item())")
    else:
        lines.append("print(x.size, x.mode)  # still a PIL image: (W, H) and its mode")
    lines += [
        "",
        "dataset = PictureDataset(transform=transform)",
        "sample, target = dataset[0]  # __getitem__ applies the transform",
        "print(len(dataset), target)",
        "",
        "# The same pipeline with torchvision (import torchvision.transforms as T):",
        "# T.Compose([",
        *[f"#     {torchvision_equivalent(t)}," for t in compose.transforms],
        "# ])",
    ]
    if any(isinstance(t, RandomCrop) for t in compose.transforms):
        lines.append("# (seed torchvision's RandomCrop with torch.manual_seed(seed) first)")
    return "\n".join(lines) + "\n"
