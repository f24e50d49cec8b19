"""Fingerprinted static files, served with long-lived cache headers and pre-gzipped bodies.

Each asset is read, hashed and compressed once, and addressed as ``/static/<name>.<hash>.<ext>``,
so a browser may cache it forever and a new release changes the URL. plotly.js comes from the
plotly package itself, and the code-highlighting stylesheet from Pygments: nothing loads from a CDN.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import plotly
from pygments.formatters import HtmlFormatter

from app.config import ROOT

STATIC_DIR = ROOT / "static"
PLOTLY_JS = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    """One static file, ready to send."""

    name: str  # logical name, e.g. "js/lesson.js"
    body: bytes
    gzipped: bytes
    media_type: str
    digest: str

    @property
    def url_name(self) -> str:
        """The fingerprinted name, e.g. ``js/lesson.3f2a1b9c0d.js``."""
        stem, dot, ext = self.name.rpartition(".")
        return f"{stem}.{self.digest}.{ext}" if dot else f"{self.name}.{self.digest}"


def _make(name: str, body: bytes) -> Asset:
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type.endswith("javascript"):
        media_type += "; charset=utf-8"
    digest = hashlib.sha256(body).hexdigest()[:10]
    return Asset(name, body, gzip.compress(body, compresslevel=9, mtime=0), media_type, digest)


def _sources() -> Iterator[tuple[str, bytes]]:
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield path.relative_to(STATIC_DIR).as_posix(), path.read_bytes()
    yield "vendor/plotly.min.js", PLOTLY_JS.read_bytes()
    css = HtmlFormatter(style="friendly").get_style_defs(".code")
    dark = HtmlFormatter(style="monokai").get_style_defs(".dark .code")
    yield "css/pygments.css", f"{css}\n{dark}\n".encode()


@lru_cache(maxsize=1)
def load_assets() -> AssetStore:
    """The process's assets: read and compressed once, however many apps are built."""
    return AssetStore()


class AssetStore:
    """Every static asset by logical and by fingerprinted name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Asset] = {}
        self._by_url: dict[str, Asset] = {}
        for name, body in _sources():
            asset = _make(name, body)
            self._by_name[name] = asset
            self._by_url[asset.url_name] = asset

    def url(self, name: str) -> str:
        """The cache-forever URL of a logical asset name; unknown names are a programming error."""
        return f"/static/{self._by_name[name].url_name}"

    def lookup(self, path: str) -> tuple[Asset, bool] | None:
        """The asset at ``path`` and whether the path is fingerprinted (so cacheable forever)."""
        if path in self._by_url:
            return self._by_url[path], True
        if path in self._by_name:
            return self._by_name[path], False
        return None
