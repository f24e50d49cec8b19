"""Static files from the asset store: cache-forever when fingerprinted, gzip when accepted."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from app.web.assets import IMMUTABLE, AssetStore

router = APIRouter()


@router.get("/static/{path:path}", include_in_schema=False)
def static_file(path: str, request: Request) -> Response:
    """One asset; the fingerprinted URL may be cached for a year, the plain one is revalidated."""
    store: AssetStore = request.app.state.assets
    found = store.lookup(path)
    if found is None:
        raise HTTPException(404, f"There is no static file {path!r}.")
    asset, fingerprinted = found
    etag = f'"{asset.digest}"'
    headers = {
        "Cache-Control": IMMUTABLE if fingerprinted else "no-cache",
        "ETag": etag,
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
