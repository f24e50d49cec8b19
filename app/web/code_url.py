"""A program in a URL: the playground's ``?code=`` (raw DEFLATE, then base64url without padding).

The page compresses in the browser with ``CompressionStream("deflate-raw")`` and the server
reads it back here (``zlib`` with ``wbits=-15`` is the same format), so a shared link opens on
the exact program, rendered before any script runs. A ``code`` that is not such text is read as
the program itself, so a hand-written ``?code=print(1)`` works too.
"""

from __future__ import annotations

import base64
import binascii
import zlib

from app.lessons.errors import LessonInputError


def encode_code(code: str) -> str:
    """``code`` as the playground's ``?code=`` value."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = packer.compress(code.encode("utf-8")) + packer.flush()
    return base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def decode_code(value: str, max_chars: int) -> str:
    """The program a ``?code=`` value holds, at most ``max_chars`` characters once unpacked.

    Raises LessonInputError (a 422 naming the limit) for a program past ``max_chars``; never
    unpacks more than that, so a small link cannot expand into a huge program.
    """
    text = value.strip()
    code: str | None = None
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        unpacker = zlib.decompressobj(-15)
        raw = unpacker.decompress(packed, 4 * max_chars + 4)
        if unpacker.unconsumed_tail:  # still unpacking past the limit: far too long
            raise LessonInputError(
                f"the program in the link is longer than {max_chars} characters "
                "(program_max_code_chars)"
            )
        if unpacker.eof:
            code = raw.decode("utf-8")
    except (binascii.Error, ValueError, zlib.error, UnicodeDecodeError) as exc:
        if isinstance(exc, LessonInputError):
            raise
    if code is None:
        code = value  # a program written into the link as it is
    if len(code) > max_chars:
        raise LessonInputError(
            f"the program in the link has {len(code)} characters, more than {max_chars} "
            "(program_max_code_chars)"
        )
    return code
