"""Uploaded pictures are decoded, transformed and filtered here, in worker processes, never in
the server.

The server sends a request with the upload's bytes to a ``python -m app.workers.pictures FD
HEADROOM`` process (``app.workers.pool``); the worker opens the file with
``app.lessons.images.open_image`` and runs the lesson function on it
(``app.lessons.cnn.picture_features`` or ``app.lessons.transforms.run_pipeline``) under an
address-space limit (``picture_max_memory_bytes`` more than it maps once warmed up) and a CPU-time
limit (``picture_max_seconds``), and sends back the same dict the lesson function returns. So the
server holds the upload's bytes and the answer, never the pixels; a worker that runs out of
memory or time is killed or refuses, is replaced, and the request gets a 4xx naming the setting.

Requests are ``(kind, data, params, limits)``: ``("cnn_image", bytes, CnnImageParams,
PictureLimits)`` or ``("transforms", bytes, TransformsParams, PictureLimits)``. Replies are
``("ok", result)``, ``("refused", error, message)`` (a lesson error, raised again in the server
as the same exception: 415, 413 or 422), ``("memory", message)`` or ``("crash", message)``.

The lesson pages' own sample pictures (``app.web.views.cnn``, ``transforms``) are small, fixed
and cached, and are still drawn in the server.
"""

from __future__ import annotations

import io
import math
import resource
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from app.lessons import cnn, transforms
from app.lessons.errors import LessonError, LessonInputError
from app.lessons.images import (
    ImageTooLarge,
    UnsupportedImage,
    guard_pixels,
    open_image,
    sample_image,
)
from app.lessons.transform_pipeline import Step, TransformLimits, check_pipeline, pipeline_from_url
from app.workers import serve
from app.workers.pool import TooBusy, WorkerPool, WorkerStopped

if TYPE_CHECKING:
    from app.config import Settings

MODULE = "app.workers.pictures"
# Address space a worker may add when the pool does not say (the pool passes the setting).
DEFAULT_HEADROOM = 1024**3
# Wall-clock time past picture_max_seconds before a worker is killed (its CPU limit, or the
# lesson itself, normally stops it first).
KILL_MARGIN_SECONDS = 1.0
# What decoders need at least, per pixel of the picture: an RGBA frame and the RGB copy.
DECODE_BYTES_PER_PIXEL = 8


@dataclass(frozen=True)
class PictureLimits:
    """What one picture request may use: its pixels, and the worker's time and memory."""

    max_pixels: int
    max_seconds: float
    max_memory_bytes: int


@dataclass(frozen=True)
class CnnImageParams:
    """POST /api/cnn/image's form: the filter, window and pooling, with the lesson's limits."""

    kernel: str
    stride: int
    padding: int
    pool: str
    pool_size: int
    limits: cnn.CnnLimits
    preview_side: int


@dataclass(frozen=True)
class TransformsParams:
    """POST /api/transforms/apply's checked pipeline, with the lesson's limits."""

    steps: tuple[Step, ...]
    limits: TransformLimits
    preview_side: int


class PictureMemoryExceeded(ImageTooLarge):
    """The picture's work needed more memory than a worker may use (HTTP 413)."""

    limit_name = "picture_max_memory_bytes"


class PictureTimeExceeded(LessonInputError):
    """The picture's work ran past ``picture_max_seconds`` and was stopped (HTTP 422)."""

    limit_name = "picture_max_seconds"


# ---- the worker side ----------------------------------------------------------------------------

# Lesson errors travel as their name and message, and are raised again in the server as these.
ERRORS: dict[str, type[LessonError]] = {
    "unsupported": UnsupportedImage,
    "too_large": ImageTooLarge,
    "input": LessonInputError,
}


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """``open_image`` in a worker: a decoder that fails for want of memory (libwebp says only
    "could not create decoder object") is a MemoryError, not a corrupt file."""
    try:
        return open_image(data, max_pixels).image
    except LessonInputError as exc:
        if type(exc) is LessonInputError and not _room_to_decode(data, max_pixels):
            raise MemoryError from None
        raise


def _room_to_decode(data: bytes, max_pixels: int) -> bool:
    """Whether the address space left could hold the declared picture as decoders need it."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return True
    try:
        pixels = math.prod(Image.open(io.BytesIO(data)).size)  # the header only
    except Exception:  # WebP's header needs a decoder too: assume the largest picture allowed
        pixels = max_pixels
    return pixels * DECODE_BYTES_PER_PIXEL <= soft - serve.vm_size()


def work(kind: str, data: bytes, params: Any, limits: PictureLimits) -> dict[str, Any]:
    """Decode ``data`` and run the lesson function ``kind`` names on it (in the worker)."""
    guard_pixels(limits.max_pixels)  # Pillow's own guard, at the same limit as in the server
    if kind == "cnn_image":
        p: CnnImageParams = params
        image = decode(data, limits.max_pixels)
        return cnn.picture_features(
            image, p.kernel, p.stride, p.padding, p.pool, p.pool_size, p.limits, p.preview_side
        )
    if kind == "transforms":
        t: TransformsParams = params
        image = decode(data, limits.max_pixels)
        return transforms.run_pipeline(image, t.steps, t.limits, t.preview_side, True)
    raise ValueError(f"unknown picture request {kind!r}")


def handle(request: tuple[Any, ...]) -> tuple[Any, ...]:
    """One request -> ("ok", result) | ("refused", error, message) | ("memory", message) |
    ("crash", message); never raises."""
    kind, data, params, limits = request
    try:
        return ("ok", work(kind, data, params, limits))
    except UnsupportedImage as exc:
        return ("refused", "unsupported", str(exc))
    except ImageTooLarge as exc:
        return ("refused", "too_large", str(exc))
    except LessonError as exc:
        return ("refused", "input", str(exc))
    except MemoryError:
        return ("memory", "")
    except RuntimeError as exc:
        # torch's allocator: "DefaultCPUAllocator: can't allocate memory: you tried to allocate"
        if "allocate" in str(exc):
            return ("memory", str(exc))
        return ("crash", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug: the server answers 500 and logs it
        return ("crash", f"{type(exc).__name__}: {exc}")


def cpu_seconds(request: tuple[Any, ...]) -> float:
    """CPU time one request may use: picture_max_seconds."""
    limits: PictureLimits = request[3]
    return limits.max_seconds


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    sample_image("tiny").save(buffer, fmt)
    return buffer.getvalue()


def warm_up() -> None:
    """Load every decoder and torch kernel a request takes, so the first one pays no start-up."""
    limits = PictureLimits(max_pixels=64, max_seconds=60.0, max_memory_bytes=DEFAULT_HEADROOM)
    for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP"):
        for pool in cnn.POOL_KINDS:
            params = CnnImageParams("edge", 1, 1, pool, 2, cnn.CnnLimits(), 384)
            handle(("cnn_image", _encoded(fmt), params, limits))
    steps = check_pipeline(
        pipeline_from_url("resize:4,rotate:30,grayscale,to_tensor,normalize:0.5:0.5"),
        None,
    )
    handle(
        (
            "transforms",
            _encoded("PNG"),
            TransformsParams(tuple(steps), TransformLimits(), 256),
            limits,
        )
    )


def main() -> None:
    """``python -m app.workers.pictures FD [HEADROOM]``: warm up, limit itself, serve."""
    serve.main(handle, cpu_seconds, DEFAULT_HEADROOM, warm_up=warm_up)


# ---- the server side ----------------------------------------------------------------------------

_lock = threading.Lock()
_pool: WorkerPool | None = None
_pool_key: tuple[int | None, int, float] | None = None
_warmed: WorkerPool | None = None


def _busy(pool: WorkerPool) -> Exception:
    return TooBusy(
        f"All {pool.size} picture workers stayed busy for {pool.wait_seconds:g} s (setting "
        "picture_queue_seconds): try again in a moment.",
        "picture_queue_seconds",
    )


def get_pool(settings: Settings) -> WorkerPool:
    """The process's picture workers, sized from settings; apps with the same settings (tests
    build many) share the warm workers, and different ones replace them."""
    global _pool, _pool_key
    key = (
        settings.picture_workers or None,
        settings.picture_max_memory_bytes,
        settings.picture_queue_seconds,
    )
    with _lock:
        if _pool is None or _pool_key != key:
            if _pool is not None:
                _pool.close()
            _pool = WorkerPool(
                MODULE,
                key[0],
                settings.picture_queue_seconds,
                args=(str(settings.picture_max_memory_bytes),),
                busy=_busy,
            )
            _pool_key = key
        return _pool


def warm(settings: Settings) -> None:
    """Start the picture workers in the background (once per pool), so no request waits."""
    global _warmed
    if not settings.picture_prewarm:
        return
    pool = get_pool(settings)
    with _lock:
        if _warmed is pool:
            return
        _warmed = pool
    pool.warm(pool.size, wait=False)


def shutdown() -> None:
    """Stop the idle picture workers (busy ones stop when their request ends)."""
    global _pool, _pool_key
    with _lock:
        if _pool is not None:
            _pool.close()
        _pool, _pool_key = None, None


def limits_of(settings: Settings) -> PictureLimits:
    """The settings a picture request is held to."""
    return PictureLimits(
        max_pixels=settings.max_image_pixels,
        max_seconds=settings.picture_max_seconds,
        max_memory_bytes=settings.picture_max_memory_bytes,
    )


def ask(kind: str, data: bytes, params: Any, settings: Settings) -> dict[str, Any]:
    """Run one picture request in a worker and return the lesson function's dict, or raise the
    lesson's error (or the time or memory limit's). Blocking: call it from a thread."""
    limits = limits_of(settings)
    try:
        reply = get_pool(settings).ask(
            (kind, data, params, limits), limits.max_seconds + KILL_MARGIN_SECONDS
        )
    except WorkerStopped as stopped:
        raise _stopped(stopped.exitcode, limits) from None
    return _unpack(reply, limits)


def cnn_image(
    read: Callable[[], bytes], params: CnnImageParams, settings: Settings
) -> dict[str, Any]:
    """POST /api/cnn/image's work: ``read()`` gives the picture's bytes (the upload is read
    here, once the request is admitted, so a request in line holds none of it)."""
    return ask("cnn_image", read(), params, settings)


def transforms_apply(
    read: Callable[[], bytes],
    steps: Sequence[Step],
    limits: TransformLimits,
    preview_side: int,
    settings: Settings,
) -> dict[str, Any]:
    """POST /api/transforms/apply's work: the pipeline on the picture ``read()`` gives."""
    params = TransformsParams(tuple(steps), limits, preview_side)
    return ask("transforms", read(), params, settings)


def _memory_message(limits: PictureLimits) -> str:
    return (
        "The picture needed more memory than a picture worker may use (setting "
        f"picture_max_memory_bytes = {limits.max_memory_bytes}) and was stopped: use a smaller "
        "picture (fewer pixels), or a larger pool size or stride."
    )


def _stopped(exitcode: int | None, limits: PictureLimits) -> LessonError:
    """The error for a worker that was killed (or died) while it worked."""
    if exitcode is None or exitcode == -signal.SIGXCPU:
        return PictureTimeExceeded(
            f"The picture took longer than the limit of {limits.max_seconds:g} s (setting "
            "picture_max_seconds) and was stopped: use a smaller picture or fewer stages."
        )
    return PictureMemoryExceeded(_memory_message(limits))


def _unpack(reply: tuple[Any, ...], limits: PictureLimits) -> dict[str, Any]:
    tag = reply[0]
    if tag == "ok":
        result: dict[str, Any] = reply[1]
        return result
    if tag == "refused":
        raise ERRORS[reply[1]](reply[2])
    if tag == "memory":
        raise PictureMemoryExceeded(_memory_message(limits))
    raise RuntimeError(f"a picture worker failed: {reply[1]}")


if __name__ == "__main__":
    # Serve with this module as imported by name, so the request classes the server pickles
    # (app.workers.pictures.CnnImageParams, ...) are the ones the handler sees.
    from app.workers import pictures

    pictures.main()
