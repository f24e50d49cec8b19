"""Test-only tasks, importable by worker processes as ``tests.jobs.worker_tasks``."""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from pydantic import BaseModel, Field

from app.jobs.tasks import Emit, Progress, ShouldStop, Task, TrainResult, register


class SleepyConfig(BaseModel):
    steps: int = Field(default=10_000, ge=1, le=1_000_000)
    mode: str = "sleep"  # sleep | raise | exit | linger


def train_sleepy(
    config: Any,
    emit: Emit,
    should_stop: ShouldStop,
    *,
    progress: Progress,
    resume: dict[str, Any] | None,
) -> TrainResult:
    if config.mode == "raise":
        emit(1, "loss", 1.0)
        raise RuntimeError("boom: the test task crashed on purpose")
    if config.mode == "exit":
        emit(1, "loss", 1.0)
        os._exit(3)
    step = 0
    for step in range(1, config.steps + 1):
        if should_stop():
            if config.mode == "linger":  # a worker still handing over metrics after a cancel
                for extra in range(step, step + 10):
                    emit(extra, "loss", 1.0 / extra)
                    time.sleep(0.05)
            break
        emit(step, "loss", 1.0 / step)
        progress(step / config.steps)
        time.sleep(0.02)
    return TrainResult({"weight": torch.zeros(1)}, {"state": {}, "param_groups": []}, step)


SLEEPY = register(
    Task(name="test-sleepy", description="test only", config_model=SleepyConfig, train=train_sleepy)
)
