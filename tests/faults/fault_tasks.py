"""A test-only task for the fault tests: ``test-silent`` logs a few metrics, then works quietly
(sends nothing) for up to ``quiet_s`` seconds, as a long step of a big model would. A worker
orphaned in that phase only notices its server is gone if it watches for it."""

from __future__ import annotations

import time
from typing import Any

import torch
from pydantic import BaseModel, Field

from app.jobs.tasks import Emit, Progress, ShouldStop, Task, TrainResult, register


class SilentConfig(BaseModel):
    logged: int = Field(default=5, ge=1, le=1000)
    quiet_s: float = Field(default=120.0, gt=0, le=600)


def train_silent(
    config: Any,
    emit: Emit,
    should_stop: ShouldStop,
    *,
    progress: Progress,
    resume: dict[str, Any] | None,
) -> TrainResult:
    for step in range(1, config.logged + 1):
        emit(step, "loss", 1.0 / step)
    progress(0.5)  # flushes the metrics: everything logged so far reaches the server
    deadline = time.monotonic() + config.quiet_s
    while time.monotonic() < deadline and not should_stop():
        time.sleep(0.05)
    return TrainResult({"weight": torch.zeros(1)}, {"state": {}, "param_groups": []}, config.logged)


SILENT = register(
    Task(name="test-silent", description="test only", config_model=SilentConfig, train=train_silent)
)
