"""The models every part of the JSON API shares (they make /openapi.json).

Each lesson's own request and response models are in ``app.web.routes.lessons.<name>``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# A JSON number that is not inf or NaN (the softmax and activations lessons' request fields).
Finite = Annotated[float, Field(allow_inf_nan=False)]


class JsonBody(BaseModel):
    """A request body read as its schema says: strict, so ``false`` is not taken for 0, nor
    ``"3"`` for 3 (JSON numbers still fill float fields)."""

    model_config = ConfigDict(strict=True)


class ApiError(BaseModel):
    """Every error answer of the API; other fields (``limit``, ``line``, ``errors``...) may join."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="what was wrong, for a learner: which field, which limit")


# What each error status means across the API, for the OpenAPI ``responses`` of the routes.
ERROR_MEANINGS: dict[int, str] = {
    400: "the body could not be parsed as its Content-Type says",
    403: "refused: a change sent by another site's page (cross-site), or a change to another "
    "learner's run (the detail says whose it is; the run stays readable by its link), or a "
    "class page of a class the learner is not in",
    404: "there is no such resource (the detail names it)",
    408: "the request's body stopped arriving for body_timeout_seconds",
    409: "not now: the run is still queued or running, or another run resumes from it (or the "
    "class's only teacher asked to leave it)",
    413: "the body or upload is over its byte limit (the detail names the setting)",
    415: "the upload is not a picture format the lesson reads",
    422: "a field is invalid or over a limit (the detail names which)",
    429: "too busy right now: try again after Retry-After seconds",
    503: "the run store cannot be reached just now: try again after Retry-After seconds",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each an :class:`ApiError`."""
    return {s: {"model": ApiError, "description": ERROR_MEANINGS[s]} for s in statuses}


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class LessonViewResponse(BaseModel):
    """Everything a lesson page shows: its parameters, the numbers, and the Plotly figures."""

    slug: str
    params: dict[str, object]
    result: dict[str, object]
    figures: dict[str, dict[str, object]]


# ---- programs: shared by the tensors and autograd lessons' routes -----------------------------

EXAMPLE_PROGRAM = "x = torch.tensor([1., 2.], requires_grad=True)\ny = x + 2\nz = y * y\n"


class ProgramError(BaseModel):
    line: int | None = Field(description="the failing line, 1-based")
    message: str = Field(description="PyTorch's own message")
    hint: str | None = Field(
        default=None,
        description="plain words for a common beginner mistake (both shapes of a mismatch, "
        "retain_graph for a second backward, ...); absent when there is none",
    )
    traceback: list[int] | None = Field(
        default=None,
        description="inside calls: the lines from the outermost call down to the failing one",
    )
