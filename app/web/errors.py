"""The one place that maps errors to status codes, as JSON for the API and as pages for people."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import InterfaceError as DBInterfaceError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.jobs import ConfigError, QueueFull, RunNotFound
from app.jobs.retention import StorageFull
from app.jobs.safe_load import CheckpointError
from app.jobs.store import ClassNotFound, RunBusy
from app.jobs.tracking import ArtifactMissing
from app.lessons.errors import LessonError
from app.lessons.images import ImageTooLarge, UnsupportedImage
from app.sandbox import SandboxRefused
from app.sandbox.isolation import SandboxBusy
from app.web.access import NotYours
from app.web.admission import TooBusy
from app.web.schemas import ERROR_MEANINGS, ApiError
from app.web.templating import render

log = logging.getLogger("app.errors")

TITLES = {
    400: "Bad request",
    403: "Refused",
    404: "Page not found",
    405: "Method not allowed",
    408: "Request too slow",
    409: "Not now",
    413: "Too large",
    415: "Unsupported file type",
    422: "Cannot do that",
    429: "Too busy",
    500: "Something broke",
    503: "Try again in a moment",
}


def wants_json(request: Request) -> bool:
    """API paths answer JSON; pages answer HTML unless the client asks for JSON only."""
    if request.url.path.startswith("/api") or request.url.path == "/healthz":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(
    request: Request,
    status: int,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """``{"detail": ...}`` for JSON clients, the error page for browsers."""
    if wants_json(request):
        return JSONResponse(
            {"detail": detail, **(extra or {})}, status_code=status, headers=headers
        )
    page = render(
        request,
        "errors/error.html",
        {"status": status, "title": TITLES.get(status, "Error"), "detail": detail},
        status_code=status,
    )
    if headers:
        page.headers.update(headers)
    return page


def _describe(error: dict[str, Any]) -> str:
    """One validation error as a sentence: where, then what."""
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    where = ".".join(loc)
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = list(exc.errors())
    sentences = [_describe(e) for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    clean = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors[:20]
    ]
    return "; ".join(sentences) + more, clean


def body_too_large(limit: int, got: int | None) -> str:
    """The 413 message: the limit, and the size when the client declared it."""
    size = f" ({got} bytes)" if got is not None else ""
    return f"The request body{size} is over the limit of {limit} bytes (setting max_json_bytes)."


def upload_too_large(limit: int, got: int | None) -> str:
    """The 413 message for an upload."""
    return upload_over_limit(limit, got, "max_upload_bytes")


def upload_over_limit(limit: int, got: int | None, setting: str) -> str:
    """The 413 message for an upload, naming the setting of the limit it passed."""
    size = f" ({got} bytes)" if got is not None else ""
    return f"The upload{size} is over the limit of {limit} bytes (setting {setting})."


# What FastAPI and Starlette say about a body they cannot parse (bytes that are not UTF-8 JSON,
# a broken multipart form); the learner is told what the route expected instead.
UNPARSABLE = "There was an error parsing the body"


def unparsable_body(content_type: str) -> str:
    """The 400 message for a body that could not be parsed as its Content-Type says."""
    if content_type.startswith("multipart/"):
        return "The multipart form could not be parsed: send its fields as a browser form does."
    return (
        "The request body could not be parsed: send UTF-8 JSON with Content-Type application/json."
    )


# Lesson errors that are not a plain 422, by class (a subclass inherits its parent's status).
LESSON_STATUS: dict[type[LessonError], int] = {UnsupportedImage: 415, ImageTooLarge: 413}


# FastAPI documents a 422 as its own HTTPValidationError ({"detail": [...]}); ours is reshaped
# above into an ApiError ({"detail": "...", "errors": [...]}), so the schema says that instead.
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_API_ERROR = "#/components/schemas/ApiError"


def _documented(schema: dict[str, Any]) -> dict[str, Any]:
    """The app's OpenAPI with the errors every operation can answer because of this module and
    of the body limit: 422 as an ApiError; 400 (unreadable) and 413 (too large) with a body."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "ApiError", ApiError.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            content = responses.get("422", {}).get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref") == _FASTAPI_422:
                responses["422"] = _error_response(422)
            for status, response in responses.items():
                if status.startswith("4"):
                    # The handlers answer the API in JSON whatever the route's own media type
                    # (an event stream, a file): a 4xx is documented as the JSON it is.
                    content = response.get("content", {})
                    shape = next((c["schema"] for c in content.values() if "schema" in c), None)
                    response["content"] = {
                        "application/json": {"schema": shape or {"$ref": _API_ERROR}}
                    }
            body = operation.get("requestBody", {}).get("content", {})
            if body:
                responses.setdefault("400", _error_response(400))
                responses.setdefault("413", _error_response(413))
    if _FASTAPI_422 not in json.dumps(schema):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    return schema


def _error_response(status: int) -> dict[str, Any]:
    return {
        "description": ERROR_MEANINGS[status],
        "content": {"application/json": {"schema": {"$ref": _API_ERROR}}},
    }


def document_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe the error bodies the handlers below really send."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _documented(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping from exceptions to responses on ``app``, and document it."""
    document_errors(app)

    @app.exception_handler(LessonError)
    async def lesson_error(request: Request, exc: LessonError) -> Response:
        status = next((LESSON_STATUS[c] for c in type(exc).__mro__ if c in LESSON_STATUS), 422)
        name = getattr(exc, "limit_name", None)  # a limit's refusal names its setting
        return error_response(request, status, str(exc), {"limit": name} if name else None)

    @app.exception_handler(SandboxRefused)
    async def program_refused(request: Request, exc: SandboxRefused) -> Response:
        extra = {"line": exc.line, "limit": getattr(exc, "limit", None)}
        return error_response(request, 422, str(exc), extra)

    @app.exception_handler(SandboxBusy)
    async def sandbox_busy(request: Request, exc: SandboxBusy) -> Response:
        retry = {"Retry-After": "2"}
        extra = {"limit": "program_queue_seconds"}  # no worker freed up in the line's time
        return error_response(request, 429, str(exc), extra, headers=retry)

    @app.exception_handler(TooBusy)
    async def too_busy(request: Request, exc: TooBusy) -> Response:
        retry = {"Retry-After": str(exc.retry_after)}
        return error_response(request, 429, str(exc), {"limit": exc.limit}, headers=retry)

    @app.exception_handler(ConfigError)
    async def bad_config(request: Request, exc: ConfigError) -> Response:
        return error_response(request, 422, str(exc), {"field": exc.field})

    @app.exception_handler(CheckpointError)
    async def bad_checkpoint(request: Request, exc: CheckpointError) -> Response:
        # A file that is damaged, over a limit, the wrong architecture, or refused because
        # unpickling it would run code: 422, with what the client needs to fix it.
        return error_response(request, 422, str(exc), exc.extra())

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> Response:
        extra = {"limit": exc.setting}
        return error_response(request, 429, str(exc), extra, headers={"Retry-After": "10"})

    @app.exception_handler(StorageFull)
    async def storage_full(request: Request, exc: StorageFull) -> Response:
        return error_response(request, 413, str(exc), {"limit": exc.setting})

    @app.exception_handler(RunNotFound)
    async def run_not_found(request: Request, exc: RunNotFound) -> Response:
        detail = f"There is no run {exc.args[0]!r}; GET /api/runs lists the runs there are."
        return error_response(request, 404, detail)

    @app.exception_handler(NotYours)
    async def not_yours(request: Request, exc: NotYours) -> Response:
        return error_response(request, 403, str(exc), {"run": exc.run_id, "read_only": True})

    @app.exception_handler(RunBusy)
    async def run_busy(request: Request, exc: RunBusy) -> Response:
        return error_response(request, 409, str(exc))

    @app.exception_handler(ClassNotFound)
    async def class_not_found(request: Request, exc: ClassNotFound) -> Response:
        detail = (
            "There is no such class here: check the join code or link with the teacher "
            "(their class page shows both)."
        )
        return error_response(request, 404, detail)

    @app.exception_handler(ArtifactMissing)
    async def artifact_missing(request: Request, exc: ArtifactMissing) -> Response:
        return error_response(request, 404, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        detail, errors = _validation_detail(exc)
        return error_response(request, 422, detail, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is nothing at {request.url.path}."
        elif exc.status_code == 400 and detail == UNPARSABLE:
            detail = unparsable_body(request.headers.get("content-type", ""))
        return error_response(request, exc.status_code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBInterfaceError)
    async def store_unreachable(request: Request, exc: DBAPIError) -> Response:
        # The run store's server is restarting or out of reach: nothing was lost, and the next
        # request reconnects by itself (the pool pings a connection before using it).
        retry = app.state.settings.store_retry_after_seconds
        log.warning("run store unreachable on %s %s: %s", request.method, request.url.path,
                    str(exc.orig or exc).strip().splitlines()[0][:200])  # fmt: skip
        detail = (
            "The run store (the database every run is kept in) cannot be reached just now; "
            f"nothing is lost. Try again in {retry} s."
        )
        return error_response(request, 503, detail, headers={"Retry-After": str(retry)})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "Something went wrong on our side; it has been logged.")
