"""``torchvision.transforms`` and ``torchvision.datasets`` for learner programs, sans torchvision.

This server's CPU PyTorch cannot load the torchvision wheel, so the transforms are the Transforms
lesson's (``app.lessons.transform_classes``) given torchvision's constructors, defaults, random
draws (torch's global RNG, in torchvision's order), tensor algorithms and error messages: a
seeded script gets the values plain torchvision gives. A transform object has no ``__call__`` (no
library can run it behind the guard's back): the interpreter applies it with ``call_transform``,
which checks the size of what it will make first. ``Compose`` and ``Lambda`` call learner
callables through ``guard.call``. The datasets that download fail at their line, naming the data
bundled with scikit-learn instead.
"""

from __future__ import annotations

import enum
import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as torch_f
from PIL import Image

from app.lessons import transform_classes as lesson
from app.sandbox.guards import Guard, size_int
from app.sandbox.library import Args, Kwargs, Namespace, SafeFunction, register_type
from app.sandbox.limits import SandboxRefused, over_limit
from app.sandbox.modules import register

NOTICE = (
    "torchvision.transforms here is the Transforms lesson's implementation with torchvision's "
    "semantics (this server's CPU PyTorch cannot load the torchvision wheel)"
)
# Compose inside Compose inside ...: deeper than this is refused (a Compose may contain itself).
_DEPTH_KEY = "torchvision.depth"


class InterpolationMode(enum.Enum):
    """torchvision's interpolation modes (the values its reprs print)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


_PIL_MODES = {
    InterpolationMode.NEAREST: Image.Resampling.NEAREST,
    InterpolationMode.BILINEAR: Image.Resampling.BILINEAR,
    InterpolationMode.BICUBIC: Image.Resampling.BICUBIC,
}


def _interpolation(value: Any) -> InterpolationMode:
    if isinstance(value, InterpolationMode):
        return value
    raise TypeError(
        "Argument interpolation should be a InterpolationMode or a corresponding Pillow integer "
        "constant"
    )


def _dimensions(img: Any) -> tuple[int, int, int]:
    """(channels, height, width) as torchvision's ``get_dimensions`` reads them."""
    if isinstance(img, torch.Tensor):
        if img.ndim < 2:
            raise TypeError("Tensor is not a torch image.")
        channels = 1 if img.ndim == 2 else int(img.shape[-3])
        return channels, int(img.shape[-2]), int(img.shape[-1])
    if isinstance(img, Image.Image):
        return len(img.getbands()), img.height, img.width
    raise TypeError(f"Unexpected type {type(img)}")


def _require_pil(img: Any) -> Image.Image:
    if not isinstance(img, Image.Image):
        raise TypeError(f"img should be PIL Image. Got {type(img)}")
    return img


def _lead(img: torch.Tensor) -> int:
    """Elements of one (H, W) plane times this: everything before the last two dimensions."""
    return math.prod(img.shape[:-2])


def _setup_size(size: Any, message: str) -> tuple[int, int]:
    """torchvision's ``_setup_size``: an int n is (n, n), a sequence of one or two ints (h, w)."""
    number = size_int(size)
    if number is not None:
        return number, number
    if isinstance(size, float):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 1:
        return _size(size[0]), _size(size[0])
    if not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(message)
    return _size(size[0]), _size(size[1])


def _size(value: Any) -> int:
    number = None if isinstance(value, float) else size_int(value)
    if number is None:
        raise TypeError(f"a size must be an int, not {type(value).__name__}")
    return number


def _pad_tensor(img: torch.Tensor, ltrb: list[int], fill: float, mode: str) -> torch.Tensor:
    """torchvision's tensor ``pad`` for constant, edge and reflect padding (left, top, right,
    bottom)."""
    if mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
    if mode == "symmetric":
        raise SandboxRefused("padding_mode='symmetric' is not available here: use 'reflect'")
    left, top, right, bottom = ltrb
    squeeze = img.ndim < 4
    x = img.unsqueeze(0) if squeeze else img
    out_dtype = x.dtype
    cast = mode != "constant" and x.dtype not in (torch.float32, torch.float64)
    if cast:
        x = x.to(torch.float32)
    if mode == "constant":
        x = torch_f.pad(x, [left, right, top, bottom], mode="constant", value=float(fill))
    else:
        x = torch_f.pad(x, [left, right, top, bottom], mode="replicate" if mode == "edge" else mode)
    if squeeze:
        x = x.squeeze(0)
    return x.to(out_dtype) if cast else x


def _padding_ltrb(padding: Any) -> list[int]:
    if isinstance(padding, int) and not isinstance(padding, bool):
        return [padding] * 4
    if not isinstance(padding, list | tuple):
        raise TypeError("Got inappropriate padding arg")
    values = [_size(p) for p in padding]
    if len(values) == 1:
        return values * 4
    if len(values) == 2:
        return [values[0], values[1], values[0], values[1]]
    if len(values) == 4:
        return values
    raise ValueError(
        f"Padding must be an int or a 1, 2, or 4 element tuple, not a {len(values)} element tuple"
    )


# -- the transforms --------------------------------------------------------------------------------


class Transform:
    """A torchvision transform as a program value, applied by ``call_transform``."""

    def apply(self, guard: Guard, img: Any) -> Any:
        raise NotImplementedError

    @property
    def kind(self) -> str:
        return type(self).__name__


class Compose(Transform):
    """Each transform gets what the one before it returned (learner callables too)."""

    def __init__(self, transforms: Any) -> None:
        self.transforms = transforms  # the same list, as torchvision keeps it

    def apply(self, guard: Guard, img: Any) -> Any:
        depth = guard.extra(_DEPTH_KEY, lambda: [0])
        if depth[0] >= guard.limits.max_call_depth:
            raise over_limit("transforms nested", guard.limits, "max_call_depth")
        depth[0] += 1
        try:
            for transform in guard.bounded(self.transforms):
                guard.check_deadline()
                img = guard.check_result(apply_any(guard, transform, img))
        finally:
            depth[0] -= 1
        return img

    def __repr__(self) -> str:
        lines = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"Compose({lines}\n)"


class ToTensor(Transform):
    """A PIL image or an (H, W, C) array to a (C, H, W) tensor; uint8 scaled to [0, 1]."""

    def apply(self, guard: Guard, pic: Any) -> Any:
        if isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
            guard.check_elements(int(pic.size))
            if pic.ndim == 2:
                pic = pic[:, :, None]  # (H, W, 1)
            img = torch.from_numpy(pic.transpose((2, 0, 1))).contiguous()  # (C, H, W)
            if img.dtype == torch.uint8:
                return img.to(dtype=torch.get_default_dtype()).div(255)
            return img
        if isinstance(pic, Image.Image):
            guard.check_elements(pic.width * pic.height * len(pic.getbands()))
            if pic.mode in ("I", "I;16", "F"):
                nptype = {"I": np.int32, "I;16": np.int16, "F": np.float32}[pic.mode]
                raw = torch.from_numpy(np.array(pic, nptype, copy=True))
                return raw.view(pic.height, pic.width, 1).permute((2, 0, 1)).contiguous()
            return lesson.ToTensor()(pic.convert("L") if pic.mode == "1" else pic)
        raise TypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize(Transform):
    """(x - mean) / std per channel of a float tensor (..., C, H, W)."""

    def __init__(self, mean: Any, std: Any, inplace: bool = False) -> None:
        self.mean = mean
        self.std = std
        self.inplace = inplace

    def apply(self, guard: Guard, tensor: Any) -> Any:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"img should be Tensor Image. Got {type(tensor)}")
        _dimensions(tensor)
        if not tensor.is_floating_point():
            raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        if tensor.ndim < 3:
            raise ValueError(
                "Expected tensor to be a tensor image of size (..., C, H, W). Got tensor.size() = "
                f"{tensor.size()}"
            )
        if not self.inplace:
            tensor = tensor.clone()
        dtype = tensor.dtype
        mean = torch.as_tensor(self.mean, dtype=dtype)
        std = torch.as_tensor(self.std, dtype=dtype)
        if (std == 0).any():
            raise ValueError(
                f"std evaluated to zero after conversion to {dtype}, leading to division by zero."
            )
        if mean.ndim == 1:
            mean = mean.view(-1, 1, 1)  # (C, 1, 1): the same for every pixel
        if std.ndim == 1:
            std = std.view(-1, 1, 1)
        return tensor.sub_(mean).div_(std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Resize(Transform):
    """Resize to (h, w); an int resizes the shorter side and keeps the aspect ratio."""

    def __init__(
        self,
        size: Any,
        interpolation: Any = InterpolationMode.BILINEAR,
        max_size: Any = None,
        antialias: Any = True,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int | Sequence):
            raise TypeError(f"Size should be int or sequence. Got {type(size)}")
        if isinstance(size, Sequence) and len(size) not in (1, 2):
            raise ValueError("If size is a sequence, it should have 1 or 2 values")
        self.size = size
        self.max_size = max_size
        self.interpolation = _interpolation(interpolation)
        self.antialias = antialias

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """torchvision's ``_compute_resized_output_size``: (new height, new width)."""
        size = [self.size] if isinstance(self.size, int) else [_size(s) for s in self.size]
        if self.max_size is not None and len(size) != 1:
            raise ValueError(
                "max_size should only be passed if size specifies the length of the smaller "
                "edge, i.e. size should be an int or a sequence of length 1 in torchscript mode."
            )
        if len(size) == 2:
            return size[0], size[1]
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = size[0], int(size[0] * long / short)
        if self.max_size is not None:
            max_size = _size(self.max_size)
            if max_size <= size[0]:
                raise ValueError(
                    f"max_size = {max_size} must be strictly greater than the requested size for "
                    f"the smaller edge size = {self.size}"
                )
            if new_long > max_size:
                new_short, new_long = int(max_size * new_short / new_long), max_size
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        return new_h, new_w

    def apply(self, guard: Guard, img: Any) -> Any:
        channels, height, width = _dimensions(img)
        new_h, new_w = self.output_size(height, width)
        if (height, width) == (new_h, new_w):
            return img
        if isinstance(img, Image.Image):
            guard.check_shape((channels, new_h, new_w), "a resized image")
            if self.interpolation is InterpolationMode.BILINEAR:
                return lesson.Resize((new_h, new_w))(img)
            return img.resize((new_w, new_h), _PIL_MODES[self.interpolation])  # (W, H)
        guard.check_shape((_lead(img), max(new_h, 0), max(new_w, 0)), "a resized image")
        mode = self.interpolation.value
        antialias = bool(self.antialias) and mode in ("bilinear", "bicubic")
        x = img.reshape(-1, 1, height, width)  # (N, 1, H, W): each plane resized alike
        out_dtype = x.dtype
        if x.dtype not in (torch.float32, torch.float64):
            x = x.to(torch.float32)
        corners = False if mode in ("bilinear", "bicubic") else None
        x = torch_f.interpolate(
            x, size=[new_h, new_w], mode=mode, align_corners=corners, antialias=antialias
        )
        if mode == "bicubic" and out_dtype == torch.uint8:
            x = x.clamp(min=0, max=255)
        if x.dtype != out_dtype:
            x = x.round().to(out_dtype) if not out_dtype.is_floating_point else x.to(out_dtype)
        return x.reshape(*img.shape[:-2], new_h, new_w)

    def __repr__(self) -> str:
        return (
            f"Resize(size={self.size}, interpolation={self.interpolation.value}, "
            f"max_size={self.max_size}, antialias={self.antialias})"
        )


def _crop_tensor(img: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """torchvision's tensor ``crop``: a window, padded with 0 where it leaves the image."""
    _, h, w = _dimensions(img)
    right, bottom = left + width, top + height
    if left < 0 or top < 0 or right > w or bottom > h:
        ltrb = [
            max(-left + min(0, right), 0),
            max(-top + min(0, bottom), 0),
            max(right - max(w, left), 0),
            max(bottom - max(h, top), 0),
        ]
        window = img[..., max(top, 0) : bottom, max(left, 0) : right]
        return _pad_tensor(window, ltrb, 0, "constant")
    return img[..., top:bottom, left:right]


class CenterCrop(Transform):
    """The centre (h, w) window; a crop bigger than the image pads with 0."""

    def __init__(self, size: Any) -> None:
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")

    def apply(self, guard: Guard, img: Any) -> Any:
        channels, height, width = _dimensions(img)
        crop_h, crop_w = self.size
        if isinstance(img, Image.Image):
            guard.check_shape((channels, crop_h, crop_w), "a cropped image")
            return lesson.CenterCrop((crop_h, crop_w))(img)
        guard.check_shape((_lead(img), crop_h, crop_w), "a cropped image")
        top = lesson.centred_offset(height, crop_h)
        left = lesson.centred_offset(width, crop_w)
        return _crop_tensor(img, top, left, crop_h, crop_w)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomCrop(Transform):
    """A random (h, w) window, its corner drawn from torch's global RNG as torchvision draws it."""

    def __init__(
        self,
        size: Any,
        padding: Any = None,
        pad_if_needed: bool = False,
        fill: Any = 0,
        padding_mode: str = "constant",
    ) -> None:
        self.size = _setup_size(size, "Please provide only two dimensions (h, w) for size.")
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode

    def _pad(self, guard: Guard, img: Any, ltrb: list[int]) -> torch.Tensor:
        if not isinstance(img, torch.Tensor):
            raise SandboxRefused(
                "RandomCrop's padding works on tensors here: put RandomCrop after ToTensor()"
            )
        if not isinstance(self.fill, int | float):
            raise TypeError("Got inappropriate fill arg")
        _, height, width = _dimensions(img)
        guard.check_shape(
            (_lead(img), height + ltrb[1] + ltrb[3], width + ltrb[0] + ltrb[2]), "a padded image"
        )
        return _pad_tensor(img, ltrb, self.fill, self.padding_mode)

    def apply(self, guard: Guard, img: Any) -> Any:
        if self.padding is not None:
            img = self._pad(guard, img, _padding_ltrb(self.padding))
        _, height, width = _dimensions(img)
        crop_h, crop_w = self.size
        if self.pad_if_needed and width < crop_w:
            img = self._pad(guard, img, [crop_w - width, 0, crop_w - width, 0])
        _, height, width = _dimensions(img)
        if self.pad_if_needed and height < crop_h:
            img = self._pad(guard, img, [0, crop_h - height, 0, crop_h - height])
        _, height, width = _dimensions(img)
        if height < crop_h or width < crop_w:
            raise ValueError(
                f"Required crop size {(crop_h, crop_w)} is larger than input image size "
                f"{(height, width)}"
            )
        if (height, width) == (crop_h, crop_w):
            top = left = 0
        else:
            top = int(torch.randint(0, height - crop_h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - crop_w + 1, size=(1,)).item())
        if isinstance(img, Image.Image):
            return img.crop((left, top, left + crop_w, top + crop_h))
        return img[..., top : top + crop_h, left : left + crop_w]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip(Transform):
    """Mirror left to right when ``torch.rand(1) < p``."""

    def __init__(self, p: Any = 0.5) -> None:
        self.p = p

    def apply(self, guard: Guard, img: Any) -> Any:
        if torch.rand(1) < self.p:
            if isinstance(img, torch.Tensor):
                _dimensions(img)
                return img.flip(-1)
            return lesson.HorizontalFlip()(_require_pil(img))
        return img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomVerticalFlip(Transform):
    """Mirror top to bottom when ``torch.rand(1) < p``."""

    def __init__(self, p: Any = 0.5) -> None:
        self.p = p

    def apply(self, guard: Guard, img: Any) -> Any:
        if torch.rand(1) < self.p:
            if isinstance(img, torch.Tensor):
                _dimensions(img)
                return img.flip(-2)
            return _require_pil(img).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        return img

    def __repr__(self) -> str:
        return f"RandomVerticalFlip(p={self.p})"


def _rotation_matrix(angle: float, center: list[float]) -> list[float]:
    """torchvision's inverse affine matrix of a rotation by ``angle`` degrees about ``center``
    (pixel coordinates relative to the image centre)."""
    rot = math.radians(angle)
    a, b, c, d = math.cos(rot), -math.sin(rot), math.sin(rot), math.cos(rot)
    matrix = [d, -b, 0.0, -c, a, 0.0]
    cx, cy = center
    matrix[2] += matrix[0] * -cx + matrix[1] * -cy + cx
    matrix[5] += matrix[3] * -cx + matrix[4] * -cy + cy
    return matrix


def _rotate_tensor(img: torch.Tensor, matrix: list[float], mode: str, fill: list[float]) -> Any:
    """torchvision's tensor ``rotate``: an affine grid sampled with ``grid_sample``."""
    shape = img.shape
    h, w = int(shape[-2]), int(shape[-1])
    x = img.reshape(-1, 1 if img.ndim == 2 else int(shape[-3]), h, w)  # (N, C, H, W)
    out_dtype = x.dtype
    dtype = x.dtype if x.is_floating_point() else torch.float32
    x = x.to(dtype)
    theta = torch.tensor(matrix, dtype=dtype).reshape(1, 2, 3)
    base = torch.empty(1, h, w, 3, dtype=dtype)
    base[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w))
    base[..., 1].copy_(torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=dtype)
    grid = base.view(1, h * w, 3).bmm(scaled).view(1, h, w, 2)
    if x.shape[0] > 1:
        grid = grid.expand(x.shape[0], h, w, 2)
    mask = torch.ones((x.shape[0], 1, h, w), dtype=dtype)
    x = torch_f.grid_sample(
        torch.cat((x, mask), dim=1), grid, mode=mode, padding_mode="zeros", align_corners=False
    )
    mask = x[:, -1:, :, :].expand_as(x[:, :-1, :, :])
    x = x[:, :-1, :, :]
    fill_img = torch.tensor(fill, dtype=dtype).view(1, len(fill), 1, 1).expand_as(x)
    if mode == "nearest":
        outside = mask < 0.5
        x[outside] = fill_img[outside]
    else:
        x = x * mask + (1.0 - mask) * fill_img
    if out_dtype != dtype:
        x = (x.round() if not out_dtype.is_floating_point else x).to(out_dtype)
    return x.reshape(shape)


class RandomRotation(Transform):
    """Rotate by an angle drawn uniformly from ``degrees`` (torch's global RNG)."""

    def __init__(
        self,
        degrees: Any,
        interpolation: Any = InterpolationMode.NEAREST,
        expand: bool = False,
        center: Any = None,
        fill: Any = 0,
    ) -> None:
        if isinstance(degrees, int | float) and not isinstance(degrees, bool):
            if degrees < 0:
                raise ValueError("If degrees is a single number, it must be positive.")
            degrees = [-degrees, degrees]
        elif not isinstance(degrees, Sequence):
            raise TypeError("degrees should be a sequence of length 2.")
        elif len(degrees) != 2:
            raise ValueError("degrees should be a sequence of length 2.")
        self.degrees = [float(d) for d in degrees]
        if center is not None:
            if not isinstance(center, Sequence):
                raise TypeError("center should be a sequence of length 2.")
            if len(center) != 2:
                raise ValueError("center should be a sequence of length 2.")
        if expand:
            raise SandboxRefused("RandomRotation(expand=True) is not available here")
        self.center = center
        self.interpolation = _interpolation(interpolation)
        self.expand = expand
        if fill is None:
            fill = 0
        elif not isinstance(fill, Sequence | int | float):
            raise TypeError("Fill should be either a sequence or a number.")
        self.fill = fill

    def apply(self, guard: Guard, img: Any) -> Any:
        channels, height, width = _dimensions(img)
        fill = self.fill
        if isinstance(img, torch.Tensor):
            fill = (
                [float(fill)] * channels
                if isinstance(fill, int | float)
                else list(map(float, fill))
            )
        angle = float(torch.empty(1).uniform_(self.degrees[0], self.degrees[1]).item())
        if isinstance(img, Image.Image):
            return img.rotate(
                angle, _PIL_MODES[self.interpolation], False, self.center, fillcolor=fill
            )
        if self.interpolation is InterpolationMode.BICUBIC:
            raise ValueError("Interpolation mode 'bicubic' is unsupported with Tensor input")
        if len(fill) > 1 and len(fill) != channels:
            raise ValueError(
                "The number of elements in 'fill' cannot broadcast to match the number of "
                f"channels of the image ({len(fill)} != {channels})"
            )
        # the grid (H, W, 2), the image as floats and its mask channel
        guard.check_elements(height * width * 3 + _lead(img) * height * width * 3, "a rotation")
        center = [0.0, 0.0]
        if self.center is not None:
            center = [
                1.0 * (c - s * 0.5) for c, s in zip(self.center, [width, height], strict=True)
            ]
        matrix = _rotation_matrix(-angle, center)
        return _rotate_tensor(img, matrix, self.interpolation.value, fill)

    def __repr__(self) -> str:
        text = f"RandomRotation(degrees={self.degrees}, interpolation={self.interpolation.value}"
        text += f", expand={self.expand}"
        if self.center is not None:
            text += f", center={self.center}"
        return text + f", fill={self.fill})"


class Grayscale(Transform):
    """Luma L = 0.2989 R + 0.587 G + 0.114 B (torchvision's tensor weights; Pillow's for images)."""

    def __init__(self, num_output_channels: Any = 1) -> None:
        self.num_output_channels = num_output_channels

    def apply(self, guard: Guard, img: Any) -> Any:
        channels = self.num_output_channels
        if not isinstance(img, torch.Tensor):
            image = _require_pil(img)
            if channels not in (1, 3):
                raise ValueError("num_output_channels should be either 1 or 3")
            gray = lesson.Grayscale()(image)
            if channels == 1:
                return gray
            plane = np.array(gray, dtype=np.uint8)
            return Image.fromarray(np.dstack([plane, plane, plane]), "RGB")
        if img.ndim < 3:
            raise TypeError(
                f"Input image tensor should have at least 3 dimensions, but found {img.ndim}"
            )
        if int(img.shape[-3]) not in (1, 3):
            raise TypeError(
                f"Input image tensor permitted channel values are [1, 3], but found "
                f"{int(img.shape[-3])}"
            )
        if channels not in (1, 3):
            raise ValueError("num_output_channels should be either 1 or 3")
        if img.shape[-3] == 3:
            r, g, b = img.unbind(dim=-3)
            luma = (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(dim=-3)
        else:
            luma = img.clone()
        return luma.expand(img.shape) if channels == 3 else luma

    def __repr__(self) -> str:
        return f"Grayscale(num_output_channels={self.num_output_channels})"


# (channels, dtype kind after scaling) -> the mode torchvision gives such an array
_PIL_MODE_OF = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


class ToPILImage(Transform):
    """A (C, H, W) tensor or an (H, W, C) / (H, W) array to a PIL image, as torchvision's
    ``to_pil_image`` makes it: floats are scaled by 255 to uint8, one channel is "L" (or "F" for
    float32 with ``mode="F"``), three "RGB", four "RGBA"."""

    def __init__(self, mode: Any = None) -> None:
        if mode is not None and not isinstance(mode, str):
            raise TypeError(f"mode should be a str, not {type(mode).__name__}")
        self.mode = mode

    def apply(self, guard: Guard, pic: Any) -> Any:
        if isinstance(pic, torch.Tensor):
            if pic.ndim not in (2, 3):
                raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
            if pic.requires_grad:
                pic = pic.detach()
            if pic.ndim == 3:
                pic = pic.permute((1, 2, 0))  # (H, W, C)
            pic = pic.numpy()
        elif not isinstance(pic, np.ndarray):
            raise TypeError(f"pic should be Tensor or ndarray. Got {type(pic)}.")
        if pic.ndim == 2:
            pic = pic[:, :, None]  # (H, W, 1)
        if pic.ndim != 3:
            raise ValueError(f"pic should be 2/3 dimensional. Got {pic.ndim} dimensions.")
        if pic.shape[-1] > 4:
            raise ValueError(f"pic should not have > 4 channels. Got {pic.shape[-1]} channels.")
        guard.check_elements(int(pic.size), "an image")
        mode = self.mode
        if np.issubdtype(pic.dtype, np.floating) and mode != "F":
            pic = (pic * 255).astype(np.uint8)
        channels = int(pic.shape[2])
        if channels == 1 and mode == "F" and pic.dtype == np.float32:
            return Image.fromarray(np.ascontiguousarray(pic[:, :, 0]))  # mode "F"
        if pic.dtype != np.uint8:
            raise TypeError(f"Input type {pic.dtype} is not supported")
        expected = _PIL_MODE_OF[channels]
        if mode is not None and mode != expected:
            raise ValueError(
                f"Incorrect mode ({mode}) supplied for input type {pic.dtype}. Should be {expected}"
            )
        return Image.fromarray(np.ascontiguousarray(pic[:, :, 0] if channels == 1 else pic))

    def __repr__(self) -> str:
        return "ToPILImage()" if self.mode is None else f"ToPILImage(mode={self.mode})"


_NOT_CALLABLE = (
    type(None),
    bool,
    int,
    float,
    str,
    list,
    tuple,
    dict,
    set,
    torch.Tensor,
    np.ndarray,
)


class Lambda(Transform):
    """A learner function as a transform, called through the interpreter."""

    def __init__(self, lambd: Any) -> None:
        if isinstance(lambd, (*_NOT_CALLABLE, Namespace)):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def apply(self, guard: Guard, img: Any) -> Any:
        return guard.call(self.lambd, (img,), {})

    def __repr__(self) -> str:
        return "Lambda()"


def apply_any(guard: Guard, transform: Any, img: Any) -> Any:
    """One stage of a Compose: a sandbox transform, or any callable program value."""
    if isinstance(transform, Transform):
        return call_transform(guard, transform, (img,), {})
    return guard.call(transform, (img,), {})


def call_transform(guard: Guard, transform: Transform, args: Args, kwargs: Kwargs) -> Any:
    """``t(img)`` in a program: what the interpreter calls for a ``Transform`` value."""
    if kwargs:
        raise TypeError(
            f"{transform.kind}.__call__() got an unexpected keyword argument '{next(iter(kwargs))}'"
        )
    if len(args) != 1:
        raise TypeError(
            f"{transform.kind}.__call__() takes 2 positional arguments but {len(args) + 1} were "
            "given"
        )
    guard.check_deadline()
    return transform.apply(guard, args[0])


# -- constructors, types and the namespaces --------------------------------------------------------

_CLASSES: tuple[type[Transform], ...] = (
    Compose,
    ToTensor,
    Normalize,
    Resize,
    CenterCrop,
    RandomCrop,
    RandomHorizontalFlip,
    RandomVerticalFlip,
    RandomRotation,
    Grayscale,
    ToPILImage,
    Lambda,
)


def _constructor(cls: type[Transform]) -> SafeFunction:
    signature = inspect.signature(cls)
    name = cls.__name__

    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Transform:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}.__init__() {exc}") from None
        for value in bound.arguments.values():
            guard.check_container(value)  # mean/std lists, the list of a Compose
        guard.notice(NOTICE)
        return cls(*bound.args, **bound.kwargs)

    return SafeFunction(f"torchvision.transforms.{name}", impl)


_PROPS: dict[type[Transform], tuple[str, ...]] = {
    Compose: ("transforms",),
    Normalize: ("mean", "std", "inplace"),
    Resize: ("size", "interpolation", "max_size", "antialias"),
    CenterCrop: ("size",),
    RandomCrop: ("size", "padding", "pad_if_needed", "fill", "padding_mode"),
    RandomHorizontalFlip: ("p",),
    RandomVerticalFlip: ("p",),
    RandomRotation: ("degrees", "interpolation", "expand", "center", "fill"),
    Grayscale: ("num_output_channels",),
    ToPILImage: ("mode",),
    Lambda: ("lambd",),
}


def _prop(name: str) -> Any:
    return lambda obj: getattr(obj, name)


for _cls in _CLASSES:
    register_type(_cls, {name: _prop(name) for name in _PROPS.get(_cls, ())}, {})
register_type(InterpolationMode, {"value": lambda m: m.value}, {})
# A picture a transform made (ToPILImage, Resize...): what it is, read-only.
register_type(
    Image.Image,
    {name: _prop(name) for name in ("size", "mode", "width", "height")},
    {},
)

TRANSFORMS = Namespace(
    "torchvision.transforms",
    {
        **{cls.__name__: _constructor(cls) for cls in _CLASSES},
        "InterpolationMode": Namespace(
            "torchvision.transforms.InterpolationMode",
            {mode.name: mode for mode in InterpolationMode},
        ),
    },
)

_BUNDLED = (
    "use the data that ships with scikit-learn instead: sklearn.datasets.load_digits() (8x8 "
    "images of handwritten digits), load_wine(), load_iris() or load_breast_cancer()"
)


def _no_download(name: str, reason: str) -> SafeFunction:
    def impl(guard: Guard, args: Args, kwargs: Kwargs) -> Any:
        raise RuntimeError(f"torchvision.datasets.{name} is not available: {reason}; {_BUNDLED}")

    return SafeFunction(f"torchvision.datasets.{name}", impl)


_DOWNLOADS = "this server has no internet, so nothing can be downloaded"
DATASETS = Namespace(
    "torchvision.datasets",
    {
        **{
            name: _no_download(name, _DOWNLOADS)
            for name in ("MNIST", "FashionMNIST", "CIFAR10", "CIFAR100")
        },
        "ImageFolder": _no_download("ImageFolder", "this server has no image folders"),
    },
)
TORCHVISION = Namespace("torchvision", {"transforms": TRANSFORMS, "datasets": DATASETS})
register("torchvision", TORCHVISION)
register("torchvision.transforms", TRANSFORMS)
register("torchvision.datasets", DATASETS)
