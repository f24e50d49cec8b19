"""The project's own sample pictures, so every image page works with no upload."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from app.lessons.images import SAMPLES, sample_png

router = APIRouter(tags=["images"])


class Sample(BaseModel):
    name: str
    title: str
    url: str


@router.get("/api/images/samples")
def samples() -> list[Sample]:
    """The sample pictures: send ``sample=<name>`` instead of a file to any image endpoint."""
    return [
        Sample(name=name, title=title, url=f"/api/images/samples/{name}.png")
        for name, (title, _) in SAMPLES.items()
    ]


@router.get(
    "/api/images/samples/{name}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def sample(name: str) -> Response:
    """One sample picture as PNG."""
    return Response(
        sample_png(name), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"}
    )
