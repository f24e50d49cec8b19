"""Uploaded files: read with the byte limit enforced, never decoded here.

A picture is decoded in a worker process (``app.workers.pictures``): the routes take a reader
from :func:`picture_reader` and call it once the picture gate has admitted the request, so a
request in line holds only what the form parser spooled (a temporary file past 1 MB), and one at
work the file's bytes, once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import BinaryIO

from fastapi import HTTPException, UploadFile

from app.config import Settings
from app.lessons.errors import LessonInputError
from app.lessons.images import sample_png
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


def read_limited(file: BinaryIO, limit: int, setting: str = "max_upload_bytes") -> bytes:
    """A spooled upload's bytes in one read of at most ``limit + 1`` bytes (one buffer, no
    chunks to join), refused with a 413 naming ``setting`` past the limit. Blocking."""
    file.seek(0)
    data = file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, upload_over_limit(limit, None, setting))
    return data


def picture_reader(
    file: UploadFile | None, sample: str | None, settings: Settings
) -> Callable[[], bytes]:
    """What to decode: the uploaded file's bytes (read when called, with ``max_upload_bytes``),
    or one of the project's samples as PNG, exactly as if a learner had uploaded it."""
    if file is not None and file.filename:
        return partial(read_limited, file.file, settings.max_upload_bytes)
    if sample:
        data = sample_png(sample)  # an unknown name is a 422 now, before the request waits
        return lambda: data
    raise LessonInputError("Send a picture as the multipart field 'file', or name a sample.")
