"""``/docs``: the API reference, rendered on the server from the app's own OpenAPI schema.

FastAPI's built-in Swagger page loads its scripts from a CDN and runs an inline script; this page
needs neither, so it works offline and under the app's Content-Security-Policy.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.web.templating import render

router = APIRouter()

METHODS = ("get", "post", "put", "patch", "delete")


def _resolve(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """Inline ``$ref``s (a few levels deep) so each operation's models read on their own."""
    if depth > 6:
        return schema
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _resolve(components.get(ref.rsplit("/", 1)[1], {}), components, depth + 1)
        return {key: _resolve(value, components, depth) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_resolve(item, components, depth) for item in schema]
    return schema


def operations(openapi: dict[str, Any]) -> list[dict[str, Any]]:
    """Every operation of the schema, with its parameters and models as readable JSON."""
    components = openapi.get("components", {}).get("schemas", {})
    found = []
    for path, item in openapi.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            ok: dict[str, Any] = next(
                (r for code, r in op.get("responses", {}).items() if code.startswith("2")), {}
            )
            response = ok.get("content", {}).get("application/json", {}).get("schema")
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "tag": (op.get("tags") or ["other"])[0],
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "description": p.get("description", ""),
                            "schema": json.dumps(p.get("schema", {})),
                        }
                        for p in op.get("parameters", [])
                    ],
                    "request": _pretty(_resolve(body["schema"], components)) if body else None,
                    "response": _pretty(_resolve(response, components)) if response else None,
                }
            )
    return found


def _pretty(schema: Any) -> str:
    return json.dumps(schema, indent=2)


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False)
def docs(request: Request) -> Response:
    """Every route of the API with its request and response models."""
    openapi = request.app.openapi()
    context = {"info": openapi.get("info", {}), "operations": operations(openapi)}
    return render(request, "docs.html", context)
