"""Shared fixtures: every test builds its own app on a temporary data dir."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

# Run workers import test-only tasks by name (tests.jobs.worker_tasks), so the repo root goes on
# sys.path before any fork server starts; pytest's importlib mode does not put it there.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No background warm-up: each test builds its own app, and the lessons it does not open
    # would only compete for the CPU.
    return Settings(data_dir=tmp_path / "data", warm_lessons=False)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
