"""Throwaway PostgreSQL databases for tests (importable as ``tests.pg``).

The tests use the real server a CI machine runs at 127.0.0.1:5432 (``.ci/run`` starts it; trust
authentication, user ``postgres``). Each caller gets a database of its own, created fresh with a
unique name and dropped afterwards, so tests running at the same time never share tables::

    with fresh_database() as url:          # postgresql+psycopg://postgres@127.0.0.1:5432/...
        store = RunStore(url)
        ...

A test that needs PostgreSQL should fail, not skip, when the server is not answering: call
``require()`` (it raises ``PostgresUnavailable`` with ``UNAVAILABLE`` as its message) or check
``pg_available()`` and fail with that message.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

HOST = "127.0.0.1"
PORT = 5432
USER = "postgres"
ADMIN_DB = "postgres"  # where CREATE/DROP DATABASE are run from
CONNECT_TIMEOUT_S = 3
PREFIX = "explorer_test"

UNAVAILABLE = (
    f"PostgreSQL is not answering at {HOST}:{PORT} (user {USER!r}, trust authentication): "
    "these tests need the real server. Start it (.ci/run does, e.g. `service postgresql start`) "
    "and run them again."
)


class PostgresUnavailable(RuntimeError):
    """The test server does not answer."""


def conninfo(dbname: str) -> str:
    """The libpq connection string of a database on the test server (for ``psycopg.connect``)."""
    return (
        f"host={HOST} port={PORT} user={USER} dbname={dbname} connect_timeout={CONNECT_TIMEOUT_S}"
    )


def sqlalchemy_url(dbname: str) -> str:
    """The SQLAlchemy URL of a database on the test server (what ``RunStore(url)`` takes)."""
    return f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{dbname}"


def libpq_url(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as libpq reads it (``psycopg.connect(...)``)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _admin() -> psycopg.Connection:
    return psycopg.connect(conninfo(ADMIN_DB), autocommit=True)


def pg_available() -> bool:
    """Whether the test server answers (within ``CONNECT_TIMEOUT_S``)."""
    try:
        with _admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def require() -> None:
    """Raise ``PostgresUnavailable`` (message: ``UNAVAILABLE``) when the server does not answer."""
    if not pg_available():
        raise PostgresUnavailable(UNAVAILABLE)


def new_name(prefix: str = PREFIX) -> str:
    """A database name no other test (or process) will pick: ``<prefix>_<pid>_<random>``."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def create_database(prefix: str = PREFIX) -> str:
    """CREATE a new, empty database on the test server; its name."""
    name = new_name(prefix)
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str) -> None:
    """DROP the database, closing whatever connections are still open on it."""
    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def fresh_database(prefix: str = PREFIX) -> Iterator[str]:
    """A new database for the ``with`` block, dropped after it; yields its SQLAlchemy URL."""
    require()
    name = create_database(prefix)
    try:
        yield sqlalchemy_url(name)
    finally:
        drop_database(name)


def reset_database(url: str) -> None:
    """Empty a test database: drop every table, sequence and type in its ``public`` schema, so
    the next test starts as on a new database (``RunStore`` creates its tables again)."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        # An idle connection a failed test left open holds no lock; anything else is a bug that
        # should fail here within seconds, not hang the run.
        conn.execute("SET lock_timeout = '10s'")
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


class _Pair:
    """One proxied connection: the client's socket and the server's, closed when both pumps
    between them are done."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.sockets = (client, server)
        self._left = 2
        self._lock = threading.Lock()

    def shut(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def pump_done(self) -> None:
        self.shut()  # one direction ended: so does the other
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            for sock in self.sockets:
                sock.close()


class TcpProxy:
    """127.0.0.1:``port`` (0: a free one) -> ``target`` (PostgreSQL by default), with a switch:
    ``cut()`` closes every open proxied connection and refuses new ones (accepted, then closed at
    once) until ``restore()``: the store out of reach, for the tests of what survives that."""

    def __init__(self, port: int = 0, target: tuple[str, int] = (HOST, PORT)) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._cut = False
        self._closed = threading.Event()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self.port = int(self._listener.getsockname()[1])  # port 0: a free one
        self._listener.listen(256)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            if self._cut:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self._lock:
                refused = self._cut
                if not refused:
                    self._pairs.add(pair)
            if refused:
                client.close()
                server.close()
                continue
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pairs.discard(pair)
            pair.pump_done()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            pairs = list(self._pairs)
        for pair in pairs:
            pair.shut()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self._closed.set()
        self._thread.join(timeout=5)
        self._listener.close()
