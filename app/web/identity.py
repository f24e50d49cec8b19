"""Who is asking: an anonymous learner id in a signed cookie, given at the first visit (issue 16).

No sign-up: the first response to a browser sets ``explorer_learner``, a learner id of 128 random
bits signed with itsdangerous (``HttpOnly``, ``SameSite=Lax``, ``Path=/``, a year, ``Secure`` over
https). Scripts send the same signed token in the ``X-Explorer-Learner`` header (``GET /api/me``
hands it out). The key is the ``secret_key`` setting or, when unset, one the run store generates
once and keeps (``RunStore.secret``), so every web process on one store agrees with no setup. A
cookie or header that does not verify is ignored, never an error: that request is a new learner.

``LearnerIdentity`` is plain ASGI (not ``BaseHTTPMiddleware``), so event streams and uploads pass
through untouched; routes read the learner with ``learner_of(request)``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Any

import anyio.to_thread
from fastapi import Request
from itsdangerous import BadData, Signer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "explorer_learner"
HEADER = b"x-explorer-learner"
COOKIE_MAX_AGE_S = 365 * 24 * 3600
# Separates this signature from any other the same key may ever make.
SALT = "explorer.learner"
# The name of the store's secret that signs learner tokens (``RunStore.secret``).
SECRET_NAME = "learner-cookie"
# What ``secrets.token_urlsafe(16)`` makes: 22 characters of base64url.
LEARNER_ID = re.compile(r"[A-Za-z0-9_-]{22}")
# A signed token is about 50 characters; a longer value is not ours and is not checked.
MAX_TOKEN_CHARS = 128
# A shared cache must never keep one learner's cookie for the next: such answers get none.
CACHEABLE = (b"public", b"immutable")

log = logging.getLogger("app.identity")


def new_learner_id() -> str:
    """A fresh anonymous learner id: 128 random bits."""
    return secrets.token_urlsafe(16)


def signer_for(secret_key: str) -> Signer:
    """The signer of learner tokens under ``secret_key``."""
    return Signer(secret_key, salt=SALT)


def verified(signer: Signer, tokens: Iterable[str]) -> str | None:
    """The learner id of the first token that carries a valid signature, else None."""
    for token in tokens:
        if not token or len(token) > MAX_TOKEN_CHARS:
            continue
        try:
            learner = signer.unsign(token).decode("ascii")
        except (BadData, UnicodeError):
            continue
        if LEARNER_ID.fullmatch(learner):
            return learner
    return None


def _header_values(scope: Scope, name: bytes) -> Iterator[str]:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            yield value.decode("latin-1")


def _cookie_values(scope: Scope) -> Iterator[str]:
    """Every value of our cookie in the request's Cookie headers (HTTP/2 may send several)."""
    wanted = COOKIE + "="
    for header in _header_values(scope, b"cookie"):
        for chunk in header.split(";"):
            chunk = chunk.strip()
            if chunk.startswith(wanted):
                yield chunk[len(wanted) :].strip('"')


def cookie_header(token: str, secure: bool) -> bytes:
    """The ``Set-Cookie`` value that gives a browser this learner token."""
    parts = [f"{COOKIE}={token}", f"Max-Age={COOKIE_MAX_AGE_S}", "Path=/", "HttpOnly"]
    parts.append("SameSite=Lax")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


def _cacheable(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key.lower() == b"cache-control" and any(word in value.lower() for word in CACHEABLE):
            return True
    return False


def _store_of(scope: Scope) -> Any:
    """The app's run store, once its lifespan has opened it; None before."""
    app = scope.get("app")
    runs = getattr(getattr(app, "state", None), "runs", None)
    return getattr(runs, "store", None)


class LearnerIdentity:
    """Puts the requesting learner's id in ``scope["state"]["learner"]`` and, when the request
    carried no valid cookie or header, gives the browser one on the response."""

    def __init__(self, app: ASGIApp, secret_key: str | None = None) -> None:
        self.app = app
        self._signer = signer_for(secret_key) if secret_key else None
        # Before the app's lifespan opens the store (a client that skips it), a key of this
        # process only; it is replaced by the store's as soon as there is a store.
        self._interim = signer_for(secrets.token_urlsafe(32))

    async def signer(self, scope: Scope) -> Signer:
        """The signer under the configured key, else under the store's (read once)."""
        if self._signer is not None:
            return self._signer
        store = _store_of(scope)
        if store is None:
            return self._interim
        key = await anyio.to_thread.run_sync(store.secret, SECRET_NAME)
        self._signer = signer_for(key)
        return self._signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            signer = await self.signer(scope)
        except Exception as error:  # noqa: BLE001 - the store is out of reach for now
            # Pages that need no learner are still served; learner_of raises this error (503).
            log.warning("learner identity unavailable: %s", str(error).strip()[:200])
            state["learner_error"] = error
            await self.app(scope, receive, send)
            return
        learner = verified(signer, _header_values(scope, HEADER))
        if learner is None:
            learner = verified(signer, _cookie_values(scope))
        state["learner_signer"] = signer
        state["learner"] = learner or new_learner_id()
        state["learner_cookie"] = learner is None  # a new learner: the browser needs the cookie
        secure = scope.get("scheme") == "https"

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("learner_cookie"):
                headers = list(message.get("headers", []))
                if not _cacheable(headers):
                    token = signer.sign(state["learner"]).decode("ascii")
                    headers.append((b"set-cookie", cookie_header(token, secure)))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_cookie)


def _state(request: Request) -> dict[str, Any]:
    state: dict[str, Any] = request.scope.setdefault("state", {})
    return state


def learner_of(request: Request) -> str:
    """The requesting learner's id (``LearnerIdentity`` gave one to every request)."""
    state = _state(request)
    learner = state.get("learner")
    if learner is None:
        error = state.get("learner_error")
        if isinstance(error, Exception):
            raise error  # the store is out of reach: the app's 503
        raise RuntimeError("no learner: LearnerIdentity is not among the app's middlewares")
    return str(learner)


def token_of(request: Request, learner: str | None = None) -> str:
    """The signed token of ``learner`` (the requesting one by default): the cookie's value, and
    what a script sends in ``X-Explorer-Learner``."""
    learner = learner or learner_of(request)
    signer: Signer = _state(request)["learner_signer"]
    return signer.sign(learner).decode("ascii")


def adopt(request: Request, learner: str) -> None:
    """From this request on, this browser is ``learner``: the response sets its cookie."""
    if not LEARNER_ID.fullmatch(learner):
        raise ValueError("not a learner id")
    learner_of(request)  # the identity is in place (or the store's error is raised)
    state = _state(request)
    state["learner"] = learner
    state["learner_cookie"] = True
