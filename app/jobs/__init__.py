"""Training runs: the run store, the task registry and the runners (no HTTP here)."""

from app.jobs import classifier, transfer  # noqa: F401  (register their tasks)
from app.jobs.runner import LocalRunner, Runner
from app.jobs.store import FINAL_STATUSES, STATUSES, QueueFull, Run, RunNotFound, RunStore
from app.jobs.tasks import ConfigError, Task, TrainResult, UnknownTask, all_tasks, get_task

__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "ConfigError",
    "LocalRunner",
    "QueueFull",
    "Run",
    "RunNotFound",
    "RunStore",
    "Runner",
    "Task",
    "TrainResult",
    "UnknownTask",
    "all_tasks",
    "get_task",
]
