"""The app with the test-only tasks ``test-sleepy`` and ``test-silent`` registered, for a real
uvicorn subprocess: ``python -m uvicorn tests.faults.app_with_test_tasks:app``."""

from __future__ import annotations

import tests.faults.fault_tasks  # noqa: F401  (registers "test-silent")
import tests.jobs.worker_tasks  # noqa: F401  (registers "test-sleepy" before the runner starts)
from app.main import create_app

app = create_app()
