"""The HTTP server: uvicorn with the deadlines it lacks, so half-sent requests cannot pile up.

Uvicorn closes an idle kept-alive connection after ``timeout_keep_alive``, but a connection that
never finishes its request's headers, or stops sending its body, stays open (a body also keeps
its request task waiting) for as long as the client likes. Two guards close that gap:

- :class:`Deadlines`, mixed into uvicorn's own HTTP protocol (httptools, else h11): every
  connection that has no request at the app has a deadline. A request's headers must be complete
  within ``header_timeout_seconds`` of the connection (or of their first byte on a kept-alive
  one), an idle kept-alive connection closes after ``keep_alive_seconds``, and the rest of a body
  the app did not read must keep coming (``body_timeout_seconds`` between chunks). Headers are
  capped at ``MAX_HEADER_BYTES`` too: httptools has no limit of its own.
- :class:`BodyTimeout`, an ASGI middleware: while the app waits for a request's body, a gap of
  ``body_timeout_seconds`` answers 408 naming the setting and closes the connection.

``python -m app`` serves with both (:func:`uvicorn_options`), as do the Dockerfile and the
benchmarks.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from typing import Any

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.config import Settings

# The most bytes of request line and headers one request may send (h11 allows 16 kB).
MAX_HEADER_BYTES = 64 * 1024
# On SIGTERM, requests still open after this many seconds (live event streams never end by
# themselves) are cancelled, so the app's shutdown still runs before a container's SIGKILL.
GRACEFUL_SHUTDOWN_S = 5


class Deadlines(asyncio.Protocol):
    """Deadlines for the parts of a connection that uvicorn leaves unbounded (a mixin, before
    uvicorn's protocol class among the bases; it reads that class's ``cycle`` and ``transport``).
    """

    header_timeout = 10.0
    body_timeout = 30.0
    keep_alive = 5.0

    # Provided by uvicorn's protocol class.
    cycle: Any
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None
    logger: logging.Logger

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._seen_cycle: Any = None  # a new cycle means a request's headers are complete
        self._head_bytes = 0  # bytes of a request whose headers are not complete yet
        self._head_since = self.loop.time()
        self._idle_since = self._head_since
        self._guard()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            if not self._head_bytes and self.cycle is not None:
                self._head_since = self.loop.time()  # a kept-alive connection's next request
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            self._cancel()
            return
        if self.cycle is not self._seen_cycle:
            self._seen_cycle = self.cycle
            self._head_bytes = 0
        elif self._head_bytes > MAX_HEADER_BYTES:
            self._refuse_headers()
            return
        self._guard()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._idle_since = self.loop.time()
        self._guard()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._cancel()  # the transport now belongs to the WebSocket protocol
        super().handle_websocket_upgrade(*args)  # type: ignore[misc]

    def _between_requests(self) -> bool:
        """No request is at the app, and none is still sending its body: bytes now are headers."""
        cycle = self.cycle
        return cycle is None or (cycle.response_complete and not cycle.more_body)

    def _guard(self) -> None:
        cycle = self.cycle
        if self.transport.is_closing():
            self._cancel()
        elif cycle is not None and not cycle.response_complete:
            # The app has this request; while it reads the body, BodyTimeout keeps the time.
            self._cancel()
        elif cycle is not None and cycle.more_body:
            # Answered, but the client still sends a body no one reads: it must keep coming.
            self._arm(self.loop.time() + self.body_timeout, "body_timeout_seconds")
        elif self._head_bytes or cycle is None:
            self._arm(self._head_since + self.header_timeout, "header_timeout_seconds")
        else:
            self._arm(self._idle_since + self.keep_alive, None)

    def _arm(self, when: float, setting: str | None) -> None:
        self._cancel()
        self._deadline = self.loop.call_at(when, self._expire, setting)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, setting: str | None) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if setting is not None and (self._head_bytes or setting == "body_timeout_seconds"):
            seconds = self.header_timeout if setting.startswith("header") else self.body_timeout
            self.logger.info(
                "%s - closed a connection: its request stalled for %g s (setting %s)",
                f"{self.client[0]}:{self.client[1]}" if self.client else "a client",
                seconds,
                setting,
            )
        self.transport.close()

    def _refuse_headers(self) -> None:
        message = (
            f"The request's headers are over {MAX_HEADER_BYTES} bytes, the most this server reads."
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message
        )
        self._cancel()
        self.transport.close()


class GuardedH11Protocol(Deadlines, H11Protocol):
    """uvicorn's h11 protocol with :class:`Deadlines`."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    GUARDED_BASE: type[Deadlines] = GuardedH11Protocol
else:

    class GuardedHttpToolsProtocol(Deadlines, HttpToolsProtocol):
        """uvicorn's httptools protocol (its default when httptools is installed) with
        :class:`Deadlines`."""

    GUARDED_BASE = GuardedHttpToolsProtocol


def protocol_class(settings: Settings) -> type[asyncio.Protocol]:
    """The HTTP protocol uvicorn would pick, with this app's deadlines."""
    return type(
        f"Guarded{GUARDED_BASE.__name__.removeprefix('Guarded')}",
        (GUARDED_BASE,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "body_timeout": settings.body_timeout_seconds,
            "keep_alive": settings.keep_alive_seconds,
        },
    )


def body_timed_out(seconds: float) -> str:
    """The 408 message."""
    return (
        f"The request body stopped arriving: nothing came for {seconds:g} s (setting "
        "body_timeout_seconds). Send the whole request again."
    )


class BodyTimeout:
    """While the app waits for a request's body, a gap of ``seconds`` ends the request with a 408
    (through the app's error handlers) and closes the connection, so its task is freed."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False

        async def timed() -> Message:
            nonlocal complete
            if complete:  # later receives wait for the client to go away: no deadline
                return await receive()
            try:
                with anyio.fail_after(self.seconds):
                    message = await receive()
            except TimeoutError:
                detail = body_timed_out(self.seconds)
                raise HTTPException(408, detail, headers={"Connection": "close"}) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, timed, send)


def logging_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, with the app's own loggers (``app.*``) on the same stream."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["app"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``: where to listen, the guarded
    protocol and its keep-alive, and logging."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "log_config": logging_config(settings.log_level),
        "proxy_headers": True,
        "http": protocol_class(settings),
        # uvicorn's own keep-alive timer (whole seconds) never closes before the guard's.
        "timeout_keep_alive": max(1, math.ceil(settings.keep_alive_seconds)),
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
