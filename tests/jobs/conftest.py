"""PostgreSQL for the jobs tests: one database per test session, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from app.jobs.store import RunStore
from tests import pg


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The SQLAlchemy URL of a database created for this test session and dropped after it.

    Fails (never skips) when the server does not answer: CI machines have one.
    """
    if not pg.pg_available():
        pytest.fail(pg.UNAVAILABLE, pytrace=False)
    with pg.fresh_database() as url:
        yield url


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database, empty: no table left by an earlier test."""
    pg.reset_database(pg_database)
    return pg_database


@pytest.fixture(scope="module")
def db_url(pg_database: str) -> str:
    """The session's PostgreSQL database, emptied for this module (which shares one store)."""
    pg.reset_database(pg_database)
    return pg_database


@pytest.fixture(scope="module")
def module_store(db_url: str) -> Iterator[RunStore]:
    """One PostgreSQL store for the module's tests (``store`` empties it before each)."""
    store = RunStore(db_url)
    yield store
    store.close()


@pytest.fixture
def store(module_store: RunStore) -> RunStore:
    """The module's PostgreSQL store with its tables emptied (test_store.py has its own
    ``store``, on SQLite and on PostgreSQL)."""
    with module_store.engine.begin() as conn:
        conn.execute(text("TRUNCATE metrics, artifacts, runs RESTART IDENTITY"))
    return module_store
