"""Fixtures of the sandbox tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.sandbox.isolation import configure_pool, shutdown_pool


@pytest.fixture()
def one_worker() -> Iterator[int]:
    """A pool of one warm sandbox worker; its pid (its /proc shows what a program cost)."""
    pool = configure_pool(size=1)
    pool.warm(1)
    yield pool._idle[0].process.pid
    shutdown_pool()
