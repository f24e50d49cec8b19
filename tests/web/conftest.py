"""Fixtures the web tests share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.support import started_apps


def quiet_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test's app: no background warm-up of lessons, programs or pictures."""
    return Settings(
        data_dir=data_dir,
        warm_lessons=False,
        program_prewarm=False,
        picture_prewarm=False,
        **overrides,
    )


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """``apps(data_dir=None, **settings)``: a started app, each on its own data dir unless told;
    every one is stopped at the end of the test."""
    made = [0]
    with started_apps() as start:

        def make(data_dir: Path | None = None, **overrides: Any) -> TestClient:
            folder = data_dir or tmp_path / f"data{made[0]}"
            made[0] += 1
            client: TestClient = start(quiet_settings(folder, **overrides))
            return client

        yield make
