"""Uploaded files: read with the byte limit enforced as they stream, then opened safely."""

from __future__ import annotations

from fastapi import HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.lessons.errors import LessonInputError
from app.lessons.images import OpenedImage, open_image, sample_png
from app.web.errors import upload_over_limit

CHUNK = 64 * 1024


async def read_upload(
    upload: UploadFile,
    settings: Settings,
    limit: int | None = None,
    setting: str = "max_upload_bytes",
) -> bytes:
    """The file's bytes, refusing it as soon as it passes the limit (``max_upload_bytes``, or
    ``limit``, which the 413 names as ``setting``)."""
    if limit is None:
        limit = settings.max_upload_bytes
    chunks: list[bytes] = []
    total = 0
    while chunk := await upload.read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise HTTPException(413, upload_over_limit(limit, None, setting))
        chunks.append(chunk)
    return b"".join(chunks)


async def image_from_request(
    file: UploadFile | None, sample: str | None, settings: Settings
) -> OpenedImage:
    """The uploaded picture, or one of the project's samples when no file is sent."""
    if file is not None and file.filename:
        data = await read_upload(file, settings)
    elif sample:
        data = sample_png(sample)
    else:
        raise LessonInputError("Send a picture as the multipart field 'file', or name a sample.")
    # Decoding a large picture takes a while: off the event loop, like every torch computation.
    return await run_in_threadpool(open_image, data, settings.max_image_pixels)
