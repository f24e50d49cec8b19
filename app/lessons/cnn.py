"""Convolutional neural networks: the sliding window, filters on a picture, pooling, nn.Conv2d.

Every output here is computed by ``torch.nn.functional`` (``conv2d``, ``unfold``, ``max_pool2d``,
``avg_pool2d``) or ``nn.Conv2d``; the page renders the source of these functions as they stand.
PyTorch's "convolution" is a cross-correlation: the kernel is laid over the input as it is, not
flipped, and each output cell is the sum of the elementwise products under it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from app.lessons.errors import LessonInputError, check_limit
from app.lessons.images import display_levels, png_data_url, sample_image

Matrix = tuple[tuple[float, ...], ...]
POOL_KINDS = ("max", "min", "avg")
CHANNEL_NAMES = ("R", "G", "B")
# A small matrix is computed in float64, so 0.1 stays 0.1 on screen and every step's sum equals
# its output cell to the last digit; pictures use float32, as a real network does.
SMALL = torch.float64

# Filters for pictures, as a learner meets them in image-processing tutorials.
PRESETS: dict[str, tuple[str, Matrix]] = {
    "identity": ("Identity: the picture unchanged", ((0, 0, 0), (0, 1, 0), (0, 0, 0))),
    "edge": ("Edge (outline): 8 × centre − neighbours", ((-1, -1, -1), (-1, 8, -1), (-1, -1, -1))),
    "blur": ("Box blur: the mean of 9 pixels", ((1 / 9,) * 3,) * 3),
    "sharpen": ("Sharpen: centre up, neighbours down", ((0, -1, 0), (-1, 5, -1), (0, -1, 0))),
    "emboss": ("Emboss: light from the top left", ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))),
    "sobel_x": ("Sobel x: vertical edges", ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1))),
    "sobel_y": ("Sobel y: horizontal edges", ((-1, -2, -1), (0, 0, 0), (1, 2, 1))),
}


@dataclass(frozen=True)
class CnnLimits:
    """How much a learner may ask for; the app fills these from its settings of the same names."""

    max_matrix_side: int = 12
    max_kernel_size: int = 7
    max_conv_channels: int = 4
    max_stride: int = 4
    max_padding: int = 3
    max_dilation: int = 3
    max_out_channels: int = 16
    max_pool_size: int = 16


@dataclass(frozen=True)
class CnnParams:
    """What the page lets a learner change; the defaults are the notes' examples."""

    # 1. The sliding window: the notes' 3x3 input and a 2x2 filter, which give a 2x2 output.
    matrix: Matrix = ((1, 2, 3), (4, 5, 6), (7, 8, 9))
    kernel: Matrix = ((1, 0), (0, 1))
    stride: int = 1  # how far the window moves each step
    padding: int = 0  # zeros added around the input
    dilation: int = 1  # spacing between the kernel's taps
    step: int = 1  # which window position the page shows (1-based)
    # 2. A picture: the notes' purple flower, with an edge filter and 2x2 max pooling.
    sample: str = "flower"
    image_kernel: str = "edge"  # a preset name or a JSON list of filter values
    image_stride: int = 1
    image_padding: int = 0
    image_pool: str = "max"
    image_pool_size: int = 2
    # 3. Pooling: the notes' 4x4 feature map, cut into four 2x2 blocks (16 features -> 4).
    fmap: Matrix = ((1, 3, 2, 0), (4, 2, 1, 5), (0, 1, 7, 2), (3, 2, 1, 0))
    pool_size: int = 2
    pool_stride: int | None = None  # None: the window's own size, so windows do not overlap
    # 4. nn.Conv2d on the notes' 5x5 RGB picture: "6 output channels" means 6 filters.
    out_channels: int = 6
    layer_kernel: int = 3
    layer_padding: int = 0
    seed: int = 0  # the filters start random: a seed replays the same ones


# ---- 1. the sliding window ------------------------------------------------------------------


def output_size(n: int, k: int, stride: int, padding: int, dilation: int) -> int:
    """The formula of torch.nn.Conv2d's docs: floor((n + 2p - d(k - 1) - 1) / s) + 1."""
    return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def convolve(
    x: torch.Tensor, kernel: torch.Tensor, stride: int = 1, padding: int = 0, dilation: int = 1
) -> torch.Tensor:
    """F.conv2d of a (C, H, W) input with one (C, kh, kw) kernel: one output channel."""
    out = F.conv2d(
        x.unsqueeze(0),  # (1, C, H, W): a batch of one
        kernel.unsqueeze(0),  # (1, C, kh, kw): one filter that spans every input channel
        stride=stride,
        padding=padding,
        dilation=dilation,
    )  # (1, 1, H', W')
    return out[0, 0]  # (H', W')


def sliding_steps(
    x: torch.Tensor, kernel: torch.Tensor, stride: int = 1, padding: int = 0, dilation: int = 1
) -> dict[str, torch.Tensor]:
    """Every window position at once: F.unfold cuts out the patch conv2d multiplies at each one."""
    c, kh, kw = kernel.shape
    patches = F.unfold(
        x.unsqueeze(0), (kh, kw), dilation=dilation, padding=padding, stride=stride
    )  # (1, C*kh*kw, L): one column per position, row by row
    windows = patches[0].T.reshape(-1, c, kh, kw)  # (L, C, kh, kw): the input under the kernel
    products = windows * kernel  # (L, C, kh, kw): elementwise
    sums = products.sum(dim=(1, 2, 3))  # (L,): over the channels too; == the output cells
    return {"windows": windows, "products": products, "sums": sums}


def size_formula(
    dim: str, n: int, k: int, stride: int, padding: int, dilation: int
) -> dict[str, Any]:
    """The output-size formula with this request's numbers filled in."""
    value = output_size(n, k, stride, padding, dilation)
    text = (
        f"{dim}_out = ⌊({n} + 2·{padding} − {dilation}·({k} − 1) − 1) / {stride}⌋ + 1"
        f" = ⌊{n + 2 * padding - dilation * (k - 1) - 1} / {stride}⌋ + 1 = {value}"
    )
    return {
        "dim": dim,
        "n": n,
        "k": k,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "value": value,
        "text": text,
    }


def convolution(
    values: list[Any],
    kernel_values: list[Any],
    stride: int,
    padding: int,
    dilation: int,
    limits: CnnLimits,
) -> dict[str, Any]:
    """POST /api/cnn/convolve: the output, its shape, the formula and every sliding-window step."""
    x = to_tensor(values, "input", limits, channels_ok=True)
    flat = x.dim() == 2
    x = x.unsqueeze(0) if flat else x  # (C, H, W)
    kernel = to_tensor(kernel_values, "kernel", limits, channels_ok=True, kernel=True)
    if kernel.dim() == 2:
        kernel = kernel.unsqueeze(0).expand(x.shape[0], -1, -1)  # the same kernel on each channel
    if kernel.shape[0] != x.shape[0]:
        raise LessonInputError(
            f"The kernel has {kernel.shape[0]} channels but the input has {x.shape[0]}: a kernel "
            "needs one slice per input channel (conv2d sums the channels)."
        )
    check_window(stride, padding, dilation, limits)
    c, h, w = x.shape
    kh, kw = kernel.shape[1:]
    formulas = [
        size_formula("H", h, kh, stride, padding, dilation),
        size_formula("W", w, kw, stride, padding, dilation),
    ]
    check_fits(formulas, "input")
    out = convolve(x, kernel, stride, padding, dilation)
    parts = sliding_steps(x, kernel, stride, padding, dilation)
    h_out, w_out = out.shape
    steps = []
    for i in range(h_out * w_out):
        window, products = parts["windows"][i], parts["products"][i]
        row, col = divmod(i, w_out)
        steps.append(
            {
                "row": row,
                "col": col,
                "top": row * stride,  # where the window starts in the padded input
                "left": col * stride,
                "window": (window[0] if flat else window).tolist(),
                "products": (products[0] if flat else products).tolist(),
                "sum": parts["sums"][i].item(),
            }
        )
    padded = F.pad(x, (padding, padding, padding, padding))  # (C, H + 2p, W + 2p)
    return {
        "output": out.tolist(),
        "output_shape": list(out.shape),
        "steps": steps,
        "input_shape": list(x.shape[1:] if flat else x.shape),
        "kernel": (kernel[0] if flat else kernel).tolist(),
        "padded": (padded[0] if flat else padded).tolist(),
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "formula": formulas,
    }


# ---- 2. filters on a picture ----------------------------------------------------------------


def image_features(
    picture: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, pool: str, size: int
) -> dict[str, torch.Tensor]:
    """Each colour channel through its own filter (groups=3), then pooling: a CNN's first layer."""
    # (1, 3, H, W): a batch of one RGB picture as float32 values 0..255, stored pixel by pixel
    # (R, G, B side by side, "channels last") as the file's bytes were: oneDNN's depthwise
    # convolution is 20x faster on that layout than on (C, H, W) planes.
    x = picture.unsqueeze(0).to(torch.float32, memory_format=torch.channels_last)
    conv = F.conv2d(x, weight, stride=stride, padding=padding, groups=3)  # (1, 3, H', W')
    # weight is (3, 1, k, k): groups=3 gives R, G and B a filter each, and no channel sum
    del x  # a 12-megapixel picture is 144 MB of float32: free it before the next copy
    conv = conv.contiguous()  # back to one plane per channel: pooling reads planes fastest
    pooled = pool2d(conv, pool, size)  # (1, 3, H'', W'')
    return {"conv": conv[0], "pooled": pooled[0]}


def map_pngs(
    maps: torch.Tensor,
    side: int,
    luts: list[bytes],
    scale: tuple[float, float] | None = None,
) -> list[str]:
    """(C, H, W) maps as PNG data URLs: each min-max scaled (or on ``scale``), fit to ``side``."""
    factor = math.ceil(max(maps.shape[1:]) / side)

    def shrink(x: torch.Tensor) -> torch.Tensor:
        # the mean of each factor×factor block: a preview, not the data
        return F.avg_pool2d(x.unsqueeze(0), factor, ceil_mode=True)[0]  # (C, h, w)

    # each map's smallest value at level 0 and its largest at 255; a flat map is one mid colour
    index = display_levels(maps, scale, shrink if factor > 1 else None).contiguous()  # (C, h, w)
    urls = []
    for plane, lut in zip(index, luts, strict=True):
        image = Image.frombytes("L", (plane.shape[1], plane.shape[0]), plane.numpy().tobytes())
        image.putpalette(lut)  # "P" mode: one byte per pixel, so the PNG is small and quick
        urls.append(png_data_url(image))
    return urls


def _ramp(*colours: tuple[int, int, int]) -> bytes:
    """A 256-colour palette through ``colours``, evenly spaced."""
    out = bytearray()
    for i in range(256):
        t = i / 255 * (len(colours) - 1)
        a, b = colours[min(int(t), len(colours) - 2)], colours[min(int(t), len(colours) - 2) + 1]
        f = t - min(int(t), len(colours) - 2)
        out += bytes(round(a[j] + (b[j] - a[j]) * f) for j in range(3))
    return bytes(out)


# Feature maps: viridis (dark purple = the map's smallest value, yellow = its largest).
VIRIDIS = _ramp((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
CHANNEL_LUTS = {
    "R": _ramp((0, 0, 0), (255, 0, 0)),
    "G": _ramp((0, 0, 0), (0, 200, 0)),
    "B": _ramp((0, 0, 0), (40, 90, 255)),
}
SMALL_MAP_CELLS = 64  # maps this small also come back as numbers, for the page to print


def picture_tensor(image: Image.Image, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An RGB picture as a (3, H, W) tensor of 0..255 values: float32, as the notes describe it,
    or uint8 (a quarter of the memory) to keep a large picture until it is filtered."""
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return pixels.view(image.height, image.width, 3).permute(2, 0, 1).to(dtype)  # (3, H, W)


def filter_bank(spec: str, limits: CnnLimits) -> tuple[str, torch.Tensor]:
    """A preset name or typed values (k×k for every channel, or 3×k×k) as conv2d's (3, 1, k, k)."""
    text = spec.strip()
    if text in PRESETS:
        values: Any = [list(row) for row in PRESETS[text][1]]
        name = text
    else:
        if not text.startswith("["):
            raise LessonInputError(
                f"kernel {text[:40]!r} is not a preset ({', '.join(PRESETS)}) nor a JSON list of "
                "numbers such as [[0, -1, 0], [-1, 4, -1], [0, -1, 0]]."
            )
        longest = 64 * 3 * limits.max_kernel_size**2  # 64 characters a number is plenty
        if len(text) > longest:
            raise LessonInputError(
                f"The kernel text is {len(text)} characters, more than a kernel within "
                f"max_kernel_size = {limits.max_kernel_size} needs ({longest} at most)."
            )
        try:
            values = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise LessonInputError(f"kernel is not valid JSON: {exc}.") from None
        name = "typed"
    kernel = to_tensor(values, "kernel", limits, channels_ok=True, kernel=True, dtype=torch.float32)
    if kernel.dim() == 3 and kernel.shape[0] != 3:
        raise LessonInputError(
            "A picture has 3 channels, so a kernel with one filter per channel needs 3 of them; "
            f"got {kernel.shape[0]}."
        )
    weight = kernel.expand(3, -1, -1) if kernel.dim() == 2 else kernel  # (3, k, k)
    return name, weight.unsqueeze(1).contiguous()  # (3, 1, k, k): one filter per channel


def picture_features(
    image: Image.Image,
    spec: str,
    stride: int,
    padding: int,
    pool: str,
    pool_size: int,
    limits: CnnLimits,
    preview_side: int = 384,
) -> dict[str, Any]:
    """POST /api/cnn/image: per-channel feature maps as PNG previews, and the feature counts."""
    name, weight = filter_bank(spec, limits)
    check_window(stride, padding, 1, limits, "image ")
    check_pool(pool, pool_size, pool_size, limits)
    picture = picture_tensor(image, torch.uint8)  # (3, H, W): floats only while filtering
    _, h, w = picture.shape
    k = weight.shape[-2:]
    formulas = [
        size_formula("H", h, k[0], stride, padding, 1),
        size_formula("W", w, k[1], stride, padding, 1),
    ]
    check_fits(formulas, "picture")
    conv_h, conv_w = formulas[0]["value"], formulas[1]["value"]
    if pool_size > min(conv_h, conv_w):
        raise LessonInputError(
            f"pool_size {pool_size} is larger than the {conv_h}×{conv_w} feature map: "
            f"use at most {min(conv_h, conv_w)}."
        )
    luts = [CHANNEL_LUTS[name] for name in CHANNEL_NAMES]
    inputs = map_pngs(picture.float(), preview_side, luts, (0.0, 255.0))  # true 0..255 scale
    maps = image_features(picture, weight, stride, padding, pool, pool_size)
    pngs = {
        "input": inputs,
        "conv": map_pngs(maps["conv"], preview_side, [VIRIDIS] * 3),
        "pooled": map_pngs(maps["pooled"], preview_side, [VIRIDIS] * 3),
    }
    ranges = {
        key: torch.stack([maps[key].amin(dim=(1, 2)), maps[key].amax(dim=(1, 2))], 1)
        for key in ("conv", "pooled")
    }
    channels = []
    for c, channel in enumerate(CHANNEL_NAMES):
        conv, pooled = maps["conv"][c], maps["pooled"][c]
        channels.append(
            {
                "name": channel,
                "input_png": pngs["input"][c],
                "kernel": weight[c, 0].tolist(),
                "conv_shape": list(conv.shape),
                "conv_png": pngs["conv"][c],
                "conv_range": ranges["conv"][c].tolist(),
                "conv_values": conv.tolist() if conv.numel() <= SMALL_MAP_CELLS else None,
                "pooled_shape": list(pooled.shape),
                "pooled_png": pngs["pooled"][c],
                "pooled_range": ranges["pooled"][c].tolist(),
                "pooled_values": pooled.tolist() if pooled.numel() <= SMALL_MAP_CELLS else None,
            }
        )
    return {
        "input_shape": [3, h, w],
        "channels": channels,
        "feature_counts": {
            "input": picture.numel(),
            "conv": maps["conv"].numel(),
            "pooled": maps["pooled"].numel(),
        },
        "kernel_name": name,
        "kernel": weight[:, 0].tolist(),
        "stride": stride,
        "padding": padding,
        "pool": pool,
        "pool_size": pool_size,
        "formula": formulas,
        "preview_side": preview_side,
    }


# ---- 3. pooling -----------------------------------------------------------------------------


def pool2d(x: torch.Tensor, kind: str, size: int, stride: int | None = None) -> torch.Tensor:
    """Max, min or average pooling over size×size windows (stride defaults to size)."""
    stride = stride or size
    if size == stride == 1:
        return x  # a 1×1 window holds one value: every kind of pooling gives it back unchanged
    if kind == "max":
        return F.max_pool2d(x, kernel_size=size, stride=stride)
    if kind == "min":
        # the max of -x is -(min of x); negated in place, so no second copy of a large map
        return F.max_pool2d(-x, kernel_size=size, stride=stride).neg_()
    return F.avg_pool2d(x, kernel_size=size, stride=stride)


def pooling(
    values: list[Any], kind: str, size: int, stride: int | None, limits: CnnLimits
) -> dict[str, Any]:
    """POST /api/cnn/pool: the pooled map, its shape and the formula with its numbers."""
    x = to_tensor(values, "input", limits, channels_ok=True)
    check_pool(kind, size, stride, limits)
    h, w = x.shape[-2:]
    s = stride or size
    formulas = [size_formula("H", h, size, s, 0, 1), size_formula("W", w, size, s, 0, 1)]
    check_fits(formulas, "input", what="pooling window")
    out = pool2d(x.unsqueeze(0) if x.dim() == 2 else x, kind, size, s)  # (C, H', W')
    out = out[0] if x.dim() == 2 else out
    return {
        "output": out.tolist(),
        "output_shape": list(out.shape),
        "kind": kind,
        "size": size,
        "stride": s,
        "formula": formulas,
    }


# ---- 4. nn.Conv2d: many filters, each across every input channel ------------------------------


@torch.no_grad()
def conv_layer(
    picture: torch.Tensor, out_channels: int, kernel_size: int, padding: int, seed: int
) -> dict[str, torch.Tensor]:
    """nn.Conv2d(3, out_channels, k): out_channels filters, each (3, k, k), summed over R, G, B."""
    torch.manual_seed(seed)  # the filters start random; training would tune them
    conv = nn.Conv2d(
        in_channels=3, out_channels=out_channels, kernel_size=kernel_size, padding=padding
    )
    x = picture.unsqueeze(0)  # (1, 3, H, W)
    out = conv(x)  # (1, out_channels, H', W'): one map per filter
    pooled = F.max_pool2d(out, kernel_size=2) if min(out.shape[-2:]) >= 2 else None
    # Output cell [0, 0] of filter 0 by hand: each input channel's products, then their sum.
    window = F.pad(x, (padding,) * 4)[0, :, :kernel_size, :kernel_size]  # (3, k, k)
    per_channel = (conv.weight[0] * window).sum(dim=(1, 2))  # (3,): R, G and B's part
    assert conv.bias is not None  # nn.Conv2d has a bias unless bias=False
    return {
        "weight": conv.weight.detach(),
        "bias": conv.bias.detach(),
        "out": out[0],
        "per_channel": per_channel,
        "pooled": pooled[0] if pooled is not None else None,
    }


# ---- input checks: each names the problem and the limit -------------------------------------


def _shape(values: Any, what: str, depth: int = 0) -> tuple[int, ...]:
    if isinstance(values, bool) or (depth and not isinstance(values, (list, int, float))):
        raise LessonInputError(f"{what} must hold numbers only; got {str(values)[:40]!r}.")
    if isinstance(values, (int, float)):
        if not math.isfinite(values):
            raise LessonInputError(f"{what} must hold finite numbers; got {values}.")
        return ()
    if not isinstance(values, list):
        raise LessonInputError(f"{what} must be a nested list of numbers.")
    if not values:
        raise LessonInputError(f"{what} has an empty list: every row needs at least one number.")
    if depth > 3:
        raise LessonInputError(f"{what} is nested too deeply: at most C×H×W.")
    shapes = [_shape(v, what, depth + 1) for v in values]
    if any(s != shapes[0] for s in shapes):
        bad = next(i for i, s in enumerate(shapes) if s != shapes[0])
        raise LessonInputError(
            f"{what} is ragged: item {bad} has shape {list(shapes[bad])} but item 0 has "
            f"{list(shapes[0])}; every row needs the same length."
        )
    return (len(values), *shapes[0])


def to_tensor(
    values: Any,
    what: str,
    limits: CnnLimits,
    channels_ok: bool = False,
    kernel: bool = False,
    dtype: torch.dtype = SMALL,
) -> torch.Tensor:
    """A checked H×W (or C×H×W) list as a tensor; sizes are checked before anything is built."""
    shape = _shape(values, what)
    if len(shape) not in ((2, 3) if channels_ok else (2,)):
        raise LessonInputError(
            f"{what} must be a {'kh×kw' if kernel else 'H×W'} list of rows"
            f"{' or a C×' + ('kh×kw' if kernel else 'H×W') + ' list' if channels_ok else ''}; "
            f"got {len(shape)} dimension(s)."
        )
    side, name = (
        (limits.max_kernel_size, "max_kernel_size")
        if kernel
        else (limits.max_matrix_side, "max_matrix_side")
    )
    check_limit(f"The number of rows of {what}", name, side, shape[-2])
    check_limit(f"The number of columns of {what}", name, side, shape[-1])
    if len(shape) == 3:
        check_limit(
            f"The number of channels of {what}",
            "max_conv_channels",
            limits.max_conv_channels,
            shape[0],
        )
    return torch.tensor(values, dtype=dtype)


def check_window(
    stride: int, padding: int, dilation: int, limits: CnnLimits, prefix: str = ""
) -> None:
    """Stride and dilation at least 1, padding at least 0, each within its limit."""
    for name, value, low in (
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        if value < low:
            raise LessonInputError(f"{prefix}{name} must be at least {low}; got {value}.")
        check_limit(f"{prefix}{name}", f"max_{name}", getattr(limits, f"max_{name}"), value)


def check_pool(kind: str, size: int, stride: int | None, limits: CnnLimits) -> None:
    """A known kind, and a window size and stride of 1 up to max_pool_size."""
    if kind not in POOL_KINDS:
        raise LessonInputError(f"pool kind {kind!r} is not one of {', '.join(POOL_KINDS)}.")
    for name, value in (("pool size", size), ("pool stride", stride)):
        if value is None:
            continue
        if value < 1:
            raise LessonInputError(f"{name} must be at least 1; got {value}.")
        check_limit(name, "max_pool_size", limits.max_pool_size, value)


def check_fits(formulas: list[dict[str, Any]], where: str, what: str = "kernel") -> None:
    """The window must fit inside the (padded) input at least once along each dimension."""
    for f in formulas:
        span = f["dilation"] * (f["k"] - 1) + 1
        if f["value"] < 1:
            rows = "rows" if f["dim"] == "H" else "columns"
            raise LessonInputError(
                f"The {what} spans {span} {rows} but the padded {where} has only "
                f"{f['n'] + 2 * f['padding']}: {f['text']}. Use a smaller {what}"
                + (" or more padding." if what == "kernel" else ".")
            )


def check_layer(
    out_channels: int, kernel_size: int, padding: int, seed: int, limits: CnnLimits
) -> None:
    """The nn.Conv2d demo's bounds."""
    if out_channels < 1 or kernel_size < 1 or padding < 0:
        raise LessonInputError("out_channels and the kernel size must be at least 1, padding 0.")
    check_limit("out_channels", "max_out_channels", limits.max_out_channels, out_channels)
    check_limit("The kernel size", "max_kernel_size", limits.max_kernel_size, kernel_size)
    check_limit("padding", "max_padding", limits.max_padding, padding)
    if not 0 <= seed < 2**63:
        raise LessonInputError(f"seed must be between 0 and 2**63 - 1; got {seed}.")


# ---- the lesson page ------------------------------------------------------------------------


def pool_cover(h: int, w: int, size: int, stride: int) -> list[list[int]]:
    """Which pooling window each input cell falls in (-1: none, the floor drops it)."""
    cover = [[-1] * w for _ in range(h)]
    cols = output_size(w, size, stride, 0, 1)
    for i in range(output_size(h, size, stride, 0, 1)):
        for j in range(cols):
            for r in range(i * stride, i * stride + size):
                for c in range(j * stride, j * stride + size):
                    if cover[r][c] == -1:
                        cover[r][c] = i * cols + j
    return cover


def explore(params: CnnParams, limits: CnnLimits, preview_side: int = 384) -> dict[str, Any]:
    """Everything the lesson page shows for one set of parameters, as plain numbers."""
    window = convolution(
        [list(r) for r in params.matrix],
        [list(r) for r in params.kernel],
        params.stride,
        params.padding,
        params.dilation,
        limits,
    )
    window["step"] = min(max(params.step, 1), len(window["steps"]))
    image = picture_features(
        sample_image(params.sample),
        params.image_kernel,
        params.image_stride,
        params.image_padding,
        params.image_pool,
        params.image_pool_size,
        limits,
        preview_side,
    )
    image["sample"] = params.sample
    fmap = [list(r) for r in params.fmap]
    pools = {
        kind: pooling(fmap, kind, params.pool_size, params.pool_stride, limits)
        for kind in POOL_KINDS
    }
    stride = pools["max"]["stride"]
    h, w = len(fmap), len(fmap[0])
    check_layer(params.out_channels, params.layer_kernel, params.layer_padding, params.seed, limits)
    tiny = picture_tensor(sample_image("tiny"))  # (3, 5, 5): the notes' 5x5 RGB picture
    layer_formula = [
        size_formula(d, 5, params.layer_kernel, 1, params.layer_padding, 1) for d in ("H", "W")
    ]
    check_fits(layer_formula, "5×5 picture")
    layer = conv_layer(
        tiny, params.out_channels, params.layer_kernel, params.layer_padding, params.seed
    )
    out = layer["out"]
    pooled = layer["pooled"]
    return {
        "window": window,
        "image": image,
        "pooling": {
            "input": fmap,
            "size": params.pool_size,
            "stride": stride,
            "outputs": {kind: pools[kind]["output"] for kind in POOL_KINDS},
            "output_shape": pools["max"]["output_shape"],
            "formula": pools["max"]["formula"],
            "cover": pool_cover(h, w, params.pool_size, stride),
            "features": [h * w, pools["max"]["output_shape"][0] * pools["max"]["output_shape"][1]],
        },
        "layer": {
            "input": tiny.tolist(),
            "out_channels": params.out_channels,
            "kernel_size": params.layer_kernel,
            "padding": params.layer_padding,
            "seed": params.seed,
            "weight_shape": list(layer["weight"].shape),
            "weight": layer["weight"].tolist(),
            "bias": layer["bias"].tolist(),
            "out": out.tolist(),
            "out_shape": list(out.shape),
            "pooled": None if pooled is None else pooled.tolist(),
            "pooled_shape": None if pooled is None else list(pooled.shape),
            "per_channel": layer["per_channel"].tolist(),
            "by_hand": (layer["per_channel"].sum() + layer["bias"][0]).item(),
            "parameters": layer["weight"].numel() + layer["bias"].numel(),
            "features": [tiny.numel(), out.numel(), None if pooled is None else pooled.numel()],
            "formula": layer_formula,
        },
    }


def _literal(matrix: Matrix) -> str:
    return "[" + ", ".join("[" + ", ".join(f"{v:g}." for v in row) + "]" for row in matrix) + "]"


def snippet(params: CnnParams) -> str:
    """Plain PyTorch that reproduces the page's numbers; paste it into Python."""
    stride = params.pool_stride or params.pool_size
    return (
        "import torch\n"
        "import torch.nn.functional as F\n"
        "from torch import nn\n\n"
        "# 1. The sliding window: F.conv2d wants (N, C, H, W) input and (out, in, kh, kw) weight\n"
        f"x = torch.tensor({_literal(params.matrix)}).view(1, 1, "
        f"{len(params.matrix)}, {len(params.matrix[0])})  # (N, C, H, W)\n"
        f"w = torch.tensor({_literal(params.kernel)}).view(1, 1, "
        f"{len(params.kernel)}, {len(params.kernel[0])})  # (out, in, kh, kw)\n"
        f"out = F.conv2d(x, w, stride={params.stride}, padding={params.padding}, "
        f"dilation={params.dilation})\n"
        "print(out[0, 0])\n\n"
        "# 3. Pooling the feature map: max, min (as -max of -x) and average\n"
        f"fmap = torch.tensor({_literal(params.fmap)}).view(1, 1, "
        f"{len(params.fmap)}, {len(params.fmap[0])})\n"
        f"print(F.max_pool2d(fmap, {params.pool_size}, stride={stride})[0, 0])\n"
        f"print(-F.max_pool2d(-fmap, {params.pool_size}, stride={stride})[0, 0])\n"
        f"print(F.avg_pool2d(fmap, {params.pool_size}, stride={stride})[0, 0])\n\n"
        f"# 4. {params.out_channels} output channels = {params.out_channels} filters, "
        "each spanning R, G and B\n"
        f"torch.manual_seed({params.seed})\n"
        f"conv = nn.Conv2d(in_channels=3, out_channels={params.out_channels}, "
        f"kernel_size={params.layer_kernel}, padding={params.layer_padding})\n"
        "picture = torch.rand(1, 3, 5, 5) * 255  # (N, C, H, W): a 5x5 RGB picture\n"
        "features = conv(picture)\n"
        "print(conv.weight.shape, features.shape)\n"
    )
